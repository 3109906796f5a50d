"""Synchronous successive halving and Hyperband: trials PAUSE at a rung until their cohort has reached it.

A cohort is a block of consecutive trial numbers. At each rung, once every trial promoted into it has
reported there (or finished), the best ``max(1, floor(m / eta))`` of its ``m`` trials are promoted (resumed)
and the rest STOPPED: exactly the algorithm of the papers, at the price of idle waiting that ASHA avoids.
With one worker nothing idles: paused trials give the worker back, and it starts the next trial of the
cohort. Everything is recomputed from the history, so any worker can resume any paused trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from selftune.exceptions import InvalidParameterError
from selftune.history import History
from selftune.schedulers._base import CONTINUE, Decision, Scheduler, value_at
from selftune.schedulers._checks import check_factor, check_int
from selftune.schedulers.asha import rung_steps
from selftune.trial import TrialRecord, TrialState

__all__ = ["SuccessiveHalvingScheduler", "Cohort", "cohort_decisions"]

_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING, TrialState.PAUSED)


@dataclass(frozen=True)
class Cohort:
    """Trial numbers ``start .. start + size - 1``, halved at ``rungs``."""

    start: int
    size: int
    rungs: tuple[int, ...]
    label: str
    bracket: int = 0

    def __contains__(self, number: int) -> bool:
        return self.start <= number < self.start + self.size


def cohort_decisions(
    cohort: Cohort, history: History, eta: float, closed: bool
) -> dict[int, tuple[int, Decision]]:
    """For each member decided so far: ``(rung index, CONTINUE or STOP)`` at the last rung decided for it.

    A rung is decided when every trial promoted into it has a value there or has finished without one
    (failed: ranked last); rung 0 also needs the cohort to be ``closed`` (all its trials exist, or no more
    will be created). Members of an undecided rung are absent from the result.
    """
    members = [r for r in history.trials if r.number in cohort]
    if not closed and len(members) < cohort.size:
        return {}
    sign = history.sign
    alive = members
    out: dict[int, tuple[int, Decision]] = {}
    for k, rung in enumerate(cohort.rungs):
        values: dict[int, float] = {}
        for r in alive:
            hit = value_at(r, rung)
            if hit is not None:
                values[r.number] = sign * hit[1]
            elif r.state in _UNFINISHED:
                return out  # someone promoted into this rung has not reached it yet
        keep = max(1, int(len(alive) // eta))
        ranked = sorted(alive, key=lambda r: (values.get(r.number, math.inf), r.number))
        promoted = ranked[:keep]
        for i, r in enumerate(ranked):
            if i < keep:
                out[r.number] = (k, CONTINUE)
            else:
                mine = values.get(r.number)
                shown = "no value" if mine is None else f"value {sign * mine:.6g}"
                out[r.number] = (
                    k,
                    Decision.stop(
                        f"{cohort.label}: {shown} at rung {rung} ranks {i + 1} of {len(alive)}; "
                        f"the best {keep} were promoted"
                    ),
                )
        alive = promoted
    return out


class _Synchronous(Scheduler):
    """Shared logic: subclasses say which cohort a trial number belongs to."""

    reduction_factor: float

    def cohort(self, number: int) -> Cohort:
        raise NotImplementedError

    def _closed(self, cohort: Cohort, history: History, final: bool) -> bool:
        return final or sum(1 for r in history.trials if r.number in cohort) >= cohort.size

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        cohort = self.cohort(trial.number)
        step = trial.last_step
        if step is None or not cohort.rungs:
            return CONTINUE
        earlier = [s for s in trial.intermediate if s < step]
        prev = max(earlier) if earlier else -1
        reached = [k for k, rung in enumerate(cohort.rungs) if prev < rung <= step]
        if not reached:
            return CONTINUE
        decided = cohort_decisions(cohort, history, self.reduction_factor, self._closed(cohort, history, False))
        k_last = reached[-1]
        got = decided.get(trial.number)
        if got is None or got[0] < k_last:
            waiting = sum(1 for r in history.trials if r.number in cohort and value_at(r, cohort.rungs[k_last]))
            return Decision.pause(
                f"{cohort.label}: waiting at rung {cohort.rungs[k_last]} ({waiting} of the cohort there so far)"
            )
        return got[1]

    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        by_cohort: dict[int, tuple[Cohort, list[TrialRecord]]] = {}
        for r in history.trials:
            if r.state is TrialState.PAUSED:
                c = self.cohort(r.number)
                by_cohort.setdefault(c.start, (c, []))[1].append(r)
        out: dict[int, Decision] = {}
        for c, paused in by_cohort.values():
            decided = cohort_decisions(c, history, self.reduction_factor, self._closed(c, history, final))
            for r in paused:
                if r.number not in decided:
                    continue
                k, d = decided[r.number]
                at = [i for i, rung in enumerate(c.rungs) if value_at(r, rung) is not None]
                if d.stops or (at and k >= at[-1]):  # stopped, or promoted past the rung it waits at
                    out[r.number] = d
        return out


class SuccessiveHalvingScheduler(_Synchronous):
    """Synchronous successive halving (Jamieson & Talwalkar 2016; Karnin et al. 2013).

    Trials come in cohorts of ``cohort_size`` consecutive trial numbers (default ``eta**K`` for ``K`` rungs, so
    one trial survives to ``max_resource``). Rungs are at ``min_resource * eta**k`` below ``max_resource``.
    A trial reaching a rung PAUSEs until its whole cohort is there; then the best ``1/eta`` are resumed and
    the rest STOPPED. Needs an objective that checkpoints (``trial.save_checkpoint`` / ``load_checkpoint``) or
    that can redo its first steps: a resumed trial may report its earlier steps again, they are ignored.
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int,
        reduction_factor: float = 3,
        cohort_size: int | None = None,
    ) -> None:
        self.min_resource = check_int("min_resource", min_resource, 1)
        self.max_resource = check_int("max_resource", max_resource, 1)
        self.reduction_factor = check_factor(reduction_factor)
        if self.max_resource < self.min_resource:
            raise InvalidParameterError(f"`max_resource` ({max_resource}) must be >= `min_resource` ({min_resource})")
        self._rungs = tuple(rung_steps(self.min_resource, self.reduction_factor, 0, self.max_resource, 0))
        default = int(round(self.reduction_factor ** len(self._rungs)))
        self.cohort_size = default if cohort_size is None else check_int("cohort_size", cohort_size, 1)

    def cohort(self, number: int) -> Cohort:
        start = (number // self.cohort_size) * self.cohort_size
        return Cohort(start, self.cohort_size, self._rungs, f"successive halving cohort {start // self.cohort_size}")

    def rungs(self, history: History) -> tuple[int, ...]:
        return self._rungs


class SyncHyperband(_Synchronous):
    """The synchronous side of :class:`~selftune.schedulers.HyperbandScheduler` (``synchronous=True``)."""

    def __init__(self, sizes: Sequence[int], rung_lists: Sequence[Sequence[int]], reduction_factor: float) -> None:
        self._cohorts = SyncHyperbandCohorts(sizes, rung_lists)
        self.reduction_factor = reduction_factor

    def cohort(self, number: int) -> Cohort:
        return self._cohorts.cohort(number)


class SyncHyperbandCohorts:
    """Cohorts of synchronous Hyperband: brackets ``b = 0 .. s_max`` in turn, ``sizes[b]`` trials each."""

    def __init__(self, sizes: Sequence[int], rung_lists: Sequence[Sequence[int]]) -> None:
        self.sizes = list(sizes)
        self.rung_lists = [tuple(r) for r in rung_lists]
        self.cycle = sum(self.sizes)

    def cohort(self, number: int) -> Cohort:
        base = (number // self.cycle) * self.cycle
        offset = number - base
        for b, n in enumerate(self.sizes):
            if offset < n:
                return Cohort(base, n, self.rung_lists[b], f"Hyperband bracket {b} (cohort at trial {base})", b)
            base += n
            offset -= n
        raise AssertionError("unreachable")  # pragma: no cover
