"""History: the read-only view of a study that samplers and schedulers see."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np

from selftune.space import Param, Space
from selftune.trial import TrialRecord, TrialState

__all__ = ["History"]


class History:
    """An immutable snapshot of a study's trials, with array views for model-based samplers.

    ``records`` are all trials (any state) ordered by number; ``params`` the study's registered domains.
    Values are exposed as *losses*: lower is better whatever the study's direction.
    """

    def __init__(
        self, records: Sequence[TrialRecord], *, direction: str = "minimize", params: Mapping[str, Param] | None = None
    ) -> None:
        self._records = tuple(records)
        self.direction = direction
        self.params: Mapping[str, Param] = dict(params or {})

    def __len__(self) -> int:
        return len(self._records)

    @property
    def trials(self) -> tuple[TrialRecord, ...]:
        """Every trial, any state, by number."""
        return self._records

    @cached_property
    def complete(self) -> tuple[TrialRecord, ...]:
        """Trials that finished with a value."""
        return tuple(r for r in self._records if r.state is TrialState.COMPLETE)

    @cached_property
    def pending(self) -> tuple[TrialRecord, ...]:
        """Trials that are RUNNING or WAITING: proposals should avoid their points."""
        return tuple(r for r in self._records if r.state in (TrialState.RUNNING, TrialState.WAITING))

    @cached_property
    def failed(self) -> tuple[TrialRecord, ...]:
        """Trials that FAILED."""
        return tuple(r for r in self._records if r.state is TrialState.FAILED)

    @property
    def sign(self) -> float:
        """+1 when minimising, -1 when maximising: ``loss = sign * value``."""
        return 1.0 if self.direction == "minimize" else -1.0

    def losses(self, records: Sequence[TrialRecord] | None = None) -> np.ndarray:
        """``(n,)`` losses of ``records`` (default: the complete trials); ±inf kept."""
        recs = self.complete if records is None else records
        return np.array([self.sign * float(r.value) for r in recs if r.value is not None], dtype=float)

    def encode(self, space: Space, records: Sequence[TrialRecord] | None = None) -> np.ndarray:
        """``(n, d)`` unit-cube encoding of ``records`` (default: complete) in ``space``; NaN where inactive."""
        recs = self.complete if records is None else records
        if not recs:
            return np.empty((0, len(space)))
        return np.stack([space.encode({k: v for k, v in r.params.items() if k in space}) for r in recs])

    def best(self) -> TrialRecord | None:
        """The complete trial with the lowest loss (the earliest on ties), or None."""
        best: TrialRecord | None = None
        for r in self.complete:
            if best is None or self.sign * r.value < self.sign * best.value:  # type: ignore[operator]
                best = r
        return best

    def with_state(self, *states: TrialState) -> tuple[TrialRecord, ...]:
        """Trials in any of ``states``."""
        return tuple(r for r in self._records if r.state in states)


def put_record(
    records: list[TrialRecord | None], counts: Counter[TrialState], best: TrialRecord | None, r: TrialRecord,
    sign: float,
) -> TrialRecord | None:
    """Cache ``r`` at index ``r.number`` of ``records`` (indexed by trial number), keep ``counts`` by state,
    and return the best COMPLETE trial (lowest ``sign * value``, then lowest number) given the previous ``best``."""
    n = r.number
    if n >= len(records):
        records.extend([None] * (n + 1 - len(records)))
    old = records[n]
    if old is not None:
        counts[old.state] -= 1
    records[n] = r
    counts[r.state] += 1
    if r.state is TrialState.COMPLETE and r.value is not None:
        if best is None or sign * r.value < sign * best.value or (  # type: ignore[operator]
            r.value == best.value and r.number < best.number
        ):
            return r
    return best
