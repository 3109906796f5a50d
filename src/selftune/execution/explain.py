"""Explain a proposal afterwards: what the sampler saw when it proposed a trial's parameters.

Every trial started by ``optimize``/``ask`` records, in the same transaction, the reserved attribute
``selftune:ask``: how many trials its history held, how many were COMPLETE, which were pending (running or
queued: points the sampler had to avoid), when, and the storage's change cursor its history was read up to.
Changes of a study commit in sequence order and a finished trial's sequence number is that of the
transaction that finished it, so the COMPLETE trials a proposal saw are exactly those finished at or before
its cursor. With k workers this tells, for every trial, which results and which pending points its proposal
was based on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from selftune.exceptions import InvalidParameterError
from selftune.schedule import ASK_KEY
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["Proposal", "explain"]


@dataclass(frozen=True)
class Proposal:
    """What trial ``number``'s proposal was based on: ``complete`` trials (in finishing order) and ``pending``
    ones, out of ``seen`` trials in its history, read by ``worker`` at ``at`` (seconds since the epoch)."""

    number: int
    worker: str | None
    at: float
    seen: int
    complete: tuple[TrialRecord, ...]
    pending: tuple[TrialRecord, ...]


def explain(study: Study, number: int) -> Proposal:
    """The inputs of trial ``number``'s proposal (see the module doc); raises if it has no ask record
    (it was enqueued and claimed, or started by an older selftune)."""
    records = study.trials
    if not 0 <= number < len(records):
        raise InvalidParameterError(f"study {study.name!r} has no trial {number}")
    info = records[number].system_attrs.get(ASK_KEY)
    if not info:
        raise InvalidParameterError(f"trial {number} of study {study.name!r} has no record of its proposal")
    seqs = study.storage.trial_seqs(study._id)
    cursor = int(info["cursor"])
    done = sorted(
        (r for r in records if r.state is TrialState.COMPLETE and seqs.get(r.number, cursor + 1) <= cursor),
        key=lambda r: seqs[r.number],
    )
    if len(done) != int(info["complete"]):  # cannot happen while the storage keeps its ordering rules
        raise InvalidParameterError(
            f"trial {number}: its proposal saw {info['complete']} COMPLETE trials, the storage shows {len(done)}"
        )
    return Proposal(
        number=number,
        worker=records[number].worker,
        at=float(info["at"]),
        seen=int(info["seen"]),
        complete=tuple(done),
        pending=tuple(records[n] for n in info["pending"]),
    )
