"""Hyperparameter schedules and lineage: what a trial actually trained with, step by step.

A trial tuned by population based training changes its hyperparameters as it trains, and may take over
another member's weights (an *exploit*). Its record keeps both:

- :class:`Schedule`: the hyperparameters its current weights were trained with, as segments
  ``(first_step, params)``, inherited segments included (after trial 3 copies trial 5's weights at step 8,
  trial 3's schedule is trial 5's up to step 8, then the explored values). Replay it with
  :class:`~selftune.schedulers.ScheduleReplay` or :func:`selftune.protocol.evaluate`.
- :class:`Exploit`: one entry of the lineage, the exploits in the order they happened.

Both live in the storage as the reserved trial attribute ``selftune:pbt`` (JSON), written in the same
transaction that resumes the trial with its new parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftune.exceptions import InvalidValueError

__all__ = ["Schedule", "Exploit", "PBT_ATTR", "SYSTEM_PREFIX", "SEED_KEY", "ASK_KEY"]

#: trial attributes (and enqueued values) whose keys start with this are selftune's own, not the user's
SYSTEM_PREFIX = "selftune:"
#: the reserved attribute holding a trial's schedule and lineage
PBT_ATTR = "selftune:pbt"
#: the enqueued value that sets :attr:`Trial.seed`
SEED_KEY = "selftune:seed"
#: the reserved attribute recording what a trial's proposal saw: trials seen, complete, pending, and when
ASK_KEY = "selftune:ask"


@dataclass(frozen=True)
class Schedule:
    """Hyperparameters by step: ``segments[i] = (first_step, params)``, first steps strictly increasing from 0.

    ``schedule.at(step)`` gives the parameters in force at ``step``.
    """

    segments: tuple[tuple[int, Mapping[str, Any]], ...]

    def __post_init__(self) -> None:
        segs = tuple((int(s), dict(p)) for s, p in self.segments)
        if not segs or segs[0][0] != 0:
            raise InvalidValueError(f"a schedule starts at step 0, got first steps {[s for s, _ in segs]}")
        for (a, _), (b, _) in zip(segs, segs[1:], strict=False):
            if b <= a:
                raise InvalidValueError(f"schedule segments must start at increasing steps, got {a} then {b}")
        object.__setattr__(self, "segments", segs)

    @classmethod
    def constant(cls, params: Mapping[str, Any]) -> Schedule:
        """The schedule of a trial that never changed its parameters."""
        return cls(((0, dict(params)),))

    def at(self, step: int) -> dict[str, Any]:
        """The parameters in force at ``step``."""
        current = self.segments[0][1]
        for start, params in self.segments:
            if start > step:
                break
            current = params
        return dict(current)

    def until(self, step: int) -> Schedule:
        """The schedule up to and including ``step`` (segments starting later are dropped)."""
        return Schedule(tuple((s, p) for s, p in self.segments if s <= step))

    def then(self, start: int, params: Mapping[str, Any]) -> Schedule:
        """This schedule up to ``start - 1``, then ``params`` from ``start`` on."""
        return Schedule((*self.until(start - 1).segments, (int(start), dict(params))))

    @property
    def changes(self) -> list[int]:
        """The steps at which the parameters change (the first steps of every segment but the first)."""
        return [s for s, _ in self.segments[1:]]

    def __len__(self) -> int:
        return len(self.segments)

    def __iter__(self) -> Iterator[tuple[int, Mapping[str, Any]]]:
        return iter(self.segments)

    def to_json(self) -> list[list[Any]]:
        """``[[first_step, params], ...]``."""
        return [[s, dict(p)] for s, p in self.segments]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[Any]]) -> Schedule:
        """The inverse of :meth:`to_json`."""
        try:
            return cls(tuple((int(s), dict(p)) for s, p in data))
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(f"not a schedule: {data!r} ({exc})") from None


@dataclass(frozen=True)
class Exploit:
    """One exploit in a trial's lineage: at its ``step``, it took trial ``source``'s checkpoint of
    ``source_step`` and went on from ``source_step + 1`` with ``params`` (``source`` may be the trial itself
    when a replayed schedule only changes the parameters)."""

    step: int
    source: int
    source_step: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "step": self.step,
            "source": self.source,
            "source_step": self.source_step,
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exploit:
        """The inverse of :meth:`to_json`."""
        return cls(
            int(data["step"]),
            int(data["source"]),
            int(data["source_step"]),
            dict(data.get("params") or {}),
        )
