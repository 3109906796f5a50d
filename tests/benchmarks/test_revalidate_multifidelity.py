"""benchmarks/revalidate_multifidelity.py: each recommendation's validation error re-measured on fresh seeds."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from types import ModuleType

import pytest

from bench_scripts import load_benchmark_script

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scripts() -> tuple[ModuleType, ModuleType]:
    return load_benchmark_script("compare_multifidelity"), load_benchmark_script("revalidate_multifidelity")


def _common(tmp_path: Path) -> list[str]:
    return [
        "--problems", "digits-mlp", "--max-steps", "3", "--full-trials", "4", "--seeds", "1", "--workers", "1",
        "--methods", "selftune-asha-tpe,selftune-full-tpe", "--results", str(tmp_path / "results"),
    ]  # fmt: skip


def test_recommendations_are_retrained_on_fresh_seeds_and_cached(
    scripts: tuple[ModuleType, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compare, revalidate = scripts
    assert compare.main([*_common(tmp_path), "--report", str(tmp_path / "report.md")]) == 0
    capsys.readouterr()
    assert revalidate.main([*_common(tmp_path), "--fresh", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"digits-mlp: \d+ recommendations, \d+ to retrain 2 times", out)
    rows = dict(re.findall(r"^\| (selftune-[a-z-]+) \| (.*) \|$", out, re.M))
    assert set(rows) == {"selftune-asha-tpe", "selftune-full-tpe"}

    # the full search's final recommendation, re-measured: the mean of its validation error over the fresh seeds,
    # which are not the seed its trial trained on
    problem = compare.get_curve_problem("digits-mlp", 3)
    (run,) = revalidate.load_runs(tmp_path / "results", "digits-mlp", "selftune-full-tpe", 1, 12, 3)
    params = revalidate.recommendation(run, 12)
    assert params == run.incumbents[-1][1]
    fresh = [problem.final_value(params, revalidate.FRESH_BASE + k) for k in range(2)]
    reported, remeasured = rows["selftune-full-tpe"].split(" | ")[2:]
    assert float(reported) == pytest.approx(run.value_at(12), abs=1e-4)
    assert float(remeasured) == pytest.approx(statistics.fmean(fresh), abs=1e-4)
    assert "minus selftune-full-tpe's final recommendation re-measured" in out
    assert re.search(r"^- selftune-asha-tpe: n/a; [01] of 1$", out, re.M)  # one seed: no interval

    assert revalidate.main([*_common(tmp_path), "--fresh", "2"]) == 0  # cached: nothing retrained
    assert re.search(r"digits-mlp: \d+ recommendations, 0 to retrain", capsys.readouterr().out)


def test_a_missing_run_names_the_script_to_run_first(scripts: tuple[ModuleType, ModuleType], tmp_path: Path) -> None:
    _, revalidate = scripts
    with pytest.raises(SystemExit, match="run benchmarks/compare_multifidelity.py"):
        revalidate.main([*_common(tmp_path), "--fresh", "2"])


def test_the_recommendation_in_effect_at_a_step(scripts: tuple[ModuleType, ModuleType]) -> None:
    compare, revalidate = scripts
    run = compare.MFRun("m", "p", 0, 30, incumbents=[(5, {"a": 1}, 1), (12, {"a": 2}, 2)])
    assert revalidate.recommendation(run, 4) is None
    assert revalidate.recommendation(run, 5) == {"a": 1} and revalidate.recommendation(run, 11.9) == {"a": 1}
    assert revalidate.recommendation(run, 30) == {"a": 2}
