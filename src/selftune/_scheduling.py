"""The study's side of scheduling: ask the scheduler after a report, and act on its decisions for PAUSED
trials. Kept out of the Study facade, like the optimize loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selftune.exceptions import TrialStateError, UnsupportedDecisionError
from selftune.history import History
from selftune.schedulers import CONTINUE, Action, Decision
from selftune.trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["decide", "resume_next"]


def decide(study: Study, trial: Trial) -> Decision:
    """The scheduler's decision on ``trial``'s latest report (made once per report, then kept)."""
    step = max(trial._intermediate) if trial._intermediate else None
    if study.scheduler is None or step is None:
        return CONTINUE
    if trial._decision is not None and trial._decision[0] == step:
        return trial._decision[1]
    record = TrialRecord(
        number=trial.number,
        state=TrialState.RUNNING,
        params=dict(trial._params),
        intermediate=dict(trial._intermediate),
        worker=study.worker,
    )
    decision = study.scheduler.on_report(record, study.history())
    if not isinstance(decision, Decision):
        raise TypeError(
            f"{type(study.scheduler).__name__}.on_report must return a Decision, got {type(decision).__name__}"
        )
    if decision.action is Action.EXPLOIT:
        raise UnsupportedDecisionError(
            f"trial {trial.number}: {type(study.scheduler).__name__} decided {decision.action} at step {step}; "
            "this version of Study acts on continue, stop and pause only"
        )
    trial._decision = (step, decision)
    return decision


def resume_next(study: Study, history: History, final: bool) -> Trial | None:
    """Apply the scheduler's decisions on PAUSED trials: stop those it drops, resume one it promotes."""
    if study.scheduler is None or study._count(TrialState.PAUSED) == 0:
        return None
    decisions = study.scheduler.on_paused(history, final)
    seen = {r.number: r for r in history.trials}
    for number, d in sorted(decisions.items()):
        if d.stops:  # final: a trial dropped at a rung is never promoted by a later, fuller view
            inter = seen[number].intermediate
            last = inter[max(inter)] if inter else None
            try:
                study._storage.finish_trial(study._id, number, TrialState.STOPPED, last, d.reason)
            except TrialStateError:
                pass  # another worker decided it first
    for number, d in sorted(decisions.items()):
        if d.action is not Action.CONTINUE:
            continue
        step = seen[number].last_step
        try:  # only if it still waits where this decision saw it (not resumed and paused again since)
            record = study._storage.resume_trial(
                study._id, number, study.worker, last_step=-1 if step is None else step
            )
        except TrialStateError:
            continue  # another worker took it
        trial = Trial(study, number, params=record.params, fixed=record.fixed, intermediate=record.intermediate)
        return study._adopt(record, trial, history)
    return None
