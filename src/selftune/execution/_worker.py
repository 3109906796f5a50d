"""What runs inside a worker (a local process or a Ray task): open the study, optimise it to the budget.

The driver sends a :class:`WorkerSpec`, pickled with cloudpickle (so lambdas, closures and functions defined
in ``__main__`` or a notebook travel too). Everything else flows through the storage.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selftune.exceptions import InvalidParameterError

__all__ = ["WorkerSpec", "WorkerFailure", "dumps_spec", "loads_spec", "run_worker"]

logger = logging.getLogger("selftune")


@dataclass
class WorkerSpec:
    """Everything a worker needs to join the study (the storage URL includes its password: never logged)."""

    storage_url: str
    study: str
    objective: Callable[..., Any]
    sampler: Any
    scheduler: Any
    artifacts: str | None
    heartbeat_interval: float
    grace_period: float
    trials: int | None
    deadline: float | None  # time.time() after which no trial starts
    catch: tuple[type[BaseException], ...]
    retries: int
    index: int
    tag: str
    sys_path: list[str] = field(default_factory=list)
    cwd: str | None = None
    memory_limit: int | None = None
    log_level: int = logging.WARNING


class WorkerFailure(Exception):
    """The objective raised an exception that is not in ``catch``: the run stops and the driver raises it."""

    def __init__(self, kind: str, message: str, remote_traceback: str, trial: int | None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.remote_traceback = remote_traceback
        self.trial = trial

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling (Ray sends it back to the driver)
        return (WorkerFailure, (self.kind, self.message, self.remote_traceback, self.trial))


def dumps_spec(spec: WorkerSpec) -> bytes:
    """The spec as bytes; a clear error when the objective (or sampler, scheduler) cannot be sent."""
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(spec))
    except Exception as exc:  # noqa: BLE001 - anything unpicklable the objective holds (a lock, a connection)
        raise InvalidParameterError(
            f"optimize(workers=...) sends the objective {getattr(spec.objective, '__qualname__', spec.objective)!r}, "
            f"its sampler and scheduler to worker processes, but they cannot be pickled ({type(exc).__name__}: "
            f"{exc}); create what cannot be pickled (open files, connections, locks) inside the objective"
        ) from exc


def loads_spec(data: bytes, sys_path: list[str] | None = None) -> WorkerSpec:
    """Undo :func:`dumps_spec`, with the driver's ``sys_path`` first so its modules import the same."""
    import pickle

    for p in reversed(sys_path or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    spec = pickle.loads(data)  # noqa: S301 - bytes from our own driver over a private pipe, never from storage
    assert isinstance(spec, WorkerSpec)
    return spec


def worker_id(tag: str) -> str:
    """``host:pid:tag``: the driver finds its workers' trials by the tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


def run_worker(spec: WorkerSpec, on_study: Callable[[Any], None] | None = None) -> int:
    """Join the study and optimise it until its budget, the deadline or a stop; returns the trials run here.

    ``on_study(study)`` is called once the study is open (the caller starts its stop watcher there).
    Raises :class:`WorkerFailure` when the objective raises an exception that is not in ``catch``.
    """
    from selftune.storage import get_storage
    from selftune.study import Study

    if spec.cwd is not None:
        os.chdir(spec.cwd)
    if spec.memory_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (spec.memory_limit, spec.memory_limit))
    # the driver reached this storage already: a server that refuses us now (restarting) is waited out
    storage = get_storage(spec.storage_url, wait_connect=True)
    study = Study(
        storage, spec.study, sampler=spec.sampler, scheduler=spec.scheduler, artifacts=spec.artifacts,
        heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
    )
    study.worker = worker_id(spec.tag)
    if spec.index > 0:
        study._salt = (spec.index,)
    if on_study is not None:
        on_study(study)
    ran = 0

    def count(_study: Any, _record: Any) -> None:
        nonlocal ran
        ran += 1

    remaining = None if spec.deadline is None else spec.deadline - time.time()
    try:
        if spec.trials is None and remaining is None:
            raise InvalidParameterError("a worker needs a trial budget or a deadline")
        if remaining is not None and remaining <= 0:
            return 0
        # a worker never dies of the objective's MemoryError: that trial fails, the worker goes on
        study.optimize(
            spec.objective, trials=spec.trials, timeout=remaining, catch=(*spec.catch, MemoryError),
            callbacks=[count], progress=False, retries=spec.retries,
        )
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        mine = [r for r in study._records if r is not None and r.worker == study.worker and r.traceback]
        raise WorkerFailure(
            type(exc).__name__, str(exc), traceback.format_exc(), mine[-1].number if mine else None
        ) from None
    finally:
        study.close()
        storage.close()
    return ran
