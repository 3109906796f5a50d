"""The sampler benchmark suite: problems, scoring, the runner, the adapters and the comparison CLI.

Fast: tiny budgets. Tests that need cocoex, scikit-learn or a peer library skip when it is not installed
(CI installs only ``.[dev]``; the peers come with ``.[bench]`` and benchmarks/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import selftune
from bench_scripts import load_benchmark_script
from selftune.benchmarks import (
    GROUPS,
    FunctionProblem,
    all_problems,
    get_problem,
    measure_latency,
    problems_in,
    run,
    run_detailed,
)
from selftune.benchmarks.runner import (
    OPTIMIZERS,
    clean_params,
    make_optimizer,
    resolve_name,
    unavailable_reason,
)
from selftune.benchmarks.scoring import (
    best_so_far,
    f_star,
    log10_regret,
    mean_ranks,
    normalised_score,
    score_table,
    wins_losses,
)
from selftune.space import Choice, Float, Int, Space

# -- problems ----------------------------------------------------------------------------------------------


def test_import_needs_no_peer_library() -> None:
    code = (
        "import sys, selftune.benchmarks as b; b.all_problems(); "
        "heavy = [m for m in ('optuna', 'sklearn', 'cocoex', 'torch', 'hebo', 'smac', 'nevergrad', 'pandas') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_registry_names_groups_and_budgets() -> None:
    probs = all_problems()
    names = [p.name for p in probs]
    assert len(names) == len(set(names))
    assert {p.group for p in probs} == set(GROUPS)
    assert all(p.budget > 0 for p in probs)
    bbob = [p for p in probs if p.group.startswith("bbob-")]
    assert len(bbob) == 40
    assert all(p.budget == 20 * p.dim + 20 for p in bbob)  # type: ignore[attr-defined]
    assert [p.group for p in problems_in(["sklearn", "bbob-2d"])][0] == "sklearn"
    with pytest.raises(KeyError):
        problems_in(["nope"])
    with pytest.raises(KeyError):
        get_problem("nope")


def test_spaces_are_valid_without_cocoex() -> None:
    for p in all_problems():
        if p.group == "mixint":  # its space is read from cocoex
            continue
        space = p.space
        assert isinstance(space, Space) and len(space) >= 2
        Space.from_json(space.to_json())  # round-trips
        u = np.random.default_rng(0).random(len(space))
        space.validate(space.decode(u))


def test_synthetic_optima() -> None:
    branin, h6 = get_problem("branin"), get_problem("hartmann6")
    assert branin.evaluate({"x0": math.pi, "x1": 2.275}) == pytest.approx(branin.optimum, abs=1e-6)
    xopt = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
    assert h6.evaluate({f"x{i}": v for i, v in enumerate(xopt)}) == pytest.approx(h6.optimum, abs=1e-4)


def test_bbob_deterministic_with_known_optimum() -> None:
    pytest.importorskip("cocoex")
    p = get_problem("bbob-f08-d05")
    assert p.group == "bbob-5d" and p.budget == 120 and len(p.space) == 5
    x = p.space.decode(np.full(5, 0.3))
    assert p.evaluate(x) == p.evaluate(x)
    fopt = p.optimum
    assert math.isfinite(fopt)
    rng = np.random.default_rng(1)
    assert all(p.evaluate(p.space.decode(rng.random(5))) >= fopt for _ in range(20))
    assert get_problem("bbob-f08-d05").fingerprint() == p.fingerprint()


def test_mixint_space_has_integers() -> None:
    pytest.importorskip("cocoex")
    p = get_problem("mixint-f01-d10")
    kinds = [type(q).__name__ for q in p.space.values()]
    assert kinds.count("Int") == 8 and kinds.count("Float") == 2
    assert [p.space[f"i{i}"].high for i in range(8)] == [1, 1, 3, 3, 7, 7, 15, 15]  # type: ignore[attr-defined]
    x = p.space.decode(np.full(10, 0.7))
    assert p.evaluate(x) == p.evaluate(x)


def test_noisy_problem_is_seeded_per_run_and_evaluation() -> None:
    pytest.importorskip("cocoex")
    for name in ("noisy-mult-f08-d05", "noisy-add-f01-d05"):
        p = get_problem(name)
        assert p.noisy and p.group == "noisy"
        x = p.space.decode(np.full(5, 0.8))
        p.reset(3)
        a = [p.evaluate(x) for _ in range(3)]
        p.reset(3)
        b = [p.evaluate(x) for _ in range(3)]
        p.reset(4)
        c = [p.evaluate(x) for _ in range(3)]
        assert a == b and a != c and len(set(a)) == 3
        assert p.true_value(x) == get_problem(
            name.replace("noisy-mult", "bbob").replace("noisy-add", "bbob")
        ).evaluate(x)


def test_sklearn_problem_is_deterministic_and_conditional() -> None:
    pytest.importorskip("sklearn")
    p = get_problem("sklearn-svm-iris")
    linear = {"C": 1.0, "kernel": "linear"}
    assert p.space.active_names(linear) == ["C", "kernel"]
    v = p.evaluate(linear)
    assert 0.0 <= v <= 0.2 and v == p.evaluate(linear)
    rbf = {"C": 10.0, "kernel": "rbf", "gamma": 0.1}
    assert 0.0 <= p.evaluate(rbf) <= 1.0
    r = get_problem("sklearn-linear-diabetes")
    assert 0.3 < r.evaluate({"alpha": 0.01, "l1_ratio": 0.5, "fit_intercept": True}) < 1.0


# -- scoring -------------------------------------------------------------------------------------------------


def test_normalised_score_by_hand() -> None:
    assert normalised_score(1.0, 0.0, 4.0) == pytest.approx(75.0)
    assert normalised_score(0.0, 0.0, 4.0) == pytest.approx(100.0)
    assert normalised_score(4.0, 0.0, 4.0) == pytest.approx(0.0)
    assert normalised_score(8.0, 0.0, 4.0) == pytest.approx(-100.0)
    assert normalised_score(100.0, 0.0, 4.0) == -100.0  # clipped
    assert normalised_score(100.0, 0.0, 4.0, floor=None) == pytest.approx(-2400.0)
    assert (
        normalised_score(3.0, 3.0, 3.0) == 100.0 and normalised_score(3.5, 3.0, 3.0) == 0.0
    )  # random found f*
    assert normalised_score(math.inf, 0.0, 1.0) == -100.0
    assert log10_regret(1.01, 1.0) == pytest.approx(-2.0)
    assert log10_regret(1.0, 1.0) == -8.0
    assert list(best_so_far([3, 1, 2, 0.5])) == [3, 1, 1, 0.5]


def test_score_table_ranks_and_wins_by_hand() -> None:
    finals = {
        # no known optimum: f* = 1.0 (best of anyone); random median = 5.0
        "p1": {"random": [4.0, 5.0, 6.0], "a": [1.0, 3.0, 2.0], "b": [5.0, 5.0, 5.0]},
        # known optimum 0.0; random median = 10.0
        "p2": {"random": [10.0, 10.0, 12.0], "a": [5.0, 5.0, 5.0], "b": [0.0, 1.0, 2.0]},
        "p3": {"a": [1.0]},  # no baseline: left out
    }
    assert f_star(finals["p1"], None) == 1.0
    scores = score_table(finals, {"p1": None, "p2": 0.0, "p3": None})
    assert set(scores) == {"p1", "p2"}
    assert scores["p1"]["a"] == pytest.approx([100.0, 50.0, 75.0])
    assert scores["p1"]["b"] == pytest.approx([0.0, 0.0, 0.0])
    assert scores["p2"]["b"] == pytest.approx([100.0, 90.0, 80.0])
    assert scores["p2"]["random"] == pytest.approx([0.0, 0.0, -20.0])
    groups = {"p1": "g1", "p2": "g1"}
    ranks = mean_ranks(scores, groups)["g1"]
    # p1: a 75, b 0, random 0 -> a 1, b/random 2.5 ; p2: b 90, a 50, random -6.7 -> b 1, a 2, random 3
    assert ranks == pytest.approx({"a": 1.5, "b": 1.75, "random": 2.75})
    wl = wins_losses(scores, "a")
    assert wl["b"] == (1, 0, 1) and wl["random"] == (2, 0, 0)
    assert wins_losses(scores, "b", tie=100.0)["a"] == (0, 2, 0)


# -- runner ----------------------------------------------------------------------------------------------------


def test_clean_params_clips_rounds_and_drops_inactive() -> None:
    space = Space(
        {
            "kind": Choice(["a", "b"]),
            "x": Float(0.0, 1.0, step=0.25),
            "n": Int(2, 10, step=2),
            "y": Float(1e-3, 1.0, log=True, when={"kind": "b"}),
        }
    )
    out = clean_params(space, {"kind": "a", "x": 0.3, "n": np.int64(7), "y": 0.5})
    assert out == {"kind": "a", "x": 0.25, "n": 8}
    out = clean_params(space, {"kind": "b", "x": 1.2, "n": 1, "y": 2.0})
    assert out == {"kind": "b", "x": 1.0, "n": 2, "y": 1.0}


def test_runner_with_selftune_random_on_branin() -> None:
    p = get_problem("branin")
    trace = run(p, selftune.RandomSampler(), seed=0, budget=12)
    assert len(trace) == 12 and all(math.isfinite(v) for v in trace)
    assert run(p, selftune.RandomSampler(), seed=0, budget=12) == trace  # the run's seed, not the instance's
    assert run(p, "selftune-random", seed=1, budget=12) != trace
    r = run_detailed(p, "sobol", seed=0, budget=8)
    assert r.optimizer == "selftune-sobol" and r.complete and len(r.ask_seconds) == 8
    assert r.final() == min(r.values)
    assert r.recommended_trace() == list(best_so_far(r.values))
    assert r.versions["selftune-samplers"]


def test_runner_with_random_sampler_on_bbob_2d() -> None:
    pytest.importorskip("cocoex")
    p = get_problem("bbob-f01-d02")
    trace = run(p, selftune.RandomSampler(), seed=0, budget=10)
    assert len(trace) == 10
    assert min(trace) >= p.optimum
    r = run_detailed(p, "random", seed=0, budget=10)
    assert r.error is None and len(r.values) == 10


def test_runner_scores_noisy_runs_on_true_values() -> None:
    pytest.importorskip("cocoex")
    p = get_problem("noisy-mult-f01-d05")
    r = run_detailed(p, "random", seed=2, budget=15)
    assert r.true_values is not None and len(r.true_values) == 15
    i = int(np.argmin(r.values))
    assert r.final() == r.true_values[i]
    assert r.values != r.true_values


def test_runner_records_errors() -> None:
    def boom(space: Space, seed: int, budget: int):  # type: ignore[no-untyped-def]
        raise_after = make_optimizer("random", space, seed, budget)
        raise_after.tell = lambda params, value: (_ for _ in ()).throw(RuntimeError("broken"))  # type: ignore[method-assign]
        return raise_after

    r = run_detailed(get_problem("branin"), boom, seed=0, budget=5)
    assert r.error is not None and "broken" in r.error and len(r.values) == 0
    with pytest.raises(RuntimeError):
        run(get_problem("branin"), boom, seed=0, budget=5)


def test_registry_and_unavailable_selftune_samplers() -> None:
    assert resolve_name("sobol") == "selftune-sobol"
    with pytest.raises(KeyError):
        resolve_name("nope")
    assert unavailable_reason("selftune-random") is None
    assert unavailable_reason("random") is None
    for name in ("selftune-tpe", "selftune-gp", "selftune-auto"):
        why = unavailable_reason(name)
        assert why is None or "does not exist" in why or "not exported" in why
    assert "random" in OPTIMIZERS


def test_measure_latency_with_warm_start() -> None:
    p = get_problem("hartmann6")
    lat = measure_latency("selftune-random", p, levels=(3, 7), asks=2)
    assert set(lat) == {3, 7} and all(len(v) == 2 and min(v) >= 0 for v in lat.values())


# -- peer adapters -------------------------------------------------------------------------------------------

MIXED = FunctionProblem(
    "mixed-conditional",
    lambda q: (
        (math.log10(q["lr"]) + 2) ** 2
        + (q["n"] - 8) ** 2 / 64
        + q["k"] / 10
        + (q["g"] if q["kind"] == "b" else 0.5)
        + (0.0 if q["opt"] is None else 0.1)
    ),
    Space(
        {
            "kind": Choice(["a", "b"]),
            "opt": Choice([None, "x", 3]),
            "lr": Float(1e-4, 1.0, log=True),
            "n": Int(1, 64, log=True),
            "k": Int(0, 10, step=2),
            "g": Float(0.0, 1.0, step=0.25, when={"kind": "b"}),
            "c": Float(2.0, 2.0),
        }
    ),
    10,
)

PEER_MODULES = {
    "optuna-tpe": "optuna",
    "optuna-tpe-mv": "optuna",
    "optuna-gp": "torch",  # Optuna's GPSampler runs on torch
    "optuna-cmaes": "optuna",
    "optuna-random": "optuna",
    "smac": "smac",
    "nevergrad": "nevergrad",
    "hebo": "hebo",
}


@pytest.mark.parametrize("name", sorted(PEER_MODULES))
def test_peer_adapter_on_a_mixed_conditional_space(name: str) -> None:
    for module in {"optuna" if name.startswith("optuna") else PEER_MODULES[name], PEER_MODULES[name]}:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    budget = {"hebo": 4, "smac": 6}.get(name, 12)  # HEBO's first 1 + d asks are quasi-random (fast)
    r = run_detailed(MIXED, name, seed=0, budget=budget, catch=False)
    assert len(r.values) == budget and all(math.isfinite(v) for v in r.values)
    opt = make_optimizer(name, MIXED.space, 0, 10)
    try:
        params = clean_params(
            MIXED.space, {"kind": "b", "opt": None, "lr": 0.01, "n": 8, "k": 4, "g": 0.5, "c": 2.0}
        )
        opt.observe(params, MIXED.evaluate(params))  # a warm start must be accepted
        if name != "hebo":
            asked = opt.ask()
            MIXED.space.validate(asked)
            opt.tell(asked, MIXED.evaluate(asked))
    finally:
        opt.close()


# -- the comparison CLI ------------------------------------------------------------------------------------


def _cli() -> ModuleType:
    return load_benchmark_script("compare_samplers")


def test_compare_samplers_cli_caches_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli()
    args = [
        "--problems", "branin,hartmann6",
        "--optimizers", "selftune-random,sobol",
        "--seeds", "2",
        "--max-budget", "6",
        "--latency-levels", "4",
        "--latency-asks", "1",
        "--results", str(tmp_path / "res"),
        "--report", str(tmp_path / "report.md"),
        "--reference", "selftune-sobol",
    ]  # fmt: skip
    assert cli.main(args) == 0
    text = (tmp_path / "report.md").read_text()
    for heading in (
        "Mean normalised score",
        "Mean rank",
        "Wins / ties / losses",
        "Seconds per ask",
        "Versions:",
    ):
        assert heading in text
    files = sorted((tmp_path / "res").rglob("*.json"))
    assert len(files) == 2 * 3 * 2 + 3  # problems × optimisers (random added) × seeds + latency
    data = json.loads(files[0].read_text())
    assert {"problem_fingerprint", "problem", "result"} <= set(data)
    capsys.readouterr()
    assert cli.main(args) == 0  # everything cached now
    assert "12 cached, 0 to run" in capsys.readouterr().out
    # a rerun with another optimiser only adds its runs, and the report keeps the cached ones
    assert cli.main([*args[:2], "--optimizers", "selftune-random", *args[4:]]) == 0
    assert "`selftune-sobol`" in (tmp_path / "report.md").read_text()


def test_compare_samplers_reuses_results_of_other_versions_only_when_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = _cli()
    args = [
        "--problems", "branin",
        "--optimizers", "selftune-random,sobol",
        "--seeds", "2",
        "--max-budget", "5",
        "--no-latency",
        "--only-requested",
        "--results", str(tmp_path / "res"),
        "--report", str(tmp_path / "report.md"),
    ]  # fmt: skip
    assert cli.main(args) == 0
    # the sobol results as if measured elsewhere, with other library versions
    files = sorted((tmp_path / "res" / "branin").glob("selftune-sobol__*.json"))
    assert len(files) == 2
    for f in files:
        data = json.loads(f.read_text())
        data["result"]["versions"]["selftune-samplers"] = "elsewhere"
        f.write_text(json.dumps(data))
    capsys.readouterr()
    assert cli.main([*args, "--reuse-any-version", "selftune-sobol"]) == 0
    assert "6 cached, 0 to run" in capsys.readouterr().out
    report = (tmp_path / "report.md").read_text()
    assert "`selftune-sobol`: results measured with other versions" in report
    assert "selftune-samplers elsewhere" in report
    # another harness revision is never reused, even when told
    data = json.loads(files[0].read_text())
    data["result"]["versions"]["harness"] = "0"
    files[0].write_text(json.dumps(data))
    assert cli.main([*args, "--reuse-any-version", "selftune-sobol"]) == 0
    assert "5 cached, 1 to run" in capsys.readouterr().out
    # without the flag the results of other versions are recomputed, and the report says nothing of them
    assert cli.main(args) == 0
    assert "5 cached, 1 to run" in capsys.readouterr().out
    assert "other versions" not in (tmp_path / "report.md").read_text()
