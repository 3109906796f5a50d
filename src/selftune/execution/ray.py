"""Ray: trials run as Ray tasks on a cluster (``pip install 'selftune[ray]'``).

Each worker is one Ray task with the resources you give it (``num_cpus``, ``num_gpus``, custom ``resources``);
it runs the usual optimize loop against the study's storage, so results land in the same database whatever
node runs them (use PostgreSQL, or an SQLite file on a single machine). A node that dies takes its task with
it: the driver fails the running trial at once and starts a replacement task.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from selftune.exceptions import InvalidParameterError, MissingDependencyError
from selftune.execution._base import Executor, WorkerExit
from selftune.execution._worker import WorkerFailure, WorkerSpec

__all__ = ["RayExecutor"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            f"RayExecutor needs Ray ({exc}); install it with: pip install 'selftune[ray]'"
        ) from None
    return ray


@dataclass
class _Task:
    ref: Any
    tag: str


class RayExecutor(Executor):
    """Runs trials as ``workers`` Ray tasks, each with ``num_cpus`` / ``num_gpus`` / ``resources``.

    ``address`` is passed to ``ray.init`` when Ray is not initialised yet (None: a local Ray, or the cluster
    of ``$RAY_ADDRESS``); ``init_kwargs`` go with it. A Ray this executor started is shut down afterwards.
    """

    poll_interval = 0.2

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        resources: dict[str, float] | None = None,
        init_kwargs: dict[str, Any] | None = None,
        max_restarts: int | None = None,
    ) -> None:
        super().__init__(workers, max_restarts=max_restarts)
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidParameterError(f"`{name}` must be a number >= 0, got {value!r}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.resources = dict(resources or {})
        self.init_kwargs = dict(init_kwargs or {})
        self._started_ray = False
        self._flag: Any = None
        self._remote: Any = None

    def _setup(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_kwargs)
            self._started_ray = True
        self._flag = ray.remote(num_cpus=0)(_StopFlag).remote()
        self._remote = ray.remote(_ray_worker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, resources=self.resources or None, max_retries=0,
        )

    def _teardown(self) -> None:
        ray = _ray()
        self._flag = None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def _start(self, spec: WorkerSpec, data: bytes) -> _Task:
        return _Task(self._remote.remote(data, spec.sys_path, self._flag), spec.tag)

    def _poll(self, handle: _Task) -> WorkerExit | None:
        ray = _ray()
        ready, _ = ray.wait([handle.ref], timeout=0)
        if not ready:
            return None
        try:
            ray.get(handle.ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, WorkerFailure):
                return WorkerExit(ok=False, failure=cause)
            return WorkerExit(ok=False, why=f"Ray task {handle.tag} failed: {type(cause).__name__}")
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.TaskCancelledError,
                ray.exceptions.NodeDiedError, ray.exceptions.RayError) as exc:
            return WorkerExit(ok=False, why=f"Ray task {handle.tag}: {type(exc).__name__}")
        return WorkerExit(ok=True)

    def _kill(self, handle: _Task) -> None:
        ray = _ray()
        try:
            ray.cancel(handle.ref, force=True)
        except Exception:  # noqa: BLE001 - it ended meanwhile
            pass

    def _stop(self, handle: _Task) -> None:
        if self._flag is not None:
            self._flag.set.remote()


class _StopFlag:
    """A Ray actor the driver sets to stop every worker after its current trial."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _ray_worker(data: bytes, sys_path: list[str], flag: Any) -> int:
    """The body of one Ray task: a worker loop, stopped when ``flag`` is set."""
    import ray

    from selftune.execution._worker import loads_spec, run_worker

    spec = loads_spec(data, sys_path)
    spec.cwd = None  # a node of a cluster may not have the driver's directory

    done = threading.Event()

    def watch(study: Any) -> None:
        def loop() -> None:
            while not done.is_set():
                try:
                    if ray.get(flag.is_set.remote(), timeout=10):
                        study._stop_sticky = True
                        study.stop()
                        return
                except Exception:  # noqa: BLE001 - the driver (and its actor) is gone: finish this trial and stop
                    study._stop_sticky = True
                    study.stop()
                    return
                done.wait(0.5)

        threading.Thread(target=loop, name="selftune-ray-stop-watch", daemon=True).start()

    try:
        return run_worker(spec, on_study=watch)
    finally:
        done.set()  # Ray reuses its worker processes: the watcher must not outlive the task
