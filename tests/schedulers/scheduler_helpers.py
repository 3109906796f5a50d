"""Small builders for scheduler tests."""

from __future__ import annotations

import selftune
from selftune.history import History
from selftune.trial import TrialRecord, TrialState


def rec(number: int, curve: dict[int, float], state: TrialState = TrialState.STOPPED, **kw: object) -> TrialRecord:
    value = curve[max(curve)] if curve and state in (TrialState.COMPLETE, TrialState.STOPPED) else None
    return TrialRecord(number=number, state=state, intermediate=dict(curve), value=value, **kw)  # type: ignore[arg-type]


def running(number: int, curve: dict[int, float]) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.RUNNING, intermediate=dict(curve))


def hist(records: list[TrialRecord], direction: str = "minimize") -> History:
    return History(sorted(records, key=lambda r: r.number), direction=direction)


def checkpointing_level(trial: selftune.Trial) -> float:
    """A flat curve at ``x`` over 27 steps that, like a checkpointing objective, goes on from where it paused."""
    level = trial.float("x", 0.0, 1.0)
    for step in range((trial.resume_step or 0) + 1, 28):
        trial.report(level, step)
        if trial.should_stop():
            raise selftune.StopTrial()
    return level
