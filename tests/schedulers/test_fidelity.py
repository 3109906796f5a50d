"""The sampler's view under early stopping: the highest fidelity with enough data (BOHB-style)."""

from __future__ import annotations

from scheduler_helpers import hist, rec, running

from selftune.schedulers import fidelity_view
from selftune.trial import TrialRecord, TrialState


def test_too_little_data_leaves_the_history_alone() -> None:
    h = hist([rec(0, {1: 1.0}), running(1, {1: 2.0})])
    assert fidelity_view(h, [1, 3], min_points=5) is h


def test_highest_rung_with_enough_points() -> None:
    records = [rec(i, {1: float(i), 3: float(i) / 2}) for i in range(6)]  # reached rung 3
    records += [rec(i, {1: 10.0 + i}) for i in range(6, 12)]  # stopped at rung 1
    records += [running(12, {1: 0.5}), running(13, {})]
    records += [TrialRecord(number=14, state=TrialState.FAILED)]
    view = fidelity_view(hist(records), [1, 3, 9], min_points=5)
    by = {r.number: r for r in view.trials}
    assert [by[i].value for i in range(6)] == [i / 2 for i in range(6)]  # values at rung 3
    assert all(by[i].state is TrialState.COMPLETE for i in range(6))
    assert all(by[i].state is TrialState.STOPPED for i in range(6, 12))  # stopped below: not modelled (BOHB)
    imputed = {r.number: r for r in fidelity_view(hist(records), [1, 3, 9], min_points=5, impute_stopped=True).trials}
    assert all(imputed[i].state is TrialState.COMPLETE for i in range(12))
    assert all(imputed[i].value == 2.5 for i in range(6, 12))  # the worst value at rung 3
    assert by[12].state is TrialState.RUNNING and by[13].state is TrialState.RUNNING  # pending stays pending
    assert by[14].state is TrialState.FAILED
    assert [dict(r.params) for r in view.trials] == [dict(r.params) for r in hist(records).trials]


def test_rung_one_when_rung_three_is_thin() -> None:
    records = [rec(i, {1: float(i), 3: float(i)}) for i in range(2)]
    records += [rec(i, {1: 10.0 + i}) for i in range(2, 8)]
    view = fidelity_view(hist(records), [1, 3], min_points=5)
    assert [r.value for r in view.trials] == [0.0, 1.0, *[10.0 + i for i in range(2, 8)]]
    assert len(view.complete) == 8


def test_complete_trials_win_once_there_are_enough() -> None:
    records = [rec(i, {1: 5.0, 27: float(i)}, TrialState.COMPLETE) for i in range(5)]
    records += [rec(i, {1: 100.0 + i}) for i in range(5, 9)]
    view = fidelity_view(hist(records), [1, 3, 9], min_points=5)
    assert [r.value for r in view.complete] == [0.0, 1.0, 2.0, 3.0, 4.0]
    view = fidelity_view(hist(records), [1, 3, 9], min_points=5, impute_stopped=True)
    assert [r.value for r in view.complete] == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_maximize_takes_the_worst_as_the_lowest() -> None:
    records = [rec(i, {1: float(i)}) for i in range(5)]
    records += [rec(5, {0: 7.0})]  # stopped before rung 1
    view = fidelity_view(hist(records, "maximize"), [1], min_points=5, impute_stopped=True)
    assert view.trials[5].value == 0.0
