"""In-memory storage: fast, thread-safe, gone when the process ends."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from selftune.exceptions import (
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialStateError,
)
from selftune.storage._base import (
    HEARTBEAT_LOST,
    RETRIED_AS_KEY,
    BudgetSpentError,
    Storage,
    StudyInfo,
    StudySummary,
    check_finish,
    check_key,
    check_study_name,
    check_system_attrs,
    dumps,
    finish_allowed,
    finished_error,
    loads,
    not_paused_error,
    retry_fixed,
)
from selftune.trial import TrialRecord, TrialState

__all__ = ["MemoryStorage"]

_SCALARS = (str, int, float, bool, type(None))


def _json_copy(values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` as they come back from JSON (scalars need no round trip)."""
    if all(type(v) in _SCALARS for v in values.values()) and all(type(k) is str for k in values):
        return values
    return loads(dumps(values, what))


class _Trial:
    """A trial's mutable state; :attr:`record` builds the frozen record once per change."""

    __slots__ = ("fields", "seq", "heartbeat_at", "fixed", "_record")

    def __init__(self, fields: dict[str, Any], seq: int) -> None:
        self.fields = fields
        self.seq = seq
        self.heartbeat_at: float | None = None
        self.fixed: dict[str, Any] = {}
        self._record: TrialRecord | None = None

    @property
    def state(self) -> TrialState:
        return self.fields["state"]

    def update(self, **changes: Any) -> None:
        self.fields.update(changes)
        self._record = None

    @property
    def record(self) -> TrialRecord:
        if self._record is None:
            self._record = TrialRecord(**self.fields, fixed=dict(self.fixed))
        return self._record


@dataclass
class _Study:
    info: StudyInfo
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials: list[_Trial] = field(default_factory=list)
    seq: int = 0
    waiting: list[int] = field(default_factory=list)
    retried: int = 0  # FAILED trials a retry replaces (they do not count against a budget)
    #: trial numbers in the order they last changed, so reads walk only what changed
    recent: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def touch(self, t: _Trial) -> None:
        t.seq = self.seq
        number = t.fields["number"]
        self.recent[number] = None
        self.recent.move_to_end(number)


class MemoryStorage(Storage):
    """Keeps everything in this process's memory; values are JSON round-tripped like the SQL backends."""

    url = "memory"

    def __init__(self) -> None:
        self._tmp: Any = None
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}
        self._by_name: dict[str, int] = {}
        self._next_id = 1

    def _study(self, study_id: int) -> _Study:
        try:
            return self._studies[study_id]
        except KeyError:
            raise StudyNotFoundError(f"no study with id {study_id} in {self.url}") from None

    def _trial(self, study: _Study, number: int) -> _Trial:
        if not 0 <= number < len(study.trials):
            raise TrialNotFoundError(f"study {study.info.name!r} has no trial {number}")
        return study.trials[number]

    def _running(self, study: _Study, number: int) -> _Trial:
        t = self._trial(study, number)
        if t.state is not TrialState.RUNNING:
            raise finished_error(number, t.state, t.fields.get("reason"))
        return t

    def _bump(self, study: _Study, t: _Trial, **changes: Any) -> None:
        study.seq += 1
        study.touch(t)
        t.update(**changes)

    # -- studies ------------------------------------------------------------------------------------
    def create_study(self, name: str, direction: str, space: Mapping[str, Any] | None) -> StudyInfo:
        check_study_name(name)
        with self._lock:
            if name in self._by_name:
                raise StudyExistsError(f"a study named {name!r} exists already in {self.url}")
            info = StudyInfo(self._next_id, name, direction, loads(dumps(space, "space")), time.time(), {})
            self._next_id += 1
            self._studies[info.id] = _Study(info)
            self._by_name[name] = info.id
            return info

    def get_study(self, name: str) -> StudyInfo:
        with self._lock:
            if name not in self._by_name:
                raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
            return self._studies[self._by_name[name]].info

    def list_studies(self) -> list[StudySummary]:
        with self._lock:
            out = []
            for s in self._studies.values():
                counts: dict[str, int] = {}
                for t in s.trials:
                    counts[t.state.value] = counts.get(t.state.value, 0) + 1
                done = [t.fields["value"] for t in s.trials if t.state is TrialState.COMPLETE]
                best = None
                if done:
                    best = min(done) if s.info.direction == "minimize" else max(done)
                out.append(StudySummary(s.info, counts, best))
            return out

    def delete_study(self, name: str) -> None:
        with self._lock:
            if name not in self._by_name:
                raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
            del self._studies[self._by_name.pop(name)]

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"study attribute {key!r}")
        with self._lock:
            s = self._study(study_id)
            s.info = replace(s.info, user_attrs={**s.info.user_attrs, key: loads(text)})

    # -- parameter registry ---------------------------------------------------------------------------
    def define_param(self, study_id: int, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        check_key("a parameter name", name)
        with self._lock:
            s = self._study(study_id)
            if name not in s.params:
                s.params[name] = loads(dumps(spec, f"domain of parameter {name!r}"))
            return dict(s.params[name])

    def get_params(self, study_id: int) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._study(study_id).params.items()}

    # -- trials ---------------------------------------------------------------------------------------
    def _new(self, s: _Study, state: TrialState, **kw: Any) -> _Trial:
        now = time.time()
        s.seq += 1
        fields: dict[str, Any] = {"params": {}, "intermediate": {}, "user_attrs": {}, "system_attrs": {}}
        fields.update(number=len(s.trials), state=state, created_at=now, **kw)
        t = _Trial(fields, s.seq)
        s.trials.append(t)
        s.touch(t)
        return t

    def enqueue_trial(self, study_id: int, fixed: Mapping[str, Any]) -> TrialRecord:
        text = dumps(dict(fixed), "enqueued parameters")
        with self._lock:
            s = self._study(study_id)
            t = self._new(s, TrialState.WAITING)
            t.fixed = loads(text)
            s.waiting.append(t.fields["number"])
            return t.record

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
        check_system_attrs(-1, system_attrs or {})
        system = _json_copy(dict(system_attrs or {}), "system attributes")
        with self._lock:
            s = self._study(study_id)
            now = time.time()
            if budget is not None:  # O(waiting), not O(trials): retried failures are counted as they happen
                waiting = sum(s.trials[n].state is TrialState.WAITING for n in s.waiting)
                started = len(s.trials) - waiting - s.retried
                if started >= budget:
                    raise BudgetSpentError(f"study {s.info.name!r} has {started} started trials (budget {budget})")
            while claim and s.waiting:
                t = s.trials[s.waiting.pop(0)]
                if t.state is TrialState.WAITING:
                    self._bump(
                        s, t, state=TrialState.RUNNING, started_at=now, worker=worker,
                        system_attrs={**t.fields["system_attrs"], **system},
                    )
                    t.heartbeat_at = now
                    return t.record
            clean = _json_copy(dict(params or {}), "parameters")
            t = self._new(s, TrialState.RUNNING, params=clean, started_at=now, worker=worker)
            t.fields["system_attrs"] = dict(system)
            t.heartbeat_at = now
            return t.record

    def set_trial_params(self, study_id: int, number: int, params: Mapping[str, Any]) -> None:
        clean = _json_copy(dict(params), "parameters")
        with self._lock:
            s = self._study(study_id)
            t = self._running(s, number)
            for k in clean:
                check_key("a parameter name", k)
                if k in t.fields["params"]:
                    raise TrialStateError(f"trial {number}: parameter {k!r} is set already")
            self._bump(s, t, params={**t.fields["params"], **clean})

    def report(self, study_id: int, number: int, step: int, value: float) -> None:
        with self._lock:
            s = self._study(study_id)
            t = self._running(s, number)
            if step in t.fields["intermediate"]:
                raise TrialStateError(f"trial {number}: step {step} is reported already")
            self._bump(s, t, intermediate={**t.fields["intermediate"], int(step): float(value)})

    def set_trial_attr(self, study_id: int, number: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"trial {number}: attribute {key!r}")
        with self._lock:
            s = self._study(study_id)
            t = self._running(s, number)
            self._bump(s, t, user_attrs={**t.fields["user_attrs"], key: loads(text)})

    def finish_trial(
        self,
        study_id: int,
        number: int,
        state: TrialState,
        value: float | None = None,
        reason: str | None = None,
        traceback: str | None = None,
    ) -> None:
        check_finish(number, state, value)
        with self._lock:
            s = self._study(study_id)
            t = self._trial(s, number)
            if t.state not in finish_allowed(state):
                raise finished_error(number, t.state, t.fields.get("reason"))
            self._bump(
                s, t, state=state, value=value, reason=reason, traceback=traceback, finished_at=time.time()
            )

    def stop_paused_trial(
        self, study_id: int, number: int, last_step: int, value: float | None, reason: str | None
    ) -> None:
        check_finish(number, TrialState.STOPPED, value)
        with self._lock:
            s = self._study(study_id)
            t = self._paused(s, number, last_step, "stopped")
            self._bump(s, t, state=TrialState.STOPPED, value=value, reason=reason, finished_at=time.time())

    def _paused(self, s: _Study, number: int, last_step: int | None, action: str) -> _Trial:
        """Trial ``number`` of study ``s``, PAUSED at ``last_step`` (any step if None), or the error why not."""
        t = self._trial(s, number)
        inter = t.fields["intermediate"]
        at = max(inter) if inter else -1
        if t.state is not TrialState.PAUSED or (last_step is not None and at != last_step):
            raise not_paused_error(number, t.state, at, last_step, action)
        return t

    def pause_trial(self, study_id: int, number: int) -> None:
        with self._lock:
            s = self._study(study_id)
            t = self._running(s, number)
            self._bump(s, t, state=TrialState.PAUSED)
            t.heartbeat_at = None

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
        changes: dict[str, Any] = {}
        if params is not None:
            changes["params"] = _json_copy({check_key("a parameter name", k): v for k, v in params.items()}, "parameters")
        check_system_attrs(number, system_attrs or {})
        system = _json_copy(dict(system_attrs or {}), "system attributes")
        with self._lock:
            s = self._study(study_id)
            t = self._paused(s, number, last_step, "resumed")
            if system:
                changes["system_attrs"] = {**t.fields["system_attrs"], **system}
            self._bump(s, t, state=TrialState.RUNNING, worker=worker, **changes)
            t.heartbeat_at = time.time()
            return t.record

    def retry_trial(self, study_id: int, number: int, max_attempts: int) -> TrialRecord | None:
        with self._lock:
            s = self._study(study_id)
            t = self._trial(s, number)
            fixed = retry_fixed(t.record, max_attempts)
            if fixed is None:
                return None
            new = self._new(s, TrialState.WAITING)
            new.fixed = loads(dumps(fixed, "retried parameters"))
            s.waiting.append(new.fields["number"])
            self._bump(s, t, system_attrs={**t.fields["system_attrs"], RETRIED_AS_KEY: new.fields["number"]})
            s.retried += 1
            return new.record

    def heartbeat(self, study_id: int, numbers: Sequence[int]) -> list[int]:
        with self._lock:
            s = self._study(study_id)
            lost = []
            now = time.time()
            for n in numbers:
                t = self._trial(s, n)
                if t.state is TrialState.RUNNING:
                    t.heartbeat_at = now
                else:
                    lost.append(n)
            return lost

    def reap(self, study_id: int, grace: float) -> list[int]:
        with self._lock:
            s = self._study(study_id)
            cutoff = time.time() - grace
            dead = [
                t
                for t in s.trials
                if t.state is TrialState.RUNNING and t.heartbeat_at is not None and t.heartbeat_at < cutoff
            ]
            if not dead:
                return []
            s.seq += 1
            now = time.time()
            for t in dead:
                s.touch(t)
                t.update(state=TrialState.FAILED, reason=HEARTBEAT_LOST, finished_at=now)
            return [t.fields["number"] for t in dead]

    def artifact_root(self) -> str | None:
        """A temporary directory, removed with this storage object (checkpoints live as long as the studies)."""
        with self._lock:
            if self._tmp is None:
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="selftune-artifacts-")
            return str(self._tmp.name)

    def read_trials(self, study_id: int, cursor: int = 0) -> tuple[list[TrialRecord], int]:
        with self._lock:
            s = self._study(study_id)
            out = []
            for n in reversed(s.recent):
                t = s.trials[n]
                if t.seq <= cursor:
                    break
                out.append(t.record)
            out.sort(key=lambda r: r.number)
            return out, s.seq

    def trial_seqs(self, study_id: int) -> dict[int, int]:
        with self._lock:
            return {t.fields["number"]: t.seq for t in self._study(study_id).trials}

    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        with self._lock:
            s = self._study(study_id)
            return self._trial(s, number).record
