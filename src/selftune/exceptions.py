"""Exceptions raised by selftune.

Every exception derives from :class:`SelftuneError`; most also derive from the builtin they mean
(``ValueError``, ``LookupError``, ``RuntimeError``, ``ImportError``), so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "SelftuneError",
    "InvalidParameterError",
    "ParameterConflictError",
    "InvalidValueError",
    "StorageError",
    "StorageURLError",
    "SchemaVersionError",
    "StudyNotFoundError",
    "StudyExistsError",
    "TrialNotFoundError",
    "NoCompleteTrialError",
    "TrialStateError",
    "TrialReapedError",
    "StopTrial",
    "UnsupportedDecisionError",
    "CheckpointError",
    "MissingDependencyError",
]


class SelftuneError(Exception):
    """Root of every error selftune raises."""


class InvalidParameterError(SelftuneError, ValueError):
    """A parameter definition or a parameter value breaks a rule (bounds, log, step, choices)."""


class ParameterConflictError(InvalidParameterError):
    """A parameter was defined again in the same study with other bounds or another type."""


class InvalidValueError(SelftuneError, ValueError):
    """An objective value or a reported value is not a number the study can record."""


class StorageError(SelftuneError, RuntimeError):
    """The storage failed or holds something it should not."""


class StorageURLError(StorageError, ValueError):
    """A storage URL is malformed or points at something that cannot be reached."""


class SchemaVersionError(StorageError):
    """The database was written by a newer (or unknown) version of selftune's schema."""


class StudyNotFoundError(SelftuneError, LookupError):
    """No study of that name exists in the storage."""


class StudyExistsError(SelftuneError, ValueError):
    """A study of that name exists already and resuming it was not allowed."""


class TrialNotFoundError(SelftuneError, LookupError):
    """No trial of that number exists in the study."""


class NoCompleteTrialError(SelftuneError, ValueError):
    """A best trial was asked for, but no trial of the study has completed."""


class TrialStateError(SelftuneError, RuntimeError):
    """A state transition that the trial's current state does not allow (e.g. finishing it twice)."""


class TrialReapedError(TrialStateError):
    """The trial was marked FAILED (heartbeat lost) while its worker was still running it."""


class StopTrial(SelftuneError):
    """Raise from an objective to stop the trial early; it is recorded as STOPPED, not FAILED."""


class UnsupportedDecisionError(SelftuneError, RuntimeError):
    """A scheduler returned a decision (pause, exploit) that the running executor cannot carry out."""


class CheckpointError(StorageError):
    """A checkpoint is missing, corrupt or truncated, or no artifact directory is set to store one."""


class MissingDependencyError(SelftuneError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
