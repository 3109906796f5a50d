"""ASHA: the promotion rule, rungs, and what it does in a whole study."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_helpers import hist, rec, running

import selftune
from selftune.exceptions import InvalidParameterError
from selftune.schedulers import Action, ASHAScheduler
from selftune.schedulers.asha import rung_steps
from selftune.trial import TrialState


def test_rung_steps() -> None:
    assert rung_steps(1, 3, 0, None, 100) == [1, 3, 9, 27, 81]
    assert rung_steps(1, 3, 0, 81, 81) == [1, 3, 9, 27]  # max_resource is where trials finish, not a rung
    assert rung_steps(2, 2, 1, 40, 40) == [4, 8, 16, 32]
    assert rung_steps(1, 1.5, 0, 5, 5) == [1, 2, 3]  # rounded, no duplicates


@settings(max_examples=60, deadline=None)
@given(
    others=st.lists(st.floats(-5, 5, allow_nan=False), min_size=0, max_size=30),
    mine=st.floats(-5, 5, allow_nan=False),
    eta=st.sampled_from([2, 3, 4]),
)
def test_promotion_rule_at_the_first_rung(others: list[float], mine: float, eta: int) -> None:
    """Continue iff fewer than max(1, floor(n / eta)) trials at the rung are strictly better."""
    records = [rec(i, {1: v}) for i, v in enumerate(others)]
    me = running(len(others), {1: mine})
    d = ASHAScheduler(reduction_factor=eta).on_report(me, hist([*records, me]))
    n = len(others) + 1
    keep = max(1, n // eta)
    better = sum(v < mine for v in others)
    assert d.stops == (better >= keep)
    if d.stops:
        assert "rung 1" in d.reason and f"only the best {keep}" in d.reason


def test_decides_only_at_rungs() -> None:
    others = [rec(i, {s: 0.0 for s in range(1, 10)}) for i in range(9)]
    me = running(9, {1: 0.0, 2: 5.0})  # terrible at step 2, but step 2 is not a rung
    asha = ASHAScheduler(reduction_factor=3)
    assert asha.on_report(me, hist([*others, me])).action is Action.CONTINUE
    me3 = running(9, {1: 0.0, 2: 5.0, 3: 5.0})
    assert asha.on_report(me3, hist([*others, me3])).stops


def test_sparse_reports_reach_rungs_late() -> None:
    """A trial that reports at step 4 first is judged at rungs 1 and 3 with its step-4 value."""
    others = [rec(i, {1: float(i), 3: float(i)}) for i in range(6)]
    me = running(6, {4: 100.0})
    d = ASHAScheduler(reduction_factor=3).on_report(me, hist([*others, me]))
    assert d.stops and "rung 1" in d.reason


def test_maximize() -> None:
    others = [rec(i, {1: float(i)}) for i in range(6)]  # 0..5, bigger is better
    asha = ASHAScheduler(reduction_factor=3)
    good, bad = running(6, {1: 10.0}), running(6, {1: -1.0})
    assert not asha.on_report(good, hist([*others, good], "maximize")).stops
    assert asha.on_report(bad, hist([*others, bad], "maximize")).stops


def test_max_resource_ends_the_rungs() -> None:
    others = [rec(i, {s: 0.0 for s in range(1, 30)}) for i in range(9)]
    me = running(9, {s: 0.0 for s in range(1, 9)} | {9: 50.0})
    assert ASHAScheduler(max_resource=9).on_report(me, hist([*others, me])).action is Action.CONTINUE
    assert ASHAScheduler().on_report(me, hist([*others, me])).stops


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_resource": 0},
        {"reduction_factor": 1},
        {"reduction_factor": float("nan")},
        {"min_resource": 5, "max_resource": 2},
        {"min_early_stopping_rate": -1},
        {"min_resource": 1.5},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(InvalidParameterError) as err:
        ASHAScheduler(**kwargs)
    assert next(iter(kwargs)) in str(err.value) or "max_resource" in str(err.value)


def test_rungs_thin_out_by_the_reduction_factor() -> None:
    """In a study of independent random flat curves, about 1/eta of each rung reaches the next."""
    def objective(trial: selftune.Trial) -> float:
        level = trial.float("x", 0.0, 1.0)
        for step in range(1, 28):
            trial.report(level, step)
            if trial.should_stop():
                raise selftune.StopTrial()
        return level

    study = selftune.create_study(
        storage="memory", sampler=selftune.RandomSampler(seed=0), scheduler=ASHAScheduler(max_resource=27)
    )
    study.optimize(objective, trials=300, progress=False)
    reached = [sum(1 for t in study.trials if (t.last_step or 0) >= r) for r in (1, 3, 9, 27)]
    assert reached[0] == 300
    for a, b in zip(reached, reached[1:], strict=False):
        assert 0.2 * a <= b <= 0.5 * a, reached
    stopped = [t for t in study.trials if t.state is TrialState.STOPPED]
    assert {t.last_step for t in stopped} <= {1, 3, 9}
    assert all(t.reason and t.reason.startswith("ASHA") for t in stopped)
    # the best of all ran to the end
    assert study.best.value == min(t.intermediate[1] for t in study.trials)
    assert np.isclose(study.best.value, min(t.params["x"] for t in study.trials))
