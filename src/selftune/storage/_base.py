"""The Storage contract: the one source of truth for studies and trials."""

from __future__ import annotations

import json
import math
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftune.exceptions import InvalidParameterError, InvalidValueError, SelftuneError, TrialStateError
from selftune.schedule import SEED_KEY, SYSTEM_PREFIX
from selftune.trial import TrialRecord, TrialState

__all__ = [
    "Storage", "StudyInfo", "StudySummary", "check_study_name", "dumps", "loads", "HEARTBEAT_LOST", "RETRY_KEY",
    "RETRIED_AS_KEY", "is_retryable", "retry_fixed", "BudgetSpentError",
]

HEARTBEAT_LOST = "heartbeat lost: the worker stopped sending heartbeats (killed, crashed or hung)"
#: reasons of failures that are the infrastructure's, not the objective's: only these are retried
WORKER_DIED = "worker died"
TRIAL_TIMEOUT = "timed out"
RETRYABLE_REASONS = (HEARTBEAT_LOST, WORKER_DIED, TRIAL_TIMEOUT)
#: the enqueued value of a retry: {"of": first attempt's number, "previous": the failed trial, "attempt": 2, 3...}
RETRY_KEY = "selftune:retry"
#: the system attribute a retried FAILED trial gets: the number of the trial that retries it
RETRIED_AS_KEY = "selftune:retried_as"
MAX_NAME_LENGTH = 512
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class StudyInfo:
    """A study's identity and settings as stored."""

    id: int
    name: str
    direction: str
    space: Mapping[str, Any] | None
    created_at: float
    user_attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudySummary:
    """A study with its trial counts by state and its best value, for listings."""

    info: StudyInfo
    counts: Mapping[str, int]
    best_value: float | None

    @property
    def n_trials(self) -> int:
        """All trials, any state."""
        return sum(self.counts.values())


def check_study_name(name: Any) -> str:
    """Return ``name`` if it is a usable study name, else raise saying why."""
    if not isinstance(name, str):
        raise InvalidParameterError(f"a study name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise InvalidParameterError("a study name must not be empty or only whitespace")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameterError(
            f"a study name must have at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cs")]
    if bad:
        raise InvalidParameterError(
            f"a study name must not contain control characters or lone surrogates, got {bad[0]!r} in {name!r}"
        )
    return name


def check_key(kind: str, key: Any) -> str:
    """Parameter names and attribute keys: non-empty strings without NUL or lone surrogates."""
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(f"{kind} must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterError(f"{kind} must have at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    if "\x00" in key or any(unicodedata.category(c) == "Cs" for c in key):
        raise InvalidParameterError(f"{kind} must not contain NUL characters or lone surrogates, got {key!r}")
    return key


def dumps(value: Any, what: str) -> str:
    """Serialise ``value`` to JSON text (NaN and ±inf allowed), or raise naming ``what``."""
    try:
        return json.dumps(value, allow_nan=True, ensure_ascii=True, sort_keys=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{what} must be JSON-serialisable, got {type(value).__name__}: {exc}") from None


def loads(text: str | None) -> Any:
    """Parse JSON text written by :func:`dumps`."""
    return None if text is None else json.loads(text)


def check_system_attrs(number: int, attrs: Mapping[str, Any]) -> None:
    """Reserved attributes (a PBT member's schedule and lineage) have keys starting with ``selftune:``."""
    for k in attrs:
        if not (isinstance(k, str) and k.startswith(SYSTEM_PREFIX)):
            raise InvalidParameterError(f"trial {number}: system attribute keys start with {SYSTEM_PREFIX!r}, got {k!r}")


def check_finish(number: int, state: TrialState, value: float | None) -> None:
    """The rules every backend applies to a finishing trial."""
    if not state.finished:
        raise TrialStateError(f"trial {number}: cannot finish into state {state}; expected COMPLETE, STOPPED or FAILED")
    if state is TrialState.COMPLETE:
        if value is None or math.isnan(value):
            raise InvalidValueError(f"trial {number}: a COMPLETE trial needs a value that is not NaN, got {value!r}")
    if state is TrialState.FAILED and value is not None:
        raise InvalidValueError(f"trial {number}: a FAILED trial has no value, got {value!r}")
    if value is not None and math.isnan(value):
        raise InvalidValueError(f"trial {number}: value is NaN")


def finish_allowed(state: TrialState) -> tuple[TrialState, ...]:
    """The states a trial may be in to be finished into ``state``."""
    if state is TrialState.FAILED:
        return (TrialState.RUNNING, TrialState.WAITING, TrialState.PAUSED)
    if state is TrialState.STOPPED:
        return (TrialState.RUNNING, TrialState.PAUSED)
    return (TrialState.RUNNING,)


def not_paused_error(number: int, state: TrialState, at: int, last_step: int | None, action: str) -> TrialStateError:
    """The error for a trial to be ``action`` (resumed, stopped) that is not PAUSED at ``last_step``: it is
    ``state``, with its latest step ``at`` (-1 for none)."""
    if state is TrialState.PAUSED:
        return TrialStateError(f"trial {number} is PAUSED at step {at}, not at step {last_step}; it was not {action}")
    return TrialStateError(f"trial {number} is {state}, not PAUSED; it cannot be {action}")


def finished_error(number: int, state: TrialState, reason: str | None) -> TrialStateError:
    """The error for a change to a trial that is no longer RUNNING."""
    why = f" (reason: {reason})" if reason else ""
    if state.finished:
        return TrialStateError(f"trial {number} is already {state}{why}; a finished trial cannot be changed")
    return TrialStateError(f"trial {number} is {state}, not RUNNING; it cannot be changed")


class BudgetSpentError(SelftuneError):
    """``start_trial(..., budget=n)`` found ``n`` trials started already: nothing was started."""


def is_retryable(reason: str | None) -> bool:
    """Whether a FAILED trial's reason is the infrastructure's (lost worker, timeout), not the objective's."""
    return reason is not None and reason.startswith(RETRYABLE_REASONS)


def retry_fixed(record: TrialRecord, max_attempts: int) -> dict[str, Any] | None:
    """The enqueued values of a retry of the FAILED ``record``, or None if it may not be retried (again).

    The retry keeps the failed trial's parameters and seed; attempts are counted from the first trial.
    """
    if record.state is not TrialState.FAILED or RETRIED_AS_KEY in record.system_attrs:
        return None
    info = record.fixed.get(RETRY_KEY) or {}
    attempt = int(info.get("attempt", 1))
    if attempt >= max_attempts:
        return None
    fixed = {k: v for k, v in record.fixed.items() if k != RETRY_KEY}
    fixed.update(record.params)
    fixed.setdefault(SEED_KEY, record.seed)
    fixed[RETRY_KEY] = {"of": int(info.get("of", record.number)), "previous": record.number, "attempt": attempt + 1}
    return fixed


class Storage(ABC):
    """Where studies and trials live. Every backend passes :mod:`selftune.testing`'s storage suite.

    Rules every backend keeps: trial numbers come from a per-study counter (dense, unique); only legal
    state transitions happen (WAITING → RUNNING → COMPLETE | STOPPED | FAILED, RUNNING ⇄ PAUSED → STOPPED;
    a finished trial never changes); every change bumps a per-study sequence so :meth:`read_trials` returns only what changed.
    Times are seconds since the epoch on the storage's clock.
    """

    #: The URL with any password hidden, for messages.
    url: str = ""

    # -- studies --------------------------------------------------------------------------------------
    @abstractmethod
    def create_study(self, name: str, direction: str, space: Mapping[str, Any] | None) -> StudyInfo:
        """Create a study; raise :class:`StudyExistsError` if the name is taken."""

    @abstractmethod
    def get_study(self, name: str) -> StudyInfo:
        """The study of that name; raise :class:`StudyNotFoundError` if none."""

    @abstractmethod
    def list_studies(self) -> list[StudySummary]:
        """Every study with its trial counts, oldest first."""

    @abstractmethod
    def delete_study(self, name: str) -> None:
        """Delete the study and all its trials; raise :class:`StudyNotFoundError` if none."""

    @abstractmethod
    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        """Set a JSON-serialisable user attribute on the study."""

    # -- the study's parameter registry ----------------------------------------------------------------
    @abstractmethod
    def define_param(self, study_id: int, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Register ``name`` with domain ``spec`` unless known; return the domain stored for it."""

    @abstractmethod
    def get_params(self, study_id: int) -> dict[str, dict[str, Any]]:
        """Every registered parameter's domain, by name."""

    # -- trials ---------------------------------------------------------------------------------------
    @abstractmethod
    def enqueue_trial(self, study_id: int, fixed: Mapping[str, Any]) -> TrialRecord:
        """Add a WAITING trial whose parameters ``fixed`` are set in advance."""

    @abstractmethod
    def start_trial(
        self,
        study_id: int,
        worker: str,
        params: Mapping[str, Any] | None = None,
        *,
        claim: bool = True,
        budget: int | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> TrialRecord:
        """Take the oldest WAITING trial (exactly one worker gets it) or create a new RUNNING one.

        ``params`` are written only when a new trial is created; ``system_attrs`` (keys ``selftune:...``) are
        set on the trial started either way, in the same transaction. ``claim=False`` skips looking for WAITING
        trials (a caller that has just read none). With ``budget``, in the same transaction: raise
        :class:`BudgetSpentError` if the study has ``budget`` started trials already (every trial that is not
        WAITING, less FAILED trials a retry replaces), so concurrent workers never overshoot a study's budget.
        """

    @abstractmethod
    def set_trial_params(self, study_id: int, number: int, params: Mapping[str, Any]) -> None:
        """Record parameter values of a RUNNING trial (a parameter's value never changes once set)."""

    @abstractmethod
    def report(self, study_id: int, number: int, step: int, value: float) -> None:
        """Record an intermediate value of a RUNNING trial; a step is written once."""

    @abstractmethod
    def set_trial_attr(self, study_id: int, number: int, key: str, value: Any) -> None:
        """Set a JSON-serialisable user attribute on a RUNNING trial."""

    @abstractmethod
    def finish_trial(
        self,
        study_id: int,
        number: int,
        state: TrialState,
        value: float | None = None,
        reason: str | None = None,
        traceback: str | None = None,
    ) -> None:
        """Move a RUNNING trial to a finished state, once; a WAITING one only to FAILED; a PAUSED one only to
        STOPPED or FAILED."""

    @abstractmethod
    def stop_paused_trial(
        self, study_id: int, number: int, last_step: int, value: float | None, reason: str | None
    ) -> None:
        """Move a trial PAUSED at ``last_step`` (its latest reported step; -1 for none) to STOPPED, or raise
        :class:`TrialStateError` and change nothing: a decision made on a stale view (another worker resumed
        the trial, perhaps paused it again further on) is refused."""

    @abstractmethod
    def pause_trial(self, study_id: int, number: int) -> None:
        """Move a RUNNING trial to PAUSED: its worker lets it go; its curve and parameters stay."""

    @abstractmethod
    def resume_trial(
        self,
        study_id: int,
        number: int,
        worker: str,
        *,
        last_step: int | None = None,
        params: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> TrialRecord:
        """Move a PAUSED trial back to RUNNING under ``worker`` (exactly one caller succeeds; the others get
        :class:`TrialStateError`) and return its record.

        With ``last_step`` (``-1``: no report), only if the trial's last reported step is that one: a decision
        taken on an older view of the trial (it was resumed and paused again since) is refused.
        ``params`` (an exploit) replace all the trial's parameters and ``system_attrs`` (keys
        ``selftune:...``) are set, in the same transaction.
        """

    @abstractmethod
    def retry_trial(self, study_id: int, number: int, max_attempts: int) -> TrialRecord | None:
        """Enqueue a retry of the FAILED trial ``number`` (same parameters and seed) and mark it retried, in one
        transaction; return the WAITING retry, or None if it was retried already or has used ``max_attempts``
        attempts (see :func:`retry_fixed`). Exactly one of several concurrent callers enqueues it.
        """

    @abstractmethod
    def heartbeat(self, study_id: int, numbers: Sequence[int]) -> list[int]:
        """Refresh the heartbeat of RUNNING trials; return the numbers that are no longer RUNNING."""

    @abstractmethod
    def reap(self, study_id: int, grace: float) -> list[int]:
        """Mark FAILED every RUNNING trial whose last heartbeat is older than ``grace`` seconds."""

    @abstractmethod
    def read_trials(self, study_id: int, cursor: int = 0) -> tuple[list[TrialRecord], int]:
        """Trials changed since ``cursor`` (0: all), ordered by number, and the cursor to pass next time."""

    @abstractmethod
    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        """One trial; raise :class:`TrialNotFoundError` if none."""

    def trial_seqs(self, study_id: int) -> dict[int, int]:
        """Every trial's number → the sequence number of its latest change (for a finished trial: of the
        transaction that finished it). Explains proposals afterwards (:func:`selftune.execution.explain`)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose change sequence numbers")

    def artifact_root(self) -> str | None:
        """The default directory for trial checkpoints of this storage, or None if it has none."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
