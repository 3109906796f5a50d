"""ASHA: the promotion rule, rungs, and what it does in a whole study."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scheduler_helpers import checkpointing_level, hist, rec, running, two_worker_processes

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
        {"variant": "promote"},
        {"variant": None},
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


# -- the promotion variant (the paper's ASHA) -------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    others=st.lists(st.floats(-5, 5, allow_nan=False), min_size=0, max_size=30),
    mine=st.floats(-5, 5, allow_nan=False),
    eta=st.sampled_from([2, 3, 4]),
)
def test_promotion_variant_pauses_unless_in_the_top_share(others: list[float], mine: float, eta: int) -> None:
    """Go on iff fewer than floor(n / eta) trials at the rung are strictly better; otherwise PAUSE, never stop."""
    records = [rec(i, {1: v}, TrialState.PAUSED) for i, v in enumerate(others)]
    me = running(len(others), {1: mine})
    d = ASHAScheduler(reduction_factor=eta, variant="promotion").on_report(me, hist([*records, me]))
    keep = (len(others) + 1) // eta
    better = sum(v < mine for v in others)
    assert d.action is (Action.CONTINUE if better < keep else Action.PAUSE)
    if d.action is Action.PAUSE:
        assert "rung 1" in d.reason and f"ranks {better + 1} of {len(others) + 1}" in d.reason


def test_promotion_variant_resumes_a_paused_trial_once_it_ranks_high_enough() -> None:
    asha = ASHAScheduler(reduction_factor=3, max_resource=27, variant="promotion")
    first = rec(0, {1: 0.5}, TrialState.PAUSED)
    second = rec(1, {1: 0.7}, TrialState.PAUSED)
    assert asha.on_paused(hist([first, second]), final=False) == {}  # 2 at the rung: nobody is promoted yet
    third = rec(2, {1: 0.9}, TrialState.PAUSED)
    out = asha.on_paused(hist([first, second, third]), final=False)
    assert list(out) == [0] and out[0].action is Action.CONTINUE  # the best of 3
    # once trial 0 has gone on, the rung's top third is taken: the others wait for more arrivals
    moved = rec(0, {1: 0.5, 2: 0.4}, TrialState.RUNNING)
    assert asha.on_paused(hist([moved, second, third]), final=False) == {}
    late = [rec(i, {1: 1.0 + i}, TrialState.STOPPED) for i in range(3, 6)]
    out = asha.on_paused(hist([moved, second, third, *late]), final=False)
    assert list(out) == [1]  # 6 at the rung: the best 2 go on, trial 0 and now trial 1


def test_promotion_variant_promotes_the_highest_rung_first() -> None:
    asha = ASHAScheduler(reduction_factor=3, max_resource=27, variant="promotion")
    low = [rec(i, {1: float(i)}, TrialState.PAUSED) for i in range(3)]  # trial 0 promotable at rung 1
    high = [rec(3 + i, {1: -1.0, 2: -1.0, 3: float(i)}, TrialState.PAUSED) for i in range(3)]  # trial 3 at rung 3
    out = asha.on_paused(hist([*low, *high]), final=False)
    assert list(out) == [3]


def test_promotion_variant_final_promotes_the_best_and_stops_the_rest() -> None:
    """When no more trials will come, the best of each rung goes on even below eta trials, the others stop."""
    asha = ASHAScheduler(reduction_factor=3, max_resource=27, variant="promotion")
    paused = [rec(0, {1: 0.1, 2: 0.1, 3: 0.1}, TrialState.PAUSED), rec(1, {1: 0.2, 2: 0.2, 3: 0.3}, TrialState.PAUSED)]
    assert asha.on_paused(hist(paused), final=False) == {}
    out = asha.on_paused(hist(paused), final=True)
    assert out[0].action is Action.CONTINUE
    assert out[1].stops and "not promoted" in out[1].reason


def test_promotion_variant_final_waits_for_trials_that_may_still_reach_the_rung() -> None:
    """Another worker's trial still below rung 3 may arrive there and widen its top third: a paused trial at
    rung 3 is not stopped until then (stopping is final); one at a rung nobody can reach any more is."""
    asha = ASHAScheduler(reduction_factor=3, max_resource=27, variant="promotion")
    paused = [rec(0, {1: 0.1, 2: 0.1, 3: 0.1}, TrialState.PAUSED), rec(1, {1: 0.2, 2: 0.2, 3: 0.3}, TrialState.PAUSED)]
    below = running(2, {1: 0.05, 2: 0.05})
    out = asha.on_paused(hist([*paused, below]), final=True)
    assert list(out) == [0] and out[0].action is Action.CONTINUE
    past = running(2, {1: 0.05, 2: 0.05, 3: 0.05, 4: 0.05})
    out = asha.on_paused(hist([*paused, past]), final=True)
    assert out[1].stops


def test_promotion_variant_final_waits_for_paused_trials_promoted_below_the_rung() -> None:
    """A paused trial promoted from rung 1 at the end may reach rung 3 and widen its top third (the two-worker
    test saw a best-third trial at rung 3 stopped this way): rung 3's paused trials wait until it got there."""
    asha = ASHAScheduler(reduction_factor=3, max_resource=27, variant="promotion")
    at_3 = [rec(0, {1: 0.1, 2: 0.1, 3: 0.1}, TrialState.PAUSED), rec(1, {1: 0.2, 2: 0.2, 3: 0.3}, TrialState.PAUSED)]
    at_1 = [rec(2, {1: 0.05}, TrialState.PAUSED)]
    out = asha.on_paused(hist([*at_3, *at_1]), final=True)
    assert not any(d.stops for d in out.values()), out
    arrived = rec(2, {1: 0.05, 2: 0.05, 3: 0.2}, TrialState.PAUSED)
    out = asha.on_paused(hist([*at_3, arrived]), final=True)
    assert out[1].stops and out[0].action is Action.CONTINUE


def test_promotion_variant_in_a_study() -> None:
    study = selftune.create_study(
        storage="memory",
        sampler=selftune.RandomSampler(seed=0),
        scheduler=ASHAScheduler(max_resource=27, variant="promotion"),
    )
    study.optimize(checkpointing_level, trials=81, progress=False)
    trials = study.trials
    assert len(trials) == 81 and all(t.state in (TrialState.COMPLETE, TrialState.STOPPED) for t in trials)
    reached = [sum(1 for t in trials if (t.last_step or 0) >= r) for r in (1, 3, 9, 27)]
    assert reached[0] == 81
    for a, b in zip(reached, reached[1:], strict=False):  # about a third goes on from each rung
        assert a // 3 <= b <= a // 3 + a // 6, reached
    # every curve is whole: paused and resumed, never a step twice or a gap
    assert all(list(t.intermediate) == list(range(1, t.last_step + 1)) for t in trials)  # type: ignore[operator]
    # the best configuration is promoted at every rung and finishes
    best = min(trials, key=lambda t: t.params["x"])
    assert best.state is TrialState.COMPLETE and study.best.number == best.number
    # trials that ran out of promotions were stopped at a rung, saying why
    stopped = [t for t in trials if t.state is TrialState.STOPPED]
    assert {t.last_step for t in stopped} <= {1, 3, 9}
    assert all(t.reason and t.reason.startswith("ASHA") for t in stopped)


@pytest.mark.slow
def test_promotion_variant_with_two_worker_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two processes share the paused trials through the storage: every trial ends finished, with a whole
    curve, and the halving holds whoever resumed what."""
    from selftune.benchmarks.curves import SyntheticCurves

    url = f"sqlite:///{tmp_path / 'asha.db'}"
    selftune.create_study("asha", storage=url, space=SyntheticCurves(max_steps=27).space).close()
    trials = two_worker_processes(url, "asha", 54, "asha-promotion")
    assert 54 <= len(trials) <= 55 and all(t.state.finished for t in trials)
    assert len({t.worker for t in trials}) == 2
    assert all(list(t.intermediate) == list(range(1, t.last_step + 1)) for t in trials)  # type: ignore[operator]
    for rung, after in ((1, 3), (3, 9), (9, 27)):
        at = sorted((t for t in trials if (t.last_step or 0) >= rung), key=lambda t: t.intermediate[rung])
        went_on = [t for t in at if (t.last_step or 0) >= after]
        # at least the rung's best third went on, every one of them (none was left paused or stopped) ...
        assert all((t.last_step or 0) >= after for t in at[: max(1, len(at) // 3)]), rung
        # ... and not everybody: (more than a third may go on: ASHA promotes on the ranks seen at the time, and
        # TPE's later trials are better than the early ones it promoted)
        assert len(at) // 3 <= len(went_on) < len(at), (rung, len(at), len(went_on))
    assert any(t.state is TrialState.COMPLETE for t in trials)
