"""benchmarks/compare_pbt.py on a tiny budget: the output's structure, the budget, seeds kept apart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from bench_scripts import load_benchmark_script

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from selftune.benchmarks.pbt import PBTSettings, trial_seed  # noqa: E402
from selftune.exceptions import InvalidParameterError  # noqa: E402
from selftune.protocol import TEST_SEED_BASE  # noqa: E402

TINY = PBTSettings(max_steps=2, population=4, interval=1, test_seeds=1)
METHODS = [
    "selftune-pbt",
    "selftune-pbt-sync",
    "selftune-asha-random",
    "selftune-asha-tpe",
    "selftune-random-full",
]


def load_script() -> ModuleType:
    return load_benchmark_script("compare_pbt")


def test_tiny_run_structure_budget_and_seeds(tmp_path: Path) -> None:
    script = load_script()
    logged: list[str] = []
    runs, failures = script.run(METHODS, [3], TINY, tmp_path, log=logged.append)
    assert failures == {} and sorted(runs) == sorted(METHODS) and len(logged) == len(METHODS)
    for method, (result,) in runs.items():
        assert result.method == method and result.seed == 3
        assert 0 < result.epochs <= TINY.budget  # equal compute: never more than population × max_steps
        if method == "selftune-random-full":
            assert result.epochs == TINY.budget and result.trials == TINY.population
        assert 0.0 <= result.valid <= 1.0 and 0.0 <= result.test <= 1.0
        assert len(result.test_values) == TINY.test_seeds and result.schedule[0][0] == 0
        # test seeds are the protocol's, disjoint from the run's trial seeds, which depend on the tuning seed
        assert result.test_seeds == [TEST_SEED_BASE]
        assert result.trial_seeds and not set(result.trial_seeds) & set(result.test_seeds)
        assert all(3000 <= s < 4000 for s in result.trial_seeds)
        assert result.seconds > 0 and result.eval_seconds > 0
    # cached: a second run reads the JSON files and computes nothing
    assert len(list(tmp_path.glob("*.json"))) == len(METHODS)
    again, _ = script.run(METHODS, [3], TINY, tmp_path, log=logged.append)
    assert len(logged) == len(METHODS)
    assert {m: r[0].test_values for m, r in again.items()} == {m: r[0].test_values for m, r in runs.items()}
    text = script.report(runs, {"raytune-pbt": "RuntimeError: not installed"}, TINY, "python x")
    assert text.startswith("# Population based training") and "raytune-pbt did not run" in text
    for method in METHODS:
        assert f"| {method} | 1 |" in text
    assert math.isnan(script.mean_ci([0.5])[1]) and script.mean_ci([1.0, 3.0])[0] == 2.0


def test_cached_file_is_json_with_a_fingerprint(tmp_path: Path) -> None:
    script = load_script()
    script.run(["selftune-random-full"], [0], TINY, tmp_path, log=lambda _: None)
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())
    assert data["fingerprint"] == script.fingerprint("selftune-random-full")
    assert data["trial_seeds"] == [0, 1, 2, 3] and data["test_seeds"] == [TEST_SEED_BASE]


def test_trial_seeds_stay_below_the_test_seeds() -> None:
    assert trial_seed(7, 12) == 7012
    with pytest.raises(InvalidParameterError):
        trial_seed(TEST_SEED_BASE // 1000, 0)
    with pytest.raises(InvalidParameterError):
        trial_seed(0, 1000)


def test_unknown_method_is_refused() -> None:
    script = load_script()
    with pytest.raises(SystemExit):
        script.main(["--methods", "nope"])
