"""The study's side of scheduling: ask the scheduler after a report, and act on its decisions for PAUSED
trials. Kept out of the Study facade, like the optimize loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from selftune.exceptions import CheckpointError, TrialStateError, UnsupportedDecisionError
from selftune.history import History
from selftune.schedule import PBT_ATTR, Exploit, Schedule
from selftune.schedulers import CONTINUE, Action, Decision
from selftune.trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["decide", "resume_next", "resume"]

logger = logging.getLogger("selftune")


def decide(study: Study, trial: Trial) -> Decision:
    """The scheduler's decision on ``trial``'s latest report (made once per report, then kept)."""
    step = max(trial._intermediate) if trial._intermediate else None
    if study.scheduler is None or step is None:
        return CONTINUE
    if trial._decision is not None and trial._decision[0] == step:
        return trial._decision[1]
    cached = study._records[trial.number] if trial.number < len(study._records) else None
    record = TrialRecord(
        number=trial.number,
        state=TrialState.RUNNING,
        params=dict(trial._params),
        intermediate=dict(trial._intermediate),
        worker=study.worker,
        fixed=dict(trial._fixed),
        system_attrs=dict(cached.system_attrs) if cached is not None else {},  # its schedule and lineage
    )
    decision = study.scheduler.on_report(record, study.history())
    if not isinstance(decision, Decision):
        raise TypeError(
            f"{type(study.scheduler).__name__}.on_report must return a Decision, got {type(decision).__name__}"
        )
    trial._decision = (step, decision)
    return decision


def resume_next(study: Study, history: History, final: bool) -> Trial | None:
    """Apply the scheduler's decisions on PAUSED trials: stop those it drops, resume one it promotes
    (unchanged, or with another trial's checkpoint and new parameters for an EXPLOIT)."""
    if study.scheduler is None or study._count(TrialState.PAUSED) == 0:
        return None
    decisions = study.scheduler.on_paused(history, final)
    seen = {r.number: r for r in history.trials}
    for number, d in sorted(decisions.items()):
        if d.stops:  # final: a trial dropped at a rung is never promoted by a later, fuller view
            inter = seen[number].intermediate
            last = inter[max(inter)] if inter else None
            try:  # only if it still waits where this decision saw it
                study._storage.stop_paused_trial(study._id, number, max(inter, default=-1), last, d.reason)
            except TrialStateError:
                pass  # another worker decided it first, or resumed it
    for number, d in sorted(decisions.items()):
        if d.action not in (Action.CONTINUE, Action.EXPLOIT):
            continue
        trial = resume(study, seen[number], d, history)
        if trial is not None:
            return trial
    return None


def resume(study: Study, record: TrialRecord, decision: Decision, history: History) -> Trial | None:
    """Resume PAUSED ``record`` here as ``decision`` says; None if another worker resumed it first.

    For EXPLOIT, the source's newest checkpoint is copied into a staged directory first, then one storage
    transaction resumes the trial with its new parameters, schedule and lineage, then the copy is renamed
    into place. A worker killed before the transaction leaves the trial PAUSED as it was (the staged copy is
    invisible and removed later); killed after it, the trial is RUNNING under a dead worker and is reaped.
    """
    number, step = record.number, record.last_step
    last = -1 if step is None else step
    if decision.action is Action.CONTINUE:
        try:  # only if it still waits where this decision saw it (not resumed and paused again since)
            rec = study._storage.resume_trial(study._id, number, study.worker, last_step=last)
        except TrialStateError:
            return None  # another worker took it
        lineage = rec.lineage
        trial = Trial(
            study, number, params=rec.params, fixed=rec.fixed, intermediate=rec.intermediate,
            resume_step=lineage[-1].source_step if lineage else None,
            schedule=rec.schedule if lineage else None,
        )
        return study._adopt(rec, trial, history)
    if decision.action is not Action.EXPLOIT or decision.source is None:
        raise UnsupportedDecisionError(f"trial {number}: cannot resume with decision {decision.action}")
    source = int(decision.source)
    params = dict(decision.params)
    store = study._store()
    staged = None
    if source == number:  # the same weights, new parameters (a replayed schedule)
        source_step = last
        weights = record.schedule
    else:
        try:
            staged, ckpt = store.stage_copy(source, number, min_step=max(last, 0))
        except CheckpointError as exc:  # the source has no checkpoint this far (yet): go on unchanged
            logger.warning("trial %d goes on without exploiting: %s", number, exc)
            return resume(study, record, Decision(Action.CONTINUE, f"no exploit: {exc}"), history)
        source_step = ckpt.step
        meta = ckpt.meta
        if meta.get("schedule"):
            weights = Schedule.from_json(meta["schedule"])
        else:
            weights = Schedule.constant(meta.get("params") or history_params(history, source))
    schedule = weights.then(source_step + 1, params)
    entries = [*(e.to_json() for e in record.lineage), Exploit(last, source, source_step, params).to_json()]
    own = record.own_schedule.then(source_step + 1, params)  # what its own curve was trained with
    try:
        rec = study._storage.resume_trial(
            study._id, number, study.worker, last_step=last, params=params,
            system_attrs={PBT_ATTR: {"schedule": schedule.to_json(), "lineage": entries, "own": own.to_json()}},
        )
    except TrialStateError:
        if staged is not None:
            store.discard(staged)
        return None
    if staged is not None:
        store.commit_copy(number, staged, source_step)
    trial = Trial(
        study, number, params=rec.params, fixed=rec.fixed, intermediate=rec.intermediate,
        resume_step=source_step, schedule=schedule,
    )
    return study._adopt(rec, trial, history)


def history_params(history: History, number: int) -> dict[str, Any]:
    """Trial ``number``'s parameters as ``history`` saw them."""
    for r in history.trials:
        if r.number == number:
            return dict(r.params)
    return {}
