"""Model-based multi-fidelity: what a sampler sees when trials are stopped early (BOHB-style)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from selftune.history import History
from selftune.schedulers._base import value_at
from selftune.trial import TrialRecord, TrialState

__all__ = ["fidelity_view", "default_min_points"]

_OBSERVED = (TrialState.COMPLETE, TrialState.STOPPED, TrialState.RUNNING, TrialState.PAUSED)


def default_min_points(history: History) -> int:
    """How many observations a fidelity needs before a model is fit on it: ``max(d + 1, 5)`` (BOHB uses d + 1)."""
    return max(len(history.params) + 1, 5)


def fidelity_view(
    history: History, rungs: Sequence[int], min_points: int | None = None, *, impute_stopped: bool = False
) -> History:
    """The history re-written at the highest fidelity that has at least ``min_points`` observations.

    The fidelities are, from the highest: the final values of COMPLETE trials, then each step in ``rungs``
    in descending order. At the chosen fidelity, every trial observed there becomes a COMPLETE record whose
    value is its value at that fidelity (for a rung, its first report at a step ``>=`` the rung; a RUNNING or
    PAUSED trial past the rung counts). As in BOHB, trials STOPPED below it stay STOPPED, which samplers do not
    model; with ``impute_stopped=True`` they become COMPLETE with the worst value observed at the chosen fidelity
    instead (on the synthetic learning curves, 10 seeds, that was worse for ASHA and Hyperband with TPE and
    better for median stopping; BOHB's rule is the default). RUNNING trials not yet there stay pending;
    FAILED stay failed.

    With too few observations at every fidelity, the history is returned unchanged (the sampler's own
    start-up applies).
    """
    need = default_min_points(history) if min_points is None else min_points
    sign = history.sign
    complete = history.complete
    stopped = [r for r in history.trials if r.state is TrialState.STOPPED]
    if len(complete) >= need:
        if not stopped or not impute_stopped:
            return history
        worst = max(complete, key=lambda r: sign * r.value)  # type: ignore[operator]
        assert worst.value is not None
        out = [
            dataclasses.replace(r, state=TrialState.COMPLETE, value=worst.value) if r.state is TrialState.STOPPED else r
            for r in history.trials
        ]
        return History(out, direction=history.direction, params=history.params)
    for rung in sorted(set(rungs), reverse=True):
        seen: dict[int, float] = {}
        for r in history.trials:
            if r.state in _OBSERVED:
                hit = value_at(r, rung)
                if hit is not None:
                    seen[r.number] = hit[1]
        if len(seen) < need:
            continue
        worst_value = max(seen.values(), key=lambda v: sign * v)
        records: list[TrialRecord] = []
        for r in history.trials:
            if r.number in seen:
                records.append(dataclasses.replace(r, state=TrialState.COMPLETE, value=seen[r.number]))
            elif r.state is TrialState.STOPPED and impute_stopped:  # stopped below the rung: judged worse at a lower fidelity
                records.append(dataclasses.replace(r, state=TrialState.COMPLETE, value=worst_value))
            else:
                records.append(r)
        return History(records, direction=history.direction, params=history.params)
    return history
