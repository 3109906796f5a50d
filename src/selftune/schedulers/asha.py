"""Successive halving, asynchronous (ASHA; Li et al., MLSys 2020): the stopping and the promotion variant."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Literal

from selftune.history import History
from selftune.schedulers._base import CONTINUE, Action, Decision, Scheduler, value_at
from selftune.schedulers._checks import check_factor, check_int
from selftune.trial import TrialRecord, TrialState

__all__ = ["ASHAScheduler", "rung_steps", "promotion_decision", "pause_at_rung", "paused_promotions", "VARIANTS"]

#: ASHA's variants: decide when a trial reaches a rung (``"stopping"``), or pause it there until it ranks
#: high enough to be promoted (``"promotion"``, the paper's algorithm)
VARIANTS = ("stopping", "promotion")

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
    miss = _short_rung(trial, history, rungs, reduction_factor, same_group, at_least_one=True)
    if miss is None:
        return CONTINUE
    rung, rank, n, keep = miss
    return Decision.stop(f"{_ranked(label, trial, rung, rank, n)}; only the best {keep} continue")


def _ranked(label: str, trial: TrialRecord, rung: int, rank: int, n: int) -> str:
    """The start of a rung decision's reason: where ``trial``'s latest value ranks at ``rung``."""
    step = trial.last_step or 0
    return f"{label}: value {trial.intermediate[step]:.6g} at rung {rung} (step {step}) ranks {rank} of {n}"


def _rung_values(history: History, rung: int, same_group: Callable[[TrialRecord], bool]) -> dict[int, float]:
    """Loss (``sign * value``) at ``rung`` of every trial of the group that reached it (NaN left out)."""
    out: dict[int, float] = {}
    for r in history.trials:
        if r.state not in _OBSERVED or not same_group(r):
            continue
        hit = value_at(r, rung)
        if hit is not None and not math.isnan(hit[1]):
            out[r.number] = history.sign * hit[1]
    return out


def _rank(mine: float, ordered: list[float], reduction_factor: float, at_least_one: bool) -> tuple[int, int, int]:
    """``(rank of mine, n, how many are promoted)`` at a rung whose sorted losses are ``ordered`` (mine among them).

    The best ``floor(n / reduction_factor)`` are promoted (ties with the last one too); ``at_least_one`` makes
    it at least the best one (when no more trials will come to fill the rung).
    """
    n = len(ordered)
    keep = int(n // reduction_factor)
    if at_least_one:
        keep = max(1, keep)
    better = bisect.bisect_left(ordered, mine) if not math.isnan(mine) else n
    return better + 1, n, keep


def _short_rung(
    trial: TrialRecord,
    history: History,
    rungs: list[int],
    reduction_factor: float,
    same_group: Callable[[TrialRecord], bool],
    at_least_one: bool,
) -> tuple[int, int, int, int] | None:
    """``(rung, rank, n, keep)`` at the first rung ``trial``'s latest report has just reached (decided once per
    rung, at the first report that reaches it) where it does not rank in the best ``keep``; None if there is none.
    """
    step = trial.last_step
    if step is None:
        return None
    earlier = [s for s in trial.intermediate if s < step]
    prev = max(earlier) if earlier else -1
    mine = history.sign * trial.intermediate[step]
    for rung in rungs:
        if not (prev < rung <= step):
            continue
        values = _rung_values(history, rung, same_group)
        values[trial.number] = mine
        rank, n, keep = _rank(mine, sorted(values.values()), reduction_factor, at_least_one)
        if rank > keep:
            return rung, rank, n, keep
    return None


def pause_at_rung(
    trial: TrialRecord,
    history: History,
    rungs: list[int],
    reduction_factor: float,
    same_group: Callable[[TrialRecord], bool],
    label: str,
) -> Decision:
    """The promotion variant's rule at the rungs ``trial``'s latest report has just reached.

    The trial goes on at once if it ranks in the best ``floor(n / reduction_factor)`` of the ``n`` trials of its
    group at each such rung (itself included); otherwise it PAUSEs there, and :func:`paused_promotions` resumes
    it if later arrivals push it into that share. It is never stopped here.
    """
    miss = _short_rung(trial, history, rungs, reduction_factor, same_group, at_least_one=False)
    if miss is None:
        return CONTINUE
    rung, rank, n, _ = miss
    return Decision.pause(
        f"{_ranked(label, trial, rung, rank, n)}; waits until it is among the best 1/{reduction_factor:g}"
    )


def paused_promotions(
    history: History,
    rungs: list[int],
    reduction_factor: float,
    same_group: Callable[[TrialRecord], bool],
    label: str,
    final: bool,
) -> dict[int, Decision]:
    """Decisions for the group's trials PAUSEd at a rung (the promotion variant; see :func:`pause_at_rung`).

    Those that now rank in the best ``floor(n / reduction_factor)`` of their rung are resumed, from the highest
    rung down (only the highest rung with any is offered, as in the paper: depth first). With ``final`` (no new
    trial will come to fill a rung) the best of each rung is promoted even when ``n < reduction_factor``, and
    every paused trial that is not promoted is STOPPED, so the study ends with its best trials finished (once
    no running trial can still reach its rung: the last worker to finish decides the rest).
    """
    sign = history.sign
    by_rung: dict[int, list[tuple[int, Decision]]] = {}
    dropped: list[tuple[int, int, Decision]] = []  # (rung index, number, stop) not promoted even when final
    cache: dict[int, list[float]] = {}  # rung index -> sorted losses there
    for r in history.trials:
        if r.state is not TrialState.PAUSED or not same_group(r) or r.last_step is None:
            continue
        at = [k for k, rung in enumerate(rungs) if rung <= r.last_step]
        if not at:  # paused before its first rung (not by this rule): nothing to wait for
            by_rung.setdefault(-1, []).append((r.number, Decision(Action.CONTINUE, f"{label}: resumed")))
            continue
        k = at[-1]
        hit = value_at(r, rungs[k])
        mine = math.nan if hit is None else sign * hit[1]
        ordered = cache.get(k)
        if ordered is None:
            ordered = cache[k] = sorted(_rung_values(history, rungs[k], same_group).values())
        rank, n, keep = _rank(mine, ordered, reduction_factor, at_least_one=final)
        if rank <= keep:
            by_rung.setdefault(k, []).append(
                (r.number, Decision(Action.CONTINUE, f"{label}: promoted from rung {rungs[k]} (ranks {rank} of {n})"))
            )
        elif final:
            dropped.append((k, r.number, Decision.stop(
                f"{label}: value at rung {rungs[k]} ranks {rank} of {n}, not among the best {keep}; "
                f"no more trials will come, so it is not promoted"
            )))
    # stopping is final, and a rung's share grows with every trial that still arrives there: a paused trial is
    # only dropped once nothing can reach its rung any more, neither a trial running below it (another
    # worker's) nor a paused one below it that is being promoted
    running = [r.last_step if r.last_step is not None else -1
               for r in history.trials if r.state is TrialState.RUNNING and same_group(r)]
    lowest = min([rungs[k] if k >= 0 else 0 for k in by_rung] + running, default=math.inf)
    out = {number: d for k, number, d in dropped if rungs[k] <= lowest}
    if by_rung:
        out.update(by_rung[max(by_rung)])
    return out


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving: at each rung, only the best ``1/reduction_factor`` go on.

    Rungs are at steps ``min_resource * reduction_factor**k`` (``k >= min_early_stopping_rate``), below
    ``max_resource`` if given. A trial is judged once at each rung, against every trial that has reached that
    rung so far, so nobody waits for a rung to fill: the workers stay busy (Li et al. 2020).

    Set ``max_resource`` to the last step a trial reports: without it, a rung may fall on the last step and
    a trial that did all its work can still be stopped there.

    ``variant="stopping"`` (default) decides when a trial reaches a rung: it continues if it ranks in the best
    ``max(1, floor(n / reduction_factor))`` of the ``n`` trials there so far, or is STOPPED. The first trials at
    a rung therefore go on against little competition (as Optuna's and Ray Tune's ASHA). ``variant="promotion"``
    is the paper's algorithm: a trial that does not rank in the best ``floor(n / reduction_factor)`` PAUSEs at
    the rung (its worker starts or resumes another trial) and is resumed if later arrivals make it rank there;
    paused trials of the highest rung are promoted first. It needs an objective that checkpoints
    (``trial.save_checkpoint`` / ``load_checkpoint``) or can redo its first steps; when the study's trial budget
    is spent the best of each rung is promoted and the rest STOPPED.
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: float = 3,
        min_early_stopping_rate: int = 0,
        variant: Literal["stopping", "promotion"] = "stopping",
    ) -> None:
        self.min_resource = check_int("min_resource", min_resource, 1)
        self.max_resource = None if max_resource is None else check_int("max_resource", max_resource, 1)
        self.reduction_factor = check_factor(reduction_factor)
        self.min_early_stopping_rate = check_int("min_early_stopping_rate", min_early_stopping_rate, 0)
        self.variant = check_variant(variant)
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
        if self.variant == "promotion":
            return pause_at_rung(trial, history, self._rungs(step), self.reduction_factor, _everyone, "ASHA")
        return promotion_decision(trial, history, self._rungs(step), self.reduction_factor, _everyone, "ASHA")

    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        if self.variant != "promotion":
            return {}
        upto = max((r.last_step or 0 for r in history.trials), default=0)
        return paused_promotions(history, self._rungs(upto), self.reduction_factor, _everyone, "ASHA", final)

    def rungs(self, history: History) -> tuple[int, ...]:
        upto = max((r.last_step or 0 for r in history.trials), default=0)
        return tuple(self._rungs(upto))


def _everyone(record: TrialRecord) -> bool:
    return True


def check_variant(value: object) -> str:
    """``value`` if it names an ASHA variant (:data:`VARIANTS`), else a clear error."""
    if value not in VARIANTS:
        from selftune.exceptions import InvalidParameterError

        raise InvalidParameterError(f"`variant` must be one of {VARIANTS}, got {value!r}")
    return str(value)
