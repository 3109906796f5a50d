"""The Executor contract and the driver loop every executor shares.

An executor decides *where* trials run. Its workers open the study through the storage and run the usual
optimize loop there (ask, objective, tell, heartbeats, the reaper); the driver does not hand out trials. It
watches: it starts ``workers`` workers, shows progress, calls the callbacks as trials finish, fails at once the
running trials of a worker that died (no waiting for the grace period) and starts a replacement, kills a
worker whose trial runs past ``trial_timeout``, enqueues retries, and raises a worker's fatal error.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selftune._optimize import _check_args, budget_used
from selftune._progress import Progress
from selftune._retries import enqueue_retries
from selftune.exceptions import InvalidParameterError, SelftuneError, TrialStateError
from selftune.execution._worker import WorkerFailure, WorkerSpec
from selftune.storage._base import TRIAL_TIMEOUT, WORKER_DIED
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study
    from selftune.trial import Trial

__all__ = ["Executor", "WorkerError", "WorkerExit", "storage_url_of"]

logger = logging.getLogger("selftune")

_FINISHED = (TrialState.COMPLETE, TrialState.STOPPED, TrialState.FAILED)


class _Waiting:
    """A placeholder handle: the driver waits for RUNNING trials of other workers to finish or be reaped."""


def _live(handles: dict[str, Any]) -> list[Any]:
    """The handles of real workers (not the placeholder that waits for running trials)."""
    return [h for h in handles.values() if not isinstance(h, _Waiting)]


class WorkerError(SelftuneError, RuntimeError):
    """A worker stopped the run: the objective raised an exception not in ``catch`` (its type, message and
    the worker's traceback are in the message), or workers kept dying before finishing any trial."""


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended: ``ok`` (budget, deadline or stop), ``failure`` (the objective raised), or died
    (``why`` says how: a signal, an exit status)."""

    ok: bool
    failure: WorkerFailure | None = None
    why: str = ""


def storage_url_of(study: Study) -> str:
    """The study's storage URL with its password, for workers; an error for storages they cannot share."""
    engine = getattr(study.storage, "_engine", None)
    if engine is None:
        raise InvalidParameterError(
            f"workers run in other processes and share the study through its storage, but study {study.name!r} "
            f"is in {study.storage.url!r}; use an SQLite file (sqlite:///path.db) or PostgreSQL"
        )
    return str(engine.url.render_as_string(hide_password=False))


class Executor(ABC):
    """Runs a study's trials on ``workers`` workers (processes, Ray tasks). Subclasses start, poll and kill
    one worker; :meth:`run` is the driver loop they share."""

    #: how often the driver looks at its workers and the storage, in seconds
    poll_interval: float = 0.1

    def __init__(self, workers: int | None = None, *, max_restarts: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidParameterError(f"`workers` must be an integer >= 1, got {workers!r}")
        if max_restarts is not None and (isinstance(max_restarts, bool) or not isinstance(max_restarts, int)
                                         or max_restarts < 0):
            raise InvalidParameterError(f"`max_restarts` must be an integer >= 0 or None, got {max_restarts!r}")
        self.workers = workers
        #: replacements started for dead workers before the run gives up (None: 10 per worker)
        self.max_restarts = max_restarts

    # -- what a subclass provides ---------------------------------------------------------------------------
    @abstractmethod
    def _start(self, spec: WorkerSpec, data: bytes) -> Any:
        """Start one worker on the pickled ``spec`` (``data``); return a handle."""

    @abstractmethod
    def _poll(self, handle: Any) -> WorkerExit | None:
        """None while the worker runs, else how it ended."""

    @abstractmethod
    def _kill(self, handle: Any) -> None:
        """Kill the worker now (its running trial is failed by the driver)."""

    @abstractmethod
    def _stop(self, handle: Any) -> None:
        """Ask the worker to stop after its current trial."""

    def _setup(self) -> None:  # noqa: B027 - optional hook
        """Before the first worker starts (e.g. connect to a cluster)."""

    def _teardown(self) -> None:  # noqa: B027 - optional hook
        """After the last worker ended."""

    def _memory_limit(self) -> int | None:
        return None

    # -- the driver ---------------------------------------------------------------------------------------
    def run(
        self,
        study: Study,
        objective: Callable[[Trial], Any],
        trials: int | None,
        *,
        timeout: float | None = None,
        catch: type[BaseException] | Sequence[type[BaseException]] = (),
        callbacks: Iterable[Callable[[Study, TrialRecord], None]] = (),
        progress: bool = True,
        retries: int = 0,
        trial_timeout: float | None = None,
        workers: int = 1,
    ) -> None:
        """Optimise ``study`` with ``objective`` on this executor's workers (see :meth:`Study.optimize`)."""
        from selftune.execution._worker import dumps_spec

        kinds = _check_args(trials, timeout, catch)
        n_workers = self.workers if self.workers is not None else workers
        callbacks = list(callbacks)
        url = storage_url_of(study)
        start_wall, start = time.time(), time.monotonic()
        run_id = uuid.uuid4().hex[:6]
        artifacts = study.artifacts
        next_index = 0

        def spec_for() -> tuple[WorkerSpec, bytes]:
            nonlocal next_index
            spec = WorkerSpec(
                storage_url=url, study=study.name, objective=objective, sampler=study.sampler,
                scheduler=study.scheduler, artifacts=None if artifacts is None else str(artifacts),
                heartbeat_interval=study._heartbeat.interval, grace_period=study._heartbeat.grace,
                trials=trials, deadline=None if timeout is None else start_wall + timeout, catch=kinds,
                retries=retries, index=next_index, tag=f"w{run_id}-{next_index}", sys_path=list(sys.path),
                cwd=os.getcwd(), memory_limit=self._memory_limit(), log_level=logging.getLogger().getEffectiveLevel(),
            )
            next_index += 1
            return spec, dumps_spec(spec)

        study._stop_flag.clear()
        study._refresh()
        called_back = {r.number for r in study._records if r is not None and r.state in _FINISHED}
        max_restarts = self.max_restarts if self.max_restarts is not None else 10 * n_workers
        restarts = 0
        failure: WorkerFailure | None = None
        stopping = False
        handles: dict[str, Any] = {}  # tag -> handle, live workers only
        first_seen: dict[int, tuple[str, float]] = {}  # running trial -> (worker tag, when the driver saw it)

        def refresh() -> None:
            """Read what changed; note which worker runs what, and call the callbacks for finished trials."""
            for r in study._refresh():
                if r.state is TrialState.RUNNING and r.worker:
                    tag = r.worker.rsplit(":", 1)[-1]
                    if tag in handles and (r.number not in first_seen or first_seen[r.number][0] != tag):
                        first_seen[r.number] = (tag, time.monotonic())
                else:
                    first_seen.pop(r.number, None)
                if r.state in _FINISHED and r.number not in called_back:
                    called_back.add(r.number)
                    for cb in callbacks:
                        cb(study, r)

        self._setup()
        try:
            with Progress(enabled=progress, total=trials, timeout=timeout, direction=study.direction) as bar:
                for _ in range(n_workers):
                    spec, data = spec_for()
                    handles[spec.tag] = self._start(spec, data)
                while handles:
                    time.sleep(self.poll_interval)
                    refresh()
                    if retries and study._retry_candidates:
                        enqueue_retries(study, retries + 1)
                    if study._stop_flag.is_set() and not stopping:
                        stopping = True
                        for h in _live(handles):
                            self._stop(h)
                    if trial_timeout is not None:
                        now = time.monotonic()
                        for number, (tag, seen) in list(first_seen.items()):
                            if now - seen > trial_timeout and tag in handles:
                                self._kill(handles[tag])
                                reason = f"{TRIAL_TIMEOUT} after {trial_timeout:g} s (trial_timeout); its worker was killed"
                                self._fail(study, number, reason)
                                first_seen.pop(number, None)
                    waiting = handles.pop("(waiting for running trials)", None)
                    if waiting is not None and self._unsettled(study, start, timeout):
                        handles["(waiting for running trials)"] = waiting
                    for tag, h in list(handles.items()):
                        if isinstance(h, _Waiting):
                            continue
                        ended = self._poll(h)
                        if ended is None:
                            continue
                        del handles[tag]
                        if ended.ok:
                            continue
                        if ended.failure is not None:
                            failure = failure or ended.failure
                            if not stopping:
                                stopping = True
                                for other in _live(handles):
                                    self._stop(other)
                            continue
                        lost = [n for n, (t, _) in first_seen.items() if t == tag]
                        for number in lost:
                            self._fail(study, number, f"{WORKER_DIED} ({ended.why})")
                            first_seen.pop(number, None)
                        refresh()  # trials it started just before it died, not seen yet
                        for r in study._records:
                            if r is not None and r.state is TrialState.RUNNING and r.worker and r.worker.endswith(":" + tag):
                                self._fail(study, r.number, f"{WORKER_DIED} ({ended.why})")
                        logger.warning("worker %s died (%s)%s", tag, ended.why, f"; trial(s) {lost} FAILED" if lost else "")
                        if stopping or not self._work_left(study, refresh, trials, retries, start, timeout):
                            continue
                        restarts += 1
                        if restarts > max_restarts:
                            raise WorkerError(
                                f"workers of study {study.name!r} died {restarts} times (last: {ended.why}); "
                                f"giving up after max_restarts={max_restarts}"
                            )
                        spec, data = spec_for()
                        handles[spec.tag] = self._start(spec, data)
                    if not handles and not stopping:
                        if self._work_left(study, refresh, trials, retries, start, timeout):
                            # the last worker ended, then a trial failed late (a dead or hung worker's) and was retried
                            spec, data = spec_for()
                            handles[spec.tag] = self._start(spec, data)
                        elif retries and self._unsettled(study, start, timeout):
                            # with retries the budget is met only once every trial has finished: a trial still
                            # RUNNING may belong to a dead worker elsewhere (this study's reaper fails it after the
                            # grace period, then it is retried here)
                            handles["(waiting for running trials)"] = _Waiting()
                    best = study._best
                    bar.update(budget_used(study), None if best is None else best.value)
                refresh()
                best = study._best
                bar.update(budget_used(study), None if best is None else best.value)
        except BaseException:
            for h in _live(handles):
                self._kill(h)
            raise
        finally:
            self._teardown()
        if failure is not None:
            where = f" in trial {failure.trial}" if failure.trial is not None else ""
            raise WorkerError(
                f"the objective raised {failure.kind}{where} in a worker: {failure.message}\n"
                f"worker traceback:\n{failure.remote_traceback.rstrip()}"
            )

    @staticmethod
    def _work_left(
        study: Study, refresh: Callable[[], None], trials: int | None, retries: int, start: float,
        timeout: float | None,
    ) -> bool:
        """Whether a (replacement) worker would have something to do: budget left (retries enqueued first)."""
        if timeout is not None and time.monotonic() - start >= timeout:
            return False
        refresh()
        if retries and study._retry_candidates:
            enqueue_retries(study, retries + 1)
            refresh()
        return trials is None or budget_used(study) < trials

    @staticmethod
    def _unsettled(study: Study, start: float, timeout: float | None) -> bool:
        """Whether trials of the study are still RUNNING (and the timeout, if any, has not passed)."""
        if timeout is not None and time.monotonic() - start >= timeout:
            return False
        return study._count(TrialState.RUNNING) > 0

    def _fail(self, study: Study, number: int, reason: str) -> None:
        try:
            study._storage.finish_trial(study._id, number, TrialState.FAILED, None, reason)
        except TrialStateError:
            pass  # it finished meanwhile, or the reaper got it first
