"""Studies: create or resume one, ask/tell, optimize, and read the results."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selftune._heartbeat import Heartbeat
from selftune._random import ask_rng, stable_hash
from selftune.exceptions import (
    CheckpointError,
    InvalidParameterError,
    NoCompleteTrialError,
    ParameterConflictError,
    StudyExistsError,
    TrialStateError,
)
from selftune.history import History, put_record
from selftune.samplers import AutoSampler, Sampler
from selftune.schedule import ASK_KEY, SEED_KEY, SYSTEM_PREFIX
from selftune.schedulers import Action, Scheduler
from selftune.space import Param, Space, param_from_json
from selftune.storage import Storage, StudySummary, get_storage
from selftune.storage._base import RETRIED_AS_KEY, RETRY_KEY, check_study_name, is_retryable
from selftune.trial import Trial, TrialRecord, TrialState, check_value

if TYPE_CHECKING:
    from selftune.execution import Executor

__all__ = ["Study", "create_study", "load_study", "delete_study", "list_studies"]

logger = logging.getLogger("selftune")

_DIRECTIONS = ("minimize", "maximize")


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Study:
    """A named optimisation problem and all its trials, backed by a storage.

    Get one with :func:`create_study` (which resumes an existing study of the same name) or
    :func:`load_study`. Many processes may open the same study and work on it at once.
    """

    def __init__(
        self,
        storage: Storage,
        name: str,
        *,
        sampler: Sampler | None = None,
        scheduler: Scheduler | None = None,
        artifacts: str | os.PathLike[str] | None = None,
        heartbeat_interval: float = 10.0,
        grace_period: float = 60.0,
    ) -> None:
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise InvalidParameterError(
                f"`scheduler` must be a selftune.schedulers.Scheduler or None, got {type(scheduler).__name__}"
            )
        if not (heartbeat_interval > 0 and math.isfinite(heartbeat_interval)):
            raise InvalidParameterError(f"`heartbeat_interval > 0` must hold, got {heartbeat_interval!r}")
        if not grace_period >= 2 * heartbeat_interval:
            raise InvalidParameterError(
                f"`grace_period >= 2 * heartbeat_interval` must hold so a live trial is never reaped, "
                f"got grace_period={grace_period!r}, heartbeat_interval={heartbeat_interval!r}"
            )
        self._storage = storage
        info = storage.get_study(name)
        self._id = info.id
        self.name = info.name
        self.direction: str = info.direction
        self.space: Space | None = None if info.space is None else Space.from_json(info.space)
        self.sampler: Sampler = sampler if sampler is not None else AutoSampler()
        #: decides after each report whether a trial goes on (None: trials always run to the end)
        self.scheduler: Scheduler | None = scheduler
        self._artifacts_arg = artifacts
        self._artifact_store: Any = None
        self.worker = _worker_id()
        self._records: list[TrialRecord | None] = []  # index = trial number
        self._counts: Counter[TrialState] = Counter()
        self._best: TrialRecord | None = None
        self._cursor = 0
        self._params: dict[str, Param] = {}
        self._lock = threading.RLock()
        self._live: dict[int, Trial] = {}
        self._history: dict[int, History] = {}
        self._stop_flag = threading.Event()
        self._stop_sticky = False  # set in workers: a stop from the driver survives the start of optimize()
        #: FAILED trials lost to the infrastructure and not retried yet (see selftune._retries)
        self._retry_candidates: set[int] = set()
        self._pending: set[int] = set()  # RUNNING or WAITING trials in the cache
        self._retried: set[int] = set()  # FAILED trials a retry replaces: they do not count against the budget
        #: salts the sampler's generator: parallel worker processes under one seed draw distinct points
        self._salt: tuple[int, ...] = ()
        self._heartbeat = Heartbeat(storage, self._id, heartbeat_interval, grace_period, self._on_lost)

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, direction={self.direction!r}, storage={self._storage.url!r})"

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the heartbeat thread. Trials still running here are left to the reaper."""
        self._heartbeat.stop()

    @property
    def storage(self) -> Storage:
        """The storage this study lives in."""
        return self._storage

    # -- reading ----------------------------------------------------------------------------------------
    def _refresh(self) -> list[TrialRecord]:
        """Pull only what changed since the last read; returns the changed records."""
        with self._lock:
            changed, cursor = self._storage.read_trials(self._id, self._cursor)
            unknown = False
            for r in changed:
                self._put(r)
                unknown = unknown or any(k not in self._params for k in r.params)
            self._cursor = max(self._cursor, cursor)
            if unknown:  # another process defined parameters: learn their domains (rare, append-only)
                for name, spec in self._storage.get_params(self._id).items():
                    self._params.setdefault(name, param_from_json(spec))
            return changed

    def _put(self, r: TrialRecord) -> None:
        """Cache ``r``, keeping the counts by state and the best trial up to date in O(1)."""
        sign = 1.0 if self.direction == "minimize" else -1.0
        self._best = put_record(self._records, self._counts, self._best, r, sign)
        if r.state in (TrialState.RUNNING, TrialState.WAITING):  # what History.pending holds
            self._pending.add(r.number)
        else:
            self._pending.discard(r.number)
        if r.state is TrialState.FAILED:
            if RETRIED_AS_KEY in r.system_attrs:
                self._retried.add(r.number)
                self._retry_candidates.discard(r.number)
            elif is_retryable(r.reason):
                self._retry_candidates.add(r.number)

    def history(self) -> History:
        """A fresh read-only snapshot for samplers, schedulers and analysis."""
        self._refresh()
        with self._lock:
            if sum(self._counts.values()) == len(self._records):
                records: tuple[TrialRecord, ...] = tuple(self._records)  # type: ignore[arg-type]
            else:  # a gap: a trial another process created is not read yet
                records = tuple(r for r in self._records if r is not None)
            return History(records, direction=self.direction, params=self._known_params())

    def _count(self, *states: TrialState) -> int:
        """How many cached trials are in ``states`` (call after a refresh)."""
        with self._lock:
            return sum(self._counts[s] for s in states)

    def _known_params(self) -> dict[str, Param]:
        out: dict[str, Param] = dict(self.space) if self.space is not None else {}
        out.update({k: v for k, v in self._params.items() if k not in out})
        return out

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial (any state), ordered by number."""
        return list(self.history().trials)

    def get_trial(self, number: int) -> TrialRecord:
        """The trial numbered ``number`` as stored now."""
        return self._storage.get_trial(self._id, number)

    @property
    def best(self) -> TrialRecord:
        """The best COMPLETE trial (earliest on ties); raises :class:`NoCompleteTrialError` if none has."""
        self._refresh()
        best = self._best
        if best is None:
            raise NoCompleteTrialError(f"study {self.name!r} has no COMPLETE trial yet")
        return best

    @property
    def best_value(self) -> float:
        """The best trial's value."""
        return float(self.best.value)  # type: ignore[arg-type]

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's parameters."""
        return dict(self.best.params)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The study's user attributes."""
        attrs = self._storage.get_study(self.name).user_attrs
        return {k: v for k, v in attrs.items() if not k.startswith(SYSTEM_PREFIX)}

    def set_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable user attribute on the study."""
        self._storage.set_study_attr(self._id, key, value)

    def dataframe(self) -> Any:
        """The trials as a pandas DataFrame (``pip install selftune[pandas]``)."""
        from selftune._export import to_dataframe

        return to_dataframe(self.trials)

    def export(self, path: str | os.PathLike[str], format: str | None = None) -> Path:
        """Write the trials to ``path`` as CSV or JSON (by ``format`` or the file's suffix)."""
        from selftune._export import export

        return export(self, Path(path), format)

    # -- the live-trial interface (TrialRecorder) ------------------------------------------------------------
    def _define(self, trial: Trial, name: str, param: Param) -> Param:
        with self._lock:
            known = self._params.get(name)
            if known is None and self.space is not None and name in self.space:
                known = self.space[name]
        if known is not None and known == param:  # the same domain as registered: checked already
            return known
        param.check(name)
        if known is None:
            spec = {k: v for k, v in param.to_json().items() if k != "when"}
            known = param_from_json(self._storage.define_param(self._id, name, spec))
            with self._lock:
                self._params[name] = known
        if not known.same_domain(param):
            raise ParameterConflictError(
                f"parameter {name!r} is defined as {param.describe()} in trial {trial.number}, but the study "
                f"{self.name!r} already defines it as {known.describe()}; a parameter keeps one domain per study"
            )
        return known

    def _suggest(self, trial: Trial, name: str, param: Param) -> Any:
        if name in trial._fixed:
            value = param.validate(trial._fixed[name], name)
        elif name in trial._proposal:
            value = trial._proposal[name]
        else:
            history = self._history.get(trial.number) or self.history()
            rng = ask_rng(self.sampler.seed, len(history), salt=(trial.number, stable_hash(name)))
            value = param.validate(self.sampler.propose_param(history, name, param, rng=rng), name)
        self._storage.set_trial_params(self._id, trial.number, {name: value})
        return value

    def _report(self, trial: Trial, value: float, step: int) -> None:
        self._storage.report(self._id, trial.number, step, value)

    def _set_user_attr(self, trial: Trial, key: str, value: Any) -> None:
        self._storage.set_trial_attr(self._id, trial.number, key, value)

    def _should_stop(self, trial: Trial) -> bool:
        from selftune._scheduling import decide

        return decide(self, trial).action in (Action.STOP, Action.PAUSE, Action.EXPLOIT)

    @property
    def artifacts(self) -> Path | None:
        """Where this study's checkpoints go: ``artifacts=``, ``$SELFTUNE_ARTIFACTS`` or the storage's default."""
        root = self._artifacts_arg
        if root is None:
            root = os.environ.get("SELFTUNE_ARTIFACTS") or self._storage.artifact_root()
        return None if root is None else Path(root)

    def _store(self) -> Any:
        from selftune.storage.artifacts import ArtifactStore

        root = self.artifacts
        if root is None:
            raise CheckpointError(
                f"study {self.name!r} has no artifact directory for checkpoints: pass "
                "create_study(..., artifacts='/path/every/worker/sees') or set $SELFTUNE_ARTIFACTS"
            )
        if self._artifact_store is None:
            self._artifact_store = ArtifactStore(root, self._id)
        return self._artifact_store

    def _save_checkpoint(self, trial: Trial, payload: Any, step: int) -> Any:
        # the parameters (and schedule) these weights were trained with travel with them, for exploits
        schedule = None if trial._schedule is None else trial._schedule.until(step).to_json()
        meta = {"params": dict(trial._params), "schedule": schedule}
        return self._store().save(trial.number, step, payload, meta)

    def _load_checkpoint(self, trial: Trial) -> Any:
        if self.artifacts is None:
            return None
        store = self._store()
        found = store.latest(trial.number)
        return None if found is None else store.load(found)

    def _on_lost(self, number: int) -> None:
        trial = self._live.get(number)
        if trial is not None:
            trial._reaped = True

    # -- ask / tell ---------------------------------------------------------------------------------------
    def ask(self, fixed: Mapping[str, Any] | None = None) -> Trial:
        """Start a trial: the next enqueued one if any, else a new one.

        With a declared space, every active parameter is set at once (``trial.params``); otherwise the
        objective defines them as it runs. ``fixed`` pins some values for this trial only.
        With a scheduler that pauses trials, a paused trial its scheduler lets go on is resumed first
        (``trial.resume_step`` tells where it stopped).
        """
        from selftune._scheduling import resume_next

        history = self.history()
        resumed = None if fixed else resume_next(self, history, final=False)
        return resumed if resumed is not None else self._ask(history, fixed)

    def _pause(self, trial: Trial) -> TrialRecord:
        """Give a running trial back (RUNNING → PAUSED) and return its record."""
        if getattr(self.scheduler, "needs_checkpoints", False) and trial._intermediate:
            step = max(trial._intermediate)
            found = self._store().latest(trial.number) if self.artifacts is not None else None
            if found is None or found.step < step:
                reason = (
                    f"trial {trial.number} paused at step {step} without a checkpoint of that step; "
                    f"{type(self.scheduler).__name__} resumes trials and copies their weights from checkpoints: "
                    "call trial.save_checkpoint({...}) before raising StopTrial"
                )
                self._fail_live(trial, reason)
                raise CheckpointError(reason)
        try:
            self._storage.pause_trial(self._id, trial.number)
        finally:
            self._forget(trial.number)
        return self._fresh_record(trial.number)

    def _fresh_record(self, number: int) -> TrialRecord:
        """Trial ``number`` after a refresh (the read the next ask would make anyway)."""
        self._refresh()
        record = self._records[number] if number < len(self._records) else None
        return record if record is not None else self.get_trial(number)

    def _adopt(self, record: TrialRecord, trial: Trial, history: History) -> Trial:
        """Take ``trial`` on as running here: cached, live, heart-beaten."""
        with self._lock:
            self._put(record)
            self._live[record.number] = trial
            self._history[record.number] = history
        self._heartbeat.add(record.number)
        return trial

    def _ask(self, history: History, fixed: Mapping[str, Any] | None = None, budget: int | None = None) -> Trial:
        if self.scheduler is not None:  # model-based multi-fidelity: fit at the best-supported fidelity
            history = self.scheduler.for_sampler(history)
        space = self.space if self.space is not None else Space(dict(history.params))
        rng = ask_rng(self.sampler.seed, len(history), salt=self._salt)
        proposal = self.sampler.propose(history, space, 1, rng=rng)[0] if len(space) else {}
        fixed = dict(fixed or {})
        if self.space is not None:
            proposal = self._complete(proposal, fixed)
            self.space.validate(proposal)
        record = self._storage.start_trial(
            self._id,
            self.worker,
            params=proposal if self.space is not None else None,
            claim=self._count(TrialState.WAITING) > 0,  # just read: skip the probe when none wait
            budget=budget,  # BudgetSpentError if other workers used it up since the read
            # what the proposal was based on, so it can be explained afterwards (see selftune.execution.explain)
            system_attrs={ASK_KEY: {  # from the cache the history was built from: O(pending), not O(trials)
                "seen": len(history), "complete": self._counts[TrialState.COMPLETE],
                "pending": sorted(self._pending), "cursor": self._cursor, "at": time.time(),
            }},
        )
        fixed = {**record.fixed, **fixed}
        params = dict(record.params)
        curve: dict[int, float] = {}
        resume_step = None
        if RETRY_KEY in record.fixed:  # a retry of a trial lost to a dead worker: from its last checkpoint
            from selftune._retries import restore_retry

            curve, resume_step = restore_retry(self, record)
        if record.fixed and self.space is not None:
            # an enqueued trial: its fixed values win, the proposal fills in what it leaves open
            params = self._complete(proposal, fixed)
            self.space.validate(params)
            self._storage.set_trial_params(self._id, record.number, params)
        trial = Trial(
            self, record.number, params=params, fixed=fixed, proposal=proposal, intermediate=curve,
            resume_step=resume_step,
        )
        return self._adopt(record, trial, history)

    def _complete(self, proposal: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fixed`` into a declared-space proposal and drop what the fixed values make inactive."""
        assert self.space is not None
        fixed = {k: v for k, v in fixed.items() if not k.startswith(SYSTEM_PREFIX)}
        fixed = self.space.validate(fixed, partial=True) if fixed else {}
        merged = {**proposal, **fixed}
        out: dict[str, Any] = {}
        for name in self.space:
            if self.space.is_active(name, out) and name in merged:
                out[name] = merged[name]
        missing = [n for n in self.space if self.space.is_active(n, out) and n not in out]
        if missing:  # a fixed parent activated a child the proposal did not cover
            rng = ask_rng(self.sampler.seed, sum(self._counts.values()), salt=(len(missing),))
            for n in missing:
                out[n] = self.space[n].from_unit(rng.random())
        return out

    def tell(
        self,
        trial: Trial | int,
        value: Any = None,
        *,
        state: TrialState | str | None = None,
        reason: str | None = None,
        traceback: str | None = None,
    ) -> TrialRecord:
        """Finish a trial (a :class:`Trial` or its number, from any process) and return its record.

        With a value it becomes COMPLETE; a NaN value makes it FAILED with a reason. ``state`` may be
        ``"STOPPED"`` (value optional: a live trial keeps its last reported value and the scheduler's reason)
        or ``"FAILED"`` (no value). A finished trial cannot be told again.
        """
        number = trial.number if isinstance(trial, Trial) else trial
        if isinstance(number, bool) or not isinstance(number, int | np.integer):
            raise InvalidParameterError(f"tell() needs a Trial or a trial number, got {trial!r}")
        number = int(number)
        st = TrialState(state) if state is not None else None
        if st is TrialState.PAUSED:
            if not isinstance(trial, Trial):
                raise InvalidParameterError("tell(state='PAUSED') needs the live Trial, not its number")
            return self._pause(trial)
        v: float | None = None
        if value is not None or st in (None, TrialState.COMPLETE):
            v = check_value(value, f"trial {number}: the objective value")
        if st is None:
            st = TrialState.COMPLETE
        if st is TrialState.STOPPED and isinstance(trial, Trial):
            # a stopped live trial keeps its last reported value and the scheduler's reason
            if v is None and trial._intermediate:
                v = trial._intermediate[max(trial._intermediate)]
            decision = trial.decision
            if reason is None and decision is not None and decision.stops:
                reason = decision.reason
        if v is not None and math.isnan(v):
            warnings.warn(f"trial {number}: the objective returned NaN; the trial is recorded as FAILED", stacklevel=2)
            st, v, reason = TrialState.FAILED, None, reason or "the objective value is NaN"
        try:
            self._storage.finish_trial(self._id, number, st, v, reason, traceback)
        finally:
            self._forget(number)
        return self._fresh_record(number)

    def _complete_live(self, trial: Trial, value: float) -> TrialRecord:
        """Finish live ``trial`` COMPLETE with a checked, non-NaN ``value``; its record is built here, without
        a read (the optimize loop's next refresh brings the stored one): one round trip less per trial."""
        try:
            self._storage.finish_trial(self._id, trial.number, TrialState.COMPLETE, value)
        finally:
            self._forget(trial.number)
        with self._lock:
            cached = self._records[trial.number] if trial.number < len(self._records) else None
            base = cached if cached is not None else TrialRecord(number=trial.number, state=TrialState.RUNNING)
            record = dataclasses.replace(
                base, state=TrialState.COMPLETE, value=value, params=dict(trial._params),
                intermediate=dict(trial._intermediate), user_attrs={**base.user_attrs, **trial._user_attrs},
                finished_at=time.time(),
            )
            self._put(record)
        return record

    def _forget(self, number: int) -> None:
        self._heartbeat.discard(number)
        with self._lock:
            self._live.pop(number, None)
            self._history.pop(number, None)

    def enqueue(self, params: Mapping[str, Any], *, seed: int | None = None) -> int:
        """Queue a trial with ``params`` fixed in advance (validated against the known domains); returns its number.

        ``seed`` sets the trial's :attr:`~selftune.Trial.seed` (by default its number).
        """
        if not isinstance(params, Mapping):
            raise InvalidParameterError(f"enqueue() needs a dict of parameter values, got {type(params).__name__}")
        known = self.history().params
        clean: dict[str, Any] = {}
        if self.space is not None:
            clean = self.space.validate(params, partial=True)
        else:
            for name, value in params.items():
                clean[name] = known[name].validate(value, name) if name in known else value
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                raise InvalidParameterError(f"enqueue(): `seed` must be an integer >= 0, got {seed!r}")
            clean[SEED_KEY] = int(seed)
        return self._storage.enqueue_trial(self._id, clean).number

    # -- optimize -----------------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Callable[[Trial], Any],
        trials: int | None = None,
        *,
        timeout: float | None = None,
        catch: type[BaseException] | Sequence[type[BaseException]] = (),
        callbacks: Iterable[Callable[[Study, TrialRecord], None]] = (),
        progress: bool = True,
        workers: int = 1,
        executor: str | Executor | None = None,
        retries: int = 0,
        trial_timeout: float | None = None,
    ) -> None:
        """Run ``objective(trial)`` until the study holds ``trials`` trials or ``timeout`` seconds pass.

        ``trials`` counts every trial of the study that started (COMPLETE, STOPPED, FAILED, RUNNING), from
        every process and every earlier run, so rerunning the same call resumes to the same budget.
        Exceptions of a type in ``catch`` fail the trial and the study goes on; others fail the trial and
        are raised. Ctrl-C fails the running trial with reason "interrupted" and re-raises.
        ``callbacks`` are called as ``callback(study, record)`` after each trial.

        ``workers=k`` runs the objective in ``k`` worker processes sharing this study through its storage
        (an SQLite file or PostgreSQL; the objective and sampler are sent to them with cloudpickle);
        ``executor="ray"`` or a :class:`selftune.execution.RayExecutor` runs them as Ray tasks instead.
        ``retries=n`` re-runs a trial up to ``n`` times when it is lost to the infrastructure (its worker
        died or hung past ``trial_timeout`` seconds), from its last checkpoint if it saved one; a retried
        failure does not count against ``trials``. An objective's own exception is never retried.
        """
        from selftune._optimize import check_run_args, run_optimize
        from selftune.execution import resolve_executor

        check_run_args(workers, retries, trial_timeout)
        runner = resolve_executor(executor, workers)
        self._heartbeat.start()  # the reaper runs on its timer even if the budget is already met
        if runner is None:
            run_optimize(
                self, objective, trials, timeout, catch, callbacks, progress,
                retries=retries, trial_timeout=trial_timeout,
            )
        else:
            runner.run(
                self, objective, trials, timeout=timeout, catch=catch, callbacks=callbacks, progress=progress,
                retries=retries, trial_timeout=trial_timeout, workers=workers,
            )

    def stop(self) -> None:
        """Ask a running :meth:`optimize` to stop after the current trial (safe from callbacks and threads)."""
        self._stop_flag.set()

    def _fail_live(self, trial: Trial, reason: str, tb: str | None = None) -> TrialRecord | None:
        try:
            return self.tell(trial, state=TrialState.FAILED, reason=reason, traceback=tb)
        except TrialStateError:  # reaped meanwhile: it is FAILED already
            return None


def create_study(
    name: str | None = None,
    *,
    storage: str | os.PathLike[str] | Storage | None = None,
    direction: str = "minimize",
    space: Space | Mapping[str, Param] | None = None,
    sampler: Sampler | None = None,
    scheduler: Scheduler | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    resume: bool = True,
    heartbeat_interval: float = 10.0,
    grace_period: float = 60.0,
) -> Study:
    """Create a study, or resume the study of that name if it exists (unless ``resume=False``).

    ``storage`` defaults to ``$SELFTUNE_STORAGE`` or the SQLite file ``selftune.db``; ``"memory"`` keeps it
    in memory. A resumed study must have the same direction (and declared space, if one is given).
    """
    if direction not in _DIRECTIONS:
        raise InvalidParameterError(f"`direction` must be 'minimize' or 'maximize', got {direction!r}")
    if space is not None and not isinstance(space, Space):
        space = Space(space)
    if name is None:
        name = f"study-{uuid.uuid4().hex[:12]}"
    check_study_name(name)
    st = get_storage(storage)
    space_json = None if space is None else space.to_json()
    try:
        st.create_study(name, direction, space_json)
    except StudyExistsError:
        if not resume:
            raise
        info = st.get_study(name)
        if info.direction != direction:
            raise StudyExistsError(
                f"study {name!r} exists in {st.url} with direction {info.direction!r}, not {direction!r}"
            ) from None
        if space_json is not None and info.space is not None and info.space != space_json:
            raise ParameterConflictError(
                f"study {name!r} exists in {st.url} with another declared space; "
                "use a new study name or the same space"
            ) from None
    return load_study(
        name,
        storage=st,
        sampler=sampler,
        scheduler=scheduler,
        artifacts=artifacts,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )


def load_study(
    name: str,
    *,
    storage: str | os.PathLike[str] | Storage | None = None,
    sampler: Sampler | None = None,
    scheduler: Scheduler | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    heartbeat_interval: float = 10.0,
    grace_period: float = 60.0,
) -> Study:
    """Open an existing study; raises :class:`StudyNotFoundError` if there is none of that name."""
    st = get_storage(storage)
    return Study(
        st,
        name,
        sampler=sampler,
        scheduler=scheduler,
        artifacts=artifacts,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )


def delete_study(name: str, *, storage: str | os.PathLike[str] | Storage | None = None) -> None:
    """Delete a study and all its trials."""
    get_storage(storage).delete_study(name)


def list_studies(storage: str | os.PathLike[str] | Storage | None = None) -> list[StudySummary]:
    """Every study in the storage with its trial counts and best value."""
    return get_storage(storage).list_studies()

