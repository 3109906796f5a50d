"""Trials: :class:`TrialState`, the frozen :class:`TrialRecord`, and the live :class:`Trial` handle."""

from __future__ import annotations

import builtins
import enum
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from selftune.exceptions import (
    InvalidParameterError,
    InvalidValueError,
    StopTrial,
    TrialReapedError,
)
from selftune.schedule import PBT_ATTR, SEED_KEY, SYSTEM_PREFIX, Exploit, Schedule
from selftune.space import Choice, Float, Int, Param

__all__ = ["TrialState", "TrialRecord", "Trial", "TrialRecorder", "check_value"]


class TrialState(str, enum.Enum):
    """Where a trial is in its life: WAITING → RUNNING → COMPLETE | STOPPED | FAILED.

    A scheduler may also PAUSE a RUNNING trial (it gives its worker back and waits, keeping its curve and
    checkpoints); a PAUSED trial is later resumed (RUNNING again, from its last step) or STOPPED.
    """

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        """True for COMPLETE, STOPPED and FAILED: the trial can no longer change."""
        return self in (TrialState.COMPLETE, TrialState.STOPPED, TrialState.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TrialRecord:
    """Everything stored about one trial, as an immutable value.

    ``intermediate`` maps step → reported value; times are seconds since the epoch (the storage's clock).
    """

    number: int
    state: TrialState
    params: Mapping[str, Any] = field(default_factory=dict)
    value: float | None = None
    intermediate: Mapping[int, float] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    reason: str | None = None
    traceback: str | None = None
    #: parameters fixed in advance by ``study.enqueue`` (used when the objective defines them)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: selftune's own attributes (keys ``selftune:...``), e.g. the schedule and lineage of a PBT member
    system_attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def schedule(self) -> Schedule:
        """The hyperparameters this trial's weights were trained with, by step (inherited segments included).

        A trial that never changed its parameters has one segment: ``Schedule.constant(params)``.
        """
        data = self.system_attrs.get(PBT_ATTR)
        if data and data.get("schedule"):
            return Schedule.from_json(data["schedule"])
        return Schedule.constant(self.params)

    @property
    def own_schedule(self) -> Schedule:
        """The parameters in force along this trial's own reported curve (its first parameters, then each
        exploit's from the step after the checkpoint it took); unlike :attr:`schedule`, nothing inherited."""
        data = self.system_attrs.get(PBT_ATTR)
        if data and data.get("own"):
            return Schedule.from_json(data["own"])
        if data and data.get("schedule"):  # written before "own" existed: the best we know
            return Schedule.from_json(data["schedule"])
        return Schedule.constant(self.params)

    @property
    def lineage(self) -> list[Exploit]:
        """The exploits of this trial (population based training), oldest first; [] if none."""
        data = self.system_attrs.get(PBT_ATTR)
        return [Exploit.from_json(e) for e in (data or {}).get("lineage", [])]

    @property
    def seed(self) -> int:
        """The random seed this trial's objective was given (:attr:`Trial.seed`)."""
        return seed_of(self.number, self.fixed)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, or None while unfinished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def last_step(self) -> int | None:
        """The largest reported step, or None."""
        return max(self.intermediate) if self.intermediate else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats appear as the strings 'inf', '-inf')."""
        return {
            "number": self.number,
            "state": self.state.value,
            "value": _json_float(self.value),
            "params": dict(self.params),
            "intermediate": {str(k): _json_float(v) for k, v in sorted(self.intermediate.items())},
            "user_attrs": dict(self.user_attrs),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "worker": self.worker,
            "reason": self.reason,
            "traceback": self.traceback,
            "fixed": dict(self.fixed),
            "system_attrs": dict(self.system_attrs),
        }


def seed_of(number: int, fixed: Mapping[str, Any]) -> int:
    """A trial's seed: the one enqueued with it (``study.enqueue(..., seed=)``), else its number."""
    seed = fixed.get(SEED_KEY)
    return int(seed) if seed is not None else int(number)


def _json_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "inf" if x > 0 else ("-inf" if x < 0 else "nan")


def check_value(value: Any, what: str) -> float:
    """Return ``value`` as a float (±inf allowed, NaN kept), or raise naming ``what`` and the type seen."""
    if isinstance(value, bool) or value is None:
        raise InvalidValueError(f"{what} must be a float, got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
        return float(value)
    tname = type(value).__module__ + "." + type(value).__qualname__
    hint = ""
    if tname.startswith("torch."):
        hint = "; return tensor.item() instead of the tensor"
    elif isinstance(value, tuple | list):
        hint = "; this study has one objective, return a single float"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise InvalidValueError(f"{what} must be a float, got {type(value).__name__} {shown}{hint}")


class TrialRecorder(Protocol):
    """The narrow interface a live :class:`Trial` records through; its study provides it."""

    def _define(self, trial: Trial, name: str, param: Param) -> Param:
        """Check ``param`` and register it, or raise if ``name`` has another domain; return the domain."""

    def _suggest(self, trial: Trial, name: str, param: Param) -> Any: ...

    def _report(self, trial: Trial, value: float, step: int) -> None: ...

    def _set_user_attr(self, trial: Trial, key: str, value: Any) -> None: ...

    def _should_stop(self, trial: Trial) -> bool: ...

    def _save_checkpoint(self, trial: Trial, payload: Any, step: int) -> Any: ...

    def _load_checkpoint(self, trial: Trial) -> Any: ...


class Trial:
    """A running trial: define parameters, report progress, read the decision to stop.

    Parameters are defined as the objective runs (``trial.float("lr", 1e-5, 1e-1, log=True)``) or come
    from a declared space (``trial.params``). Each definition is recorded in the study at once.
    """

    def __init__(
        self,
        recorder: TrialRecorder,
        number: builtins.int,
        *,
        params: Mapping[str, Any] | None = None,
        fixed: Mapping[str, Any] | None = None,
        proposal: Mapping[str, Any] | None = None,
        intermediate: Mapping[builtins.int, builtins.float] | None = None,
        resume_step: builtins.int | None = None,
        schedule: Schedule | None = None,
    ) -> None:
        self._recorder = recorder
        self.number = number
        self._params: dict[str, Any] = dict(params or {})
        self._fixed: dict[str, Any] = dict(fixed or {})
        self._proposal: dict[str, Any] = dict(proposal or {})
        self._intermediate: dict[builtins.int, builtins.float] = dict(intermediate or {})
        #: the last step stored before this run when the trial was resumed after a pause, else None
        self._resume_step: builtins.int | None = max(self._intermediate) if self._intermediate else None
        if resume_step is not None:  # resumed from a checkpoint past its own last report (an exploit)
            self._resume_step = max(resume_step, self._resume_step if self._resume_step is not None else -1)
        self._user_attrs: dict[str, Any] = {}
        #: the schedule its weights were trained with, when it ever changed parameters (else None: constant)
        self._schedule = schedule
        self._decision: tuple[builtins.int, Any] | None = None  # (step, Decision) of the latest report
        self._reaped = False  # set by the heartbeat thread when the storage no longer holds it RUNNING

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self._params!r})"

    @property
    def params(self) -> dict[str, Any]:
        """The parameters defined so far, by name."""
        return dict(self._params)

    @property
    def resume_step(self) -> builtins.int | None:
        """When this run resumes a paused trial, the step its checkpoint holds (the last step it reported,
        or, after an exploit, the step of the checkpoint it took over); else None.

        Continue from ``resume_step + 1`` after ``load_checkpoint()``; reports of steps up to it are ignored.
        """
        return self._resume_step

    @property
    def seed(self) -> builtins.int:
        """The seed this trial's objective should use for its randomness (weights, data order, environment).

        While tuning it is the trial's number (or the one enqueued with ``study.enqueue(..., seed=)``);
        :func:`selftune.protocol.evaluate` sets test seeds disjoint from the tuning seeds.
        """
        return seed_of(self.number, self._fixed)

    @property
    def intermediate(self) -> dict[builtins.int, builtins.float]:
        """Values reported so far, by step."""
        return dict(self._intermediate)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """User attributes set so far."""
        return dict(self._user_attrs)

    def suggest(self, name: str, param: Param) -> Any:
        """Define parameter ``name`` with domain ``param`` and return its value for this trial."""
        self._check_alive()
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(f"parameter names must be non-empty strings, got {name!r}")
        if name.startswith(SYSTEM_PREFIX):
            raise InvalidParameterError(f"parameter {name!r}: names starting with {SYSTEM_PREFIX!r} are reserved")
        param = self._recorder._define(self, name, param)  # checks the definition and its consistency
        if name in self._params:
            return self._params[name]
        value = self._recorder._suggest(self, name, param)
        self._params[name] = value
        return value

    def float(
        self, name: str, low: builtins.float, high: builtins.float, *, log: bool = False,
        step: builtins.float | None = None,
    ) -> builtins.float:
        """A real parameter in ``[low, high]`` (log-scaled or on a grid of ``step`` if asked)."""
        return self.suggest(name, Float(low, high, log=log, step=step))  # type: ignore[no-any-return,unused-ignore]

    def int(
        self, name: str, low: builtins.int, high: builtins.int, *, log: bool = False, step: builtins.int = 1
    ) -> builtins.int:
        """An integer parameter in ``[low, high]`` (log-scaled or on a grid of ``step`` if asked)."""
        return self.suggest(name, Int(low, high, log=log, step=step))

    def choice(self, name: str, choices: Sequence[Any]) -> Any:
        """One of ``choices`` (JSON-serialisable values)."""
        return self.suggest(name, Choice(tuple(choices) if isinstance(choices, list) else choices))

    def report(self, value: Any, step: builtins.int) -> None:
        """Record an intermediate ``value`` (a number; ±inf allowed, NaN refused) at integer ``step >= 0``.

        Values have the study's direction. Steps must increase: reporting a step again, or an earlier
        one, raises :class:`InvalidValueError` (a stored curve is never rewritten), except that a resumed
        trial's reports of steps up to :attr:`resume_step` are ignored (an objective without checkpoints may
        redo them). Then ask :meth:`should_stop`.
        """
        self._check_alive()
        v = check_value(value, f"trial {self.number}: reported value at step {step!r}")
        if math.isnan(v):
            raise InvalidValueError(f"trial {self.number}: reported value at step {step} is NaN")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise InvalidValueError(f"trial {self.number}: `step` must be an integer >= 0, got {step!r}")
        step = int(step)
        if self._resume_step is not None and step <= self._resume_step:
            return  # a resumed trial redoing its first steps: the stored curve stands
        if self._intermediate:
            last = max(self._intermediate)
            if step <= last:
                raise InvalidValueError(
                    f"trial {self.number}: steps must increase, got step {step} after step {last}"
                )
        self._recorder._report(self, v, step)
        self._intermediate[step] = v

    def should_stop(self) -> bool:
        """True when the study's scheduler decided, on the latest report, that this trial should stop.

        The idiomatic exit is then ``raise selftune.StopTrial()`` (or ``trial.stop()``): the trial is recorded
        STOPPED with its curve and the scheduler's reason. Without a scheduler, always False.
        """
        self._check_alive()
        return self._recorder._should_stop(self)

    @property
    def decision(self) -> Any:
        """The scheduler's :class:`~selftune.schedulers.Decision` on the latest report, or None if none was made."""
        return None if self._decision is None else self._decision[1]

    def save_checkpoint(self, payload: Any, step: builtins.int | None = None) -> None:
        """Store a checkpoint of this trial at ``step`` (default: the last reported step, or 0).

        ``payload``: a dict such as ``{"model": model.state_dict(), "optimizer": opt.state_dict()}`` (saved
        with ``torch.save``, loaded with ``weights_only=True``), ``bytes``, or a path to a file or directory
        (copied). Written atomically with checksums, in the study's artifact directory.
        """
        self._check_alive()
        if step is None:
            step = max(self._intermediate) if self._intermediate else 0
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise InvalidValueError(f"trial {self.number}: checkpoint `step` must be an integer >= 0, got {step!r}")
        self._recorder._save_checkpoint(self, payload, int(step))

    def load_checkpoint(self) -> Any:
        """This trial's newest checkpoint (verified; a corrupt one raises :class:`CheckpointError`), or None.

        A dict for PyTorch payloads, ``bytes``, or the path of a stored file or directory.
        """
        self._check_alive()
        return self._recorder._load_checkpoint(self)

    def set_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable user attribute on this trial."""
        self._check_alive()
        if not isinstance(key, str) or not key:
            raise InvalidParameterError(f"attribute keys must be non-empty strings, got {key!r}")
        if key.startswith(SYSTEM_PREFIX):
            raise InvalidParameterError(f"attribute key {key!r}: keys starting with {SYSTEM_PREFIX!r} are reserved")
        self._recorder._set_user_attr(self, key, value)
        self._user_attrs[key] = value

    def stop(self) -> None:
        """Stop this trial now: raises :class:`StopTrial`, which the study records as STOPPED."""
        raise StopTrial(f"trial {self.number} stopped")

    def _check_alive(self) -> None:
        if self._reaped:
            raise TrialReapedError(
                f"trial {self.number} was marked FAILED (heartbeat lost) while this worker still ran it; "
                "it stops here. Raise the grace period if steps take longer than it."
            )
