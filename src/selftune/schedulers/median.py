"""Percentile and median stopping (Golovin et al. 2017, Google Vizier; Optuna's MedianPruner)."""

from __future__ import annotations

import numpy as np

from selftune.history import History
from selftune.schedulers._base import CONTINUE, Decision, Scheduler
from selftune.schedulers._checks import check_float, check_int
from selftune.trial import TrialRecord, TrialState

__all__ = ["PercentileStopping", "MedianStopping"]


class PercentileStopping(Scheduler):
    """Stop a trial whose best value so far is worse than the ``percentile``-th best of the finished
    trials' values at the same step.

    ``percentile=25`` keeps trials in the best quarter. Nothing is stopped before ``startup_trials`` trials
    have COMPLETEd, before step ``warmup_steps``, off the ``interval_steps`` grid, or while fewer than
    ``min_trials`` finished trials reported the step.
    """

    def __init__(
        self,
        percentile: float,
        *,
        startup_trials: int = 5,
        warmup_steps: int = 0,
        interval_steps: int = 1,
        min_trials: int = 1,
    ) -> None:
        self.percentile = check_float("percentile", percentile, 0.0, 100.0)
        self.startup_trials = check_int("startup_trials", startup_trials, 0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.interval_steps = check_int("interval_steps", interval_steps, 1)
        self.min_trials = check_int("min_trials", min_trials, 1)

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        step = trial.last_step
        if step is None or step < self.warmup_steps or (step - self.warmup_steps) % self.interval_steps:
            return CONTINUE
        finished = history.complete
        if len(finished) < self.startup_trials:
            return CONTINUE
        sign = history.sign
        others = np.array(
            [sign * r.intermediate[step] for r in finished if r.number != trial.number and step in r.intermediate]
        )
        others = others[~np.isnan(others)]
        if others.size < self.min_trials:
            return CONTINUE
        best_so_far = min(sign * v for v in trial.intermediate.values())
        cutoff = float(np.percentile(others, self.percentile))
        if best_so_far > cutoff:
            return Decision.stop(
                f"{type(self).__name__}: best value so far {sign * best_so_far:.6g} is worse than the "
                f"{self.percentile:g}th percentile {sign * cutoff:.6g} of {others.size} finished trials at step {step}"
            )
        return CONTINUE

    def rungs(self, history: History) -> tuple[int, ...]:
        """Every step the finished trials reported, from ``warmup_steps`` on the interval grid."""
        steps = {s for r in history.with_state(TrialState.COMPLETE) for s in r.intermediate}
        return tuple(
            sorted(s for s in steps if s >= self.warmup_steps and (s - self.warmup_steps) % self.interval_steps == 0)
        )


class MedianStopping(PercentileStopping):
    """Stop a trial whose best value so far is worse than the median of finished trials at the same step."""

    def __init__(
        self, *, startup_trials: int = 5, warmup_steps: int = 0, interval_steps: int = 1, min_trials: int = 1
    ) -> None:
        super().__init__(
            50.0,
            startup_trials=startup_trials,
            warmup_steps=warmup_steps,
            interval_steps=interval_steps,
            min_trials=min_trials,
        )
