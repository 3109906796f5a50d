"""The Scheduler contract: after each report, decide whether a running trial continues.

A scheduler is a pure function of the trial's record and the study's :class:`~selftune.history.History`:
it keeps no state that a crash could lose, so rungs and brackets are rebuilt from the storage on every
decision, and several workers on one study agree without talking to each other.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from selftune.history import History
from selftune.trial import TrialRecord

__all__ = ["Action", "Decision", "Scheduler", "CONTINUE", "value_at"]


class Action(str, enum.Enum):
    """What a scheduler tells a running trial to do."""

    CONTINUE = "continue"
    STOP = "stop"  #: stop now; the trial is recorded STOPPED with its curve
    PAUSE = "pause"  #: save a checkpoint and give the worker back; the trial is resumed later
    EXPLOIT = "exploit"  #: load ``source``'s checkpoint and go on with ``params`` (population based training)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Decision:
    """A scheduler's answer to one report: an :class:`Action`, a human-readable reason, and for EXPLOIT
    the trial to copy and the parameters to continue with."""

    action: Action
    reason: str = ""
    source: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def stop(cls, reason: str) -> Decision:
        """Stop the trial, saying why."""
        return cls(Action.STOP, reason)

    @classmethod
    def pause(cls, reason: str) -> Decision:
        """Pause the trial, saying why."""
        return cls(Action.PAUSE, reason)

    @classmethod
    def exploit(cls, source: int, params: Mapping[str, Any], reason: str = "") -> Decision:
        """Continue from trial ``source``'s checkpoint with ``params``."""
        return cls(Action.EXPLOIT, reason, source, dict(params))

    @property
    def stops(self) -> bool:
        """True when the trial must stop now."""
        return self.action is Action.STOP


#: The decision that lets a trial go on.
CONTINUE = Decision(Action.CONTINUE)


class Scheduler(ABC):
    """Decides *when*: after each ``trial.report(value, step)``, continue, stop, pause or exploit.

    Subclasses implement :meth:`on_report`. They must be deterministic functions of their arguments
    (no hidden state, no clock, no randomness outside what the history holds), so any worker, at any time,
    after any crash, reaches the same decision for the same facts. Intermediate values have the study's
    direction; ``history.sign * value`` is a loss (lower is better).
    """

    @abstractmethod
    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        """The decision for ``trial`` (RUNNING, its curve up to the latest report) given the study ``history``.

        ``history`` includes ``trial`` itself.
        """

    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        """Decisions for PAUSED trials, by number: CONTINUE resumes one, STOP ends it; absent ones wait.

        Called before a worker starts a new trial. ``final`` is True when no new trial will be started
        (the budget is spent), so nothing should wait for trials that will never come. Schedulers that
        never pause return ``{}``.
        """
        return {}

    def rungs(self, history: History) -> tuple[int, ...]:
        """The steps at which this scheduler compares trials (its fidelities), ascending; () if none."""
        return ()

    def for_sampler(self, history: History) -> History:
        """The history the sampler sees: by default the highest fidelity with enough data (BOHB-style).

        See :func:`selftune.schedulers.fidelity_view`.
        """
        from selftune.schedulers._fidelity import fidelity_view

        return fidelity_view(history, self.rungs(history))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def value_at(trial: TrialRecord, step: int) -> tuple[int, float] | None:
    """The first report of ``trial`` at a step ``>= step``, as ``(step, value)``; None if it has none.

    This is the value a rung at ``step`` sees: a trial that reports every 2 steps reaches rung 3 at step 4.
    """
    inter = trial.intermediate
    if step in inter:  # the common case: a report at every step
        return step, inter[step]
    best: tuple[int, float] | None = None
    for s, v in inter.items():
        if s >= step and (best is None or s < best[0]):
            best = (s, v)
    return best
