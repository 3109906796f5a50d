"""Hyperband (Li et al., JMLR 2018), asynchronous: several ASHA brackets that trade breadth for depth."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from selftune.exceptions import InvalidParameterError
from selftune.history import History
from selftune.schedulers._base import CONTINUE, Decision, Scheduler
from selftune.schedulers._checks import check_factor, check_int
from selftune.schedulers.asha import (
    check_variant,
    pause_at_rung,
    paused_promotions,
    promotion_decision,
    rung_steps,
)
from selftune.schedulers.synchronous import SyncHyperband
from selftune.trial import TrialRecord

__all__ = ["HyperbandScheduler"]


class HyperbandScheduler(Scheduler):
    """Hyperband; asynchronous brackets by default, the paper's synchronous ones with ``synchronous=True``.

    With ``s_max = floor(log_eta(max_resource / min_resource))``, bracket ``b`` (0 to ``s_max``) is an ASHA whose
    first rung is at ``min_resource * eta**b``: bracket 0 stops most aggressively, bracket ``s_max`` runs every
    trial to ``max_resource``. Trials are dealt to brackets in the proportions of the paper,
    ``n_b = ceil((s_max + 1) / (s_max - b + 1) * eta**(s_max - b))``, so each bracket gets about the same
    compute; the bracket depends only on the trial number (rebuilt from storage, the same in every worker).
    A trial is compared only with trials of its own bracket.

    With ``synchronous=True``, brackets are filled in turn (``n_0`` consecutive trials, then ``n_1``, ...), and
    each is a synchronous successive halving: trials PAUSE at a rung until their bracket has reached it
    (see :class:`~selftune.schedulers.SuccessiveHalvingScheduler`).

    ``variant`` chooses the asynchronous brackets' ASHA rule, ``"stopping"`` or ``"promotion"`` (see
    :class:`~selftune.schedulers.ASHAScheduler`); it has no effect with ``synchronous=True``.
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        max_resource: int,
        reduction_factor: float = 3,
        synchronous: bool = False,
        variant: Literal["stopping", "promotion"] = "stopping",
    ) -> None:
        self.min_resource = check_int("min_resource", min_resource, 1)
        self.max_resource = check_int("max_resource", max_resource, 1)
        self.reduction_factor = check_factor(reduction_factor)
        if self.max_resource < self.min_resource:
            raise InvalidParameterError(
                f"`max_resource` ({max_resource}) must be >= `min_resource` ({min_resource})"
            )
        eta = self.reduction_factor
        self.n_brackets = int(math.floor(math.log(self.max_resource / self.min_resource) / math.log(eta) + 1e-9)) + 1
        s_max = self.n_brackets - 1
        sizes = [math.ceil((s_max + 1) / (s_max - b + 1) * eta ** (s_max - b)) for b in range(self.n_brackets)]
        self._cycle = _interleave(sizes)
        self._rung_lists = [
            rung_steps(self.min_resource, eta, b, self.max_resource, self.max_resource) for b in range(self.n_brackets)
        ]
        self.synchronous = bool(synchronous)
        self.variant = check_variant(variant)
        self._sync = SyncHyperband(sizes, self._rung_lists, eta) if self.synchronous else None

    def bracket(self, number: int) -> int:
        """The bracket of trial ``number``."""
        if self._sync is not None:
            return self._sync.cohort(number).bracket
        return self._cycle[number % len(self._cycle)]

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        if self._sync is not None:
            return self._sync.on_report(trial, history)
        b = self.bracket(trial.number)
        rungs = self._rung_lists[b]
        if not rungs:
            return CONTINUE
        rule = pause_at_rung if self.variant == "promotion" else promotion_decision
        return rule(
            trial,
            history,
            rungs,
            self.reduction_factor,
            lambda r: self.bracket(r.number) == b,
            f"Hyperband bracket {b}",
        )

    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        if self._sync is not None:
            return self._sync.on_paused(history, final)
        if self.variant != "promotion":
            return {}
        out: dict[int, Decision] = {}
        for b, rungs in enumerate(self._rung_lists):
            if rungs:
                out.update(paused_promotions(
                    history, rungs, self.reduction_factor, self._in_bracket(b), f"Hyperband bracket {b}", final
                ))
        return out

    def _in_bracket(self, b: int) -> Callable[[TrialRecord], bool]:
        return lambda r: self.bracket(r.number) == b

    def rungs(self, history: History) -> tuple[int, ...]:
        return tuple(sorted({s for lst in self._rung_lists for s in lst}))


def _interleave(sizes: list[int]) -> list[int]:
    """A cycle holding bracket ``b`` ``sizes[b]`` times, spread evenly (smooth weighted round robin)."""
    total = sum(sizes)
    credit = [0] * len(sizes)
    out: list[int] = []
    for _ in range(total):
        for b, w in enumerate(sizes):
            credit[b] += w
        pick = max(range(len(sizes)), key=lambda b: credit[b])
        credit[pick] -= total
        out.append(pick)
    return out
