"""The equal-compute harness for early stopping."""

from __future__ import annotations

import math
from typing import Any

import pytest

from selftune.benchmarks.curves import StepCounter, SyntheticCurves, get_curve_problem
from selftune.benchmarks.multifidelity import MF_METHODS, MFRun, run_mf
from selftune.exceptions import InvalidParameterError

PROBLEM = SyntheticCurves(max_steps=9)


@pytest.mark.parametrize(
    "method",
    [
        "selftune-asha-tpe",
        "selftune-asha-auto",
        "selftune-sha-tpe",
        "selftune-hyperband-sync-tpe",
        "selftune-full-tpe",
        "optuna-tpe-hyperband",
    ],
)
def test_runs_spend_the_budget(method: str) -> None:
    run = run_mf(method, PROBLEM, seed=0, budget=90)
    spent = [s for s, _ in run.trace]
    assert spent == sorted(spent) and spent[-1] >= 90 and spent[-2] < 90  # stops at the first trial past it
    if "sha" in method or "sync" in method:  # trials left paused at a rung when the budget ran out
        assert run.trials >= len(run.trace)
    else:
        assert run.trials == len(run.trace)
    values = [v for _, v in run.trace]
    first = next(i for i, v in enumerate(values) if math.isfinite(v))  # from the first COMPLETE trial on
    assert all(0.0 <= v <= 1.0 for v in values[first:])
    if method == "selftune-full-tpe":
        assert run.stopped == 0 and spent == [9 * (i + 1) for i in range(len(spent))]
    else:
        assert run.stopped > 0


@pytest.mark.parametrize("method", ["selftune-hyperband-tpe", "optuna-tpe-hyperband"])
def test_the_same_seed_gives_the_same_run(method: str) -> None:
    """Optuna's HyperbandPruner picks brackets by a hash of the study name: the harness names the study."""
    a = run_mf(method, PROBLEM, seed=4, budget=60)
    b = run_mf(method, PROBLEM, seed=4, budget=60)
    assert a.trace == b.trace and a.stopped == b.stopped


def test_run_queries() -> None:
    run = MFRun("m", "p", 0, 100, trace=[(10, math.inf), (20, 0.5), (40, 0.3)])
    assert run.value_at(5) == math.inf and run.value_at(25) == 0.5 and run.value_at(100) == 0.3
    assert run.steps_to_reach(0.4) == 40 and run.steps_to_reach(0.1) == math.inf


def test_synthetic_curves_cross_and_validate() -> None:
    """A high learning rate looks best early and ends worse: early stopping can be fooled, as in practice."""
    p = SyntheticCurves(max_steps=81, noise=0.0)
    base = {"weight_decay": 1e-4, "width": 256, "depth": 3, "dropout": 0.25, "batch_size": 64, "optimizer": "sgd"}
    fast, good = {**base, "lr": 0.8}, {**base, "lr": 0.1}
    import numpy as np

    early, late = np.array([1]), np.array([81])
    assert p.curve(fast, early)[0] < p.curve(good, early)[0]
    assert p.curve(fast, late)[0] > p.curve(good, late)[0]
    counter = StepCounter()
    with pytest.raises(InvalidParameterError, match="optimizer"):
        p.run({**base, "lr": 0.1, "optimizer": "lion"}, lambda s, v: False, 0)
    assert counter.steps == 0


def test_unknown_names() -> None:
    with pytest.raises(InvalidParameterError, match="unknown method"):
        run_mf("nope", PROBLEM, 0, 10)
    with pytest.raises(InvalidParameterError, match="unknown curve problem"):
        get_curve_problem("nope")
    assert set(MF_METHODS) >= {"selftune-asha-tpe", "optuna-tpe-sha"}


class _WithTestSplit(SyntheticCurves):
    """Synthetic curves whose "test error" is the final value of the same (seeded) run: the network the
    trial trained, as on the PyTorch problems."""

    def test_error(self, params: dict[str, Any], seed: int = 0) -> float:
        return self.run(params, lambda step, value: False, seed)  # the noisy value it reported, not the noiseless one


@pytest.mark.parametrize("method", ["selftune-asha-tpe", "selftune-full-tpe", "optuna-tpe-hyperband"])
def test_the_test_trace_scores_each_recommended_network(method: str) -> None:
    """Each change of recommendation gets the test error of the very run that trial trained (its seed)."""
    problem = _WithTestSplit(max_steps=9, noise=0.05)
    run = run_mf(method, problem, seed=1, budget=120)
    assert run.incumbents and len(run.test_trace) == len(run.incumbents)
    # the recommendation changes exactly where the trace's score does
    changes = [s for i, (s, v) in enumerate(run.trace) if math.isfinite(v) and (i == 0 or v != run.trace[i - 1][1])]
    assert [s for s, _, _ in run.incumbents] == changes == [s for s, _ in run.test_trace]
    # the same seeds give the same final values: each new incumbent's replayed value is lower than the last
    finals = [v for _, v in run.test_trace]
    assert finals == sorted(finals, reverse=True) and len(set(finals)) == len(finals)
    last = run.test_trace[-1][0]
    assert run.value_at(last, test=True) == finals[-1] and run.value_at(0, test=True) == math.inf
    assert run.steps_to_reach(finals[-1], test=True) == run.test_trace[-1][0]


def test_no_test_split_no_test_trace() -> None:
    run = run_mf("selftune-full-tpe", PROBLEM, seed=0, budget=45)
    assert run.incumbents and run.test_trace == []
