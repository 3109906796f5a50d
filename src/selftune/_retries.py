"""Retries of trials lost to the infrastructure (a dead worker, a hang past the trial timeout).

A FAILED trial whose reason is the infrastructure's (:func:`selftune.storage._base.is_retryable`) is retried
as a new WAITING trial with the same parameters and seed (``Storage.retry_trial``: one transaction, exactly
once however many workers try). Any worker running ``optimize(..., retries=n)`` enqueues the retries it sees,
so a retry happens even when the process that ran the trial is gone. When a worker claims a retry and the
failed attempt saved checkpoints, the newest one is copied to the retry, with the curve up to its step, and
``trial.resume_step`` says where to continue: a retried trial resumes instead of starting over.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from selftune.exceptions import CheckpointError, TrialStateError
from selftune.storage._base import RETRY_KEY
from selftune.trial import TrialRecord

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["enqueue_retries", "restore_retry"]

logger = logging.getLogger("selftune")


def enqueue_retries(study: Study, max_attempts: int) -> int:
    """Enqueue a retry of every retryable FAILED trial seen so far (at most ``max_attempts`` attempts per
    trial, the first one included); returns how many this call enqueued."""
    with study._lock:
        candidates = sorted(study._retry_candidates)
        study._retry_candidates.clear()
    enqueued = 0
    for number in candidates:
        retry = study._storage.retry_trial(study._id, number, max_attempts)
        if retry is not None:
            enqueued += 1
            logger.warning(
                "trial %d failed (%s); retrying it as trial %d (attempt %d of %d)",
                number, _reason(study, number), retry.number, retry.fixed[RETRY_KEY]["attempt"], max_attempts,
            )
    return enqueued


def _reason(study: Study, number: int) -> str:
    record = study._records[number] if number < len(study._records) else None
    return (record.reason or "?") if record is not None else "?"


def restore_retry(study: Study, record: TrialRecord) -> tuple[dict[int, float], int | None]:
    """For a just-claimed retry: copy the failed attempt's newest checkpoint and its curve up to that step.

    Returns the intermediate values now stored for the retry and the step to resume after (None: start over).
    """
    info = record.fixed.get(RETRY_KEY)
    if not info or study.artifacts is None:
        return {}, None
    previous = int(info["previous"])
    store = study._store()
    if store.latest(previous) is None:
        return {}, None
    try:
        staged, ckpt = store.stage_copy(previous, record.number, min_step=0)
    except CheckpointError as exc:
        logger.warning("trial %d (a retry of trial %d) starts over: %s", record.number, previous, exc)
        return {}, None
    curve = {s: v for s, v in study.get_trial(previous).intermediate.items() if s <= ckpt.step}
    try:
        for step in sorted(curve):
            study._storage.report(study._id, record.number, step, curve[step])
    except TrialStateError:  # reaped meanwhile: the optimize loop finds out at its next report
        store.discard(staged)
        return {}, None
    store.commit_copy(record.number, staged, ckpt.step)
    return curve, ckpt.step

