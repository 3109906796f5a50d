"""Successive halving, asynchronous (ASHA; Li et al., MLSys 2020)."""

from __future__ import annotations

import math
from collections.abc import Callable

from selftune.history import History
from selftune.schedulers._base import CONTINUE, Decision, Scheduler, value_at
from selftune.schedulers._checks import check_factor, check_int
from selftune.trial import TrialRecord, TrialState

__all__ = ["ASHAScheduler", "rung_steps", "promotion_decision"]

_OBSERVED = (TrialState.COMPLETE, TrialState.STOPPED, TrialState.RUNNING, TrialState.PAUSED)


def rung_steps(min_resource: int, reduction_factor: float, first: int, max_resource: int | None, upto: int) -> list[int]:
    """Rung steps ``min_resource * reduction_factor**k`` for ``k >= first``, up to ``max_resource`` (or ``upto``).

    Steps are rounded to integers; a rung at or past ``max_resource`` is not a rung (trials there finish).
    """
    out: list[int] = []
    k = first
    while True:
        step = int(round(min_resource * reduction_factor**k))
        if max_resource is not None and step >= max_resource:
            break
        if max_resource is None and step > upto:
            break
        if not out or step > out[-1]:
            out.append(step)
        k += 1
    return out


def promotion_decision(
    trial: TrialRecord,
    history: History,
    rungs: list[int],
    reduction_factor: float,
    same_group: Callable[[TrialRecord], bool],
    label: str,
) -> Decision:
    """ASHA's rule at the rungs ``trial``'s latest report has just reached.

    At each such rung, the trial continues only if its value there ranks in the best
    ``max(1, floor(n / reduction_factor))`` of the ``n`` trials of its group that reached the rung (any state,
    itself included; ties continue). With fewer than ``reduction_factor`` trials there, only the best goes on.
    """
    step = trial.last_step
    if step is None:
        return CONTINUE
    earlier = [s for s in trial.intermediate if s < step]
    prev = max(earlier) if earlier else -1
    sign = history.sign
    for rung in rungs:
        if not (prev < rung <= step):  # decide once per rung, at the first report that reaches it
            continue
        mine = sign * trial.intermediate[step]
        values = [mine]
        for r in history.trials:
            if r.number == trial.number or r.state not in _OBSERVED or not same_group(r):
                continue
            hit = value_at(r, rung)
            if hit is not None and not math.isnan(hit[1]):
                values.append(sign * hit[1])
        n = len(values)
        keep = max(1, int(n // reduction_factor))
        better = sum(v < mine for v in values)
        if better >= keep:
            return Decision.stop(
                f"{label}: value {sign * mine:.6g} at rung {rung} (step {step}) ranks {better + 1} of {n}; "
                f"only the best {keep} continue"
            )
    return CONTINUE


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving: at each rung, only the best ``1/reduction_factor`` go on.

    Rungs are at steps ``min_resource * reduction_factor**k`` (``k >= min_early_stopping_rate``), below
    ``max_resource`` if given. A trial is judged once at each rung, against every trial that has reached that
    rung so far, so nobody waits for a rung to fill: the workers stay busy (Li et al. 2020).

    Set ``max_resource`` to the last step a trial reports: without it, a rung may fall on the last step and
    a trial that did all its work can still be stopped there.
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: float = 3,
        min_early_stopping_rate: int = 0,
    ) -> None:
        self.min_resource = check_int("min_resource", min_resource, 1)
        self.max_resource = None if max_resource is None else check_int("max_resource", max_resource, 1)
        self.reduction_factor = check_factor(reduction_factor)
        self.min_early_stopping_rate = check_int("min_early_stopping_rate", min_early_stopping_rate, 0)
        if self.max_resource is not None and self.max_resource < self.min_resource:
            from selftune.exceptions import InvalidParameterError

            raise InvalidParameterError(
                f"`max_resource` ({max_resource}) must be >= `min_resource` ({min_resource})"
            )

    def _rungs(self, upto: int) -> list[int]:
        return rung_steps(
            self.min_resource, self.reduction_factor, self.min_early_stopping_rate, self.max_resource, upto
        )

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        step = trial.last_step
        if step is None:
            return CONTINUE
        return promotion_decision(
            trial, history, self._rungs(step), self.reduction_factor, lambda r: True, "ASHA"
        )

    def rungs(self, history: History) -> tuple[int, ...]:
        upto = max((r.last_step or 0 for r in history.trials), default=0)
        return tuple(self._rungs(upto))
