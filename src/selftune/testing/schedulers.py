"""The scheduler conformance suite: subclass :class:`SchedulerConformance` and provide ``make_scheduler``.

``make_scheduler()`` must return a new scheduler configured for curves of :data:`MAX_STEP` steps
(steps ``1 .. MAX_STEP``). A scheduler that never stops anything on purpose, or one that waits for every
trial of a cohort (synchronous successive halving: the suite's histories hold trials that never report),
sets ``stops_bad_trials = False``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from collections.abc import Callable

import numpy as np

from selftune.history import History
from selftune.schedulers import Action, Decision, Scheduler
from selftune.trial import TrialRecord, TrialState

__all__ = ["SchedulerConformance", "MAX_STEP", "curve_history"]

#: the number of steps of the curves the suite makes
MAX_STEP = 27


def _curve(level: float, steps: int, rng: np.random.Generator) -> dict[int, float]:
    t = np.arange(1, steps + 1)
    values = level + 1.0 / np.sqrt(t) + 0.01 * rng.standard_normal(steps)
    return {int(s): float(v) for s, v in zip(t, values, strict=True)}


def curve_history(n: int, seed: int = 0, *, direction: str = "minimize") -> History:
    """``n`` trials with noisy decreasing curves at random levels, in every state, some with ±inf reports.

    Trial ``i`` is COMPLETE (full curve), STOPPED (curve cut short), RUNNING (partial), FAILED or WAITING.
    With ``direction="maximize"`` every value is negated, so decisions must be the same.
    """
    rng = np.random.default_rng(seed)
    sign = 1.0 if direction == "minimize" else -1.0
    records = []
    for i in range(n):
        level = float(rng.uniform(0, 2))
        kind = i % 9
        steps = MAX_STEP
        state = TrialState.COMPLETE
        if kind in (1, 4):
            state, steps = TrialState.STOPPED, int(rng.integers(1, MAX_STEP))
        elif kind == 2:
            state, steps = TrialState.RUNNING, int(rng.integers(1, MAX_STEP))
        elif kind == 7:
            state, steps = TrialState.FAILED, int(rng.integers(0, 4))
        elif kind == 8:
            state, steps = TrialState.WAITING, 0
        inter = _curve(level, steps, rng) if steps else {}
        if i % 17 == 5 and inter:
            inter[max(inter)] = math.inf
        inter = {s: sign * v for s, v in inter.items()}
        value = None
        if state is TrialState.COMPLETE:
            value = inter[max(inter)]
        elif state is TrialState.STOPPED:
            value = inter[max(inter)]
        records.append(TrialRecord(number=i, state=state, params={"x": level}, value=value, intermediate=inter))
    return History(records, direction=direction, params={})


def _running(number: int, curve: dict[int, float], upto: int) -> TrialRecord:
    return TrialRecord(
        number=number,
        state=TrialState.RUNNING,
        params={"x": 0.0},
        intermediate={s: v for s, v in curve.items() if s <= upto},
    )


def _with(history: History, trial: TrialRecord) -> History:
    """``history`` with ``trial`` in it (the study's view includes the reporting trial itself)."""
    others = [r for r in history.trials if r.number != trial.number]
    return History(sorted([*others, trial], key=lambda r: r.number), direction=history.direction, params={})


class SchedulerConformance:
    """Behaviour every scheduler must have. Needs a ``make_scheduler`` fixture returning ``() -> Scheduler``."""

    stops_bad_trials: bool = True

    def _decisions(self, scheduler: Scheduler, history: History, number: int, curve: dict[int, float]) -> list[Decision]:
        out = []
        for step in sorted(curve):
            trial = _running(number, curve, step)
            out.append(scheduler.on_report(trial, _with(history, trial)))
        return out

    def test_returns_decisions(self, make_scheduler: Callable[[], Scheduler]) -> None:
        history = curve_history(40)
        curve = _curve(1.0, MAX_STEP, np.random.default_rng(1))
        for d in self._decisions(make_scheduler(), history, 40, curve):
            assert isinstance(d, Decision) and isinstance(d.action, Action)
            assert isinstance(d.reason, str)
            if d.action is Action.STOP:
                assert d.reason, "a stop decision says why"

    def test_deterministic_and_stateless(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """The same facts give the same decision: on a fresh scheduler, a copy, a pickled one, in any order."""
        history = curve_history(60, seed=2)
        rng = np.random.default_rng(3)
        curves = [_curve(float(rng.uniform(0, 2)), MAX_STEP, rng) for _ in range(4)]
        s = make_scheduler()
        forward = [self._decisions(s, history, 60 + i, c) for i, c in enumerate(curves)]
        backward = [self._decisions(s, history, 60 + i, c) for i, c in reversed(list(enumerate(curves)))][::-1]
        fresh = [self._decisions(make_scheduler(), history, 60 + i, c) for i, c in enumerate(curves)]
        clone = pickle.loads(pickle.dumps(copy.deepcopy(s)))
        cloned = [self._decisions(clone, history, 60 + i, c) for i, c in enumerate(curves)]
        assert forward == backward == fresh == cloned

    def test_lone_trial_is_not_stopped(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """With nothing to compare against, a trial runs to the end."""
        curve = _curve(5.0, MAX_STEP, np.random.default_rng(0))
        empty = History([], params={})
        assert all(not d.stops for d in self._decisions(make_scheduler(), empty, 0, curve))

    def test_best_trial_is_never_stopped(self, make_scheduler: Callable[[], Scheduler]) -> None:
        history = curve_history(80, seed=4)
        curve = _curve(-10.0, MAX_STEP, np.random.default_rng(5))  # better than every trial at every step
        assert all(not d.stops for d in self._decisions(make_scheduler(), history, 80, curve))

    def test_stops_a_clearly_bad_trial(self, make_scheduler: Callable[[], Scheduler]) -> None:
        if not self.stops_bad_trials:
            return
        history = curve_history(80, seed=6)
        curve = _curve(50.0, MAX_STEP, np.random.default_rng(7))  # worse than every trial at every step
        # several trial numbers: a scheduler may let some trials run on regardless (Hyperband's last bracket)
        stopped = [any(d.stops for d in self._decisions(make_scheduler(), history, n, curve)) for n in range(80, 86)]
        assert sum(stopped) >= 3, "a trial worse than every other at every step is stopped"

    def test_direction_symmetry(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """Maximising negated values decides exactly as minimising the values."""
        rng = np.random.default_rng(8)
        for k in range(3):
            curve = _curve(float(rng.uniform(0, 2.5)), MAX_STEP, rng)
            low = self._decisions(make_scheduler(), curve_history(50, seed=k), 50, curve)
            neg = {s: -v for s, v in curve.items()}
            high = self._decisions(make_scheduler(), curve_history(50, seed=k, direction="maximize"), 50, neg)
            assert [d.action for d in low] == [d.action for d in high]

    def test_infinite_values(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """±inf in reports (diverged runs) are handled: -inf (for a loss) is best, +inf worst; no crash."""
        history = curve_history(40, seed=9)
        bad = {s: math.inf for s in range(1, MAX_STEP + 1)}
        good = {s: -math.inf for s in range(1, MAX_STEP + 1)}
        s = make_scheduler()
        assert all(not d.stops for d in self._decisions(s, history, 40, good))
        stopped = [any(d.stops for d in self._decisions(s, history, n, bad)) for n in range(41, 47)]
        if self.stops_bad_trials:
            assert sum(stopped) >= 3

    def test_sparse_and_irregular_steps(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """Reports every few steps, or a first report late, are fine."""
        history = curve_history(40, seed=10)
        curve = _curve(1.0, MAX_STEP, np.random.default_rng(11))
        sparse = {s: v for s, v in curve.items() if s % 4 == 0 or s == MAX_STEP}
        for d in self._decisions(make_scheduler(), history, 40, sparse):
            assert isinstance(d, Decision)

    def test_for_sampler_keeps_trials(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """The sampler's view has the same trials (numbers, parameters), direction and domains."""
        for direction in ("minimize", "maximize"):
            history = curve_history(60, seed=12, direction=direction)
            view = make_scheduler().for_sampler(history)
            assert isinstance(view, History)
            assert [r.number for r in view.trials] == [r.number for r in history.trials]
            assert [dict(r.params) for r in view.trials] == [dict(r.params) for r in history.trials]
            assert view.direction == history.direction
            assert all(r.value is not None and not math.isnan(r.value) for r in view.complete)
            pending = {r.number for r in history.pending}
            assert {r.number for r in view.pending} <= pending
            assert {r.number for r in view.failed} == {r.number for r in history.failed}

    def test_on_paused_decides_paused_trials_only(self, make_scheduler: Callable[[], Scheduler]) -> None:
        """Decisions on PAUSED trials: only for them, CONTINUE or STOP, deterministic; ``final`` decides no fewer."""
        base = curve_history(60, seed=14)
        records = [
            dataclasses.replace(r, state=TrialState.PAUSED) if r.state is TrialState.RUNNING and r.intermediate else r
            for r in base.trials
        ]
        history = History(records, direction=base.direction, params={})
        paused = {r.number for r in records if r.state is TrialState.PAUSED}
        for final in (False, True):
            out = make_scheduler().on_paused(history, final)
            assert set(out) <= paused
            assert all(d.action in (Action.CONTINUE, Action.STOP) for d in out.values())
            assert out == make_scheduler().on_paused(history, final)
        assert len(make_scheduler().on_paused(history, True)) >= len(make_scheduler().on_paused(history, False))

    def test_rungs_sorted(self, make_scheduler: Callable[[], Scheduler]) -> None:
        rungs = make_scheduler().rungs(curve_history(30, seed=13))
        assert list(rungs) == sorted(set(rungs))
        assert all(isinstance(r, int) and r >= 0 for r in rungs)




