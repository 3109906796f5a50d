"""Local worker processes: ``study.optimize(objective, trials=N, workers=k)``.

Each worker is a fresh Python process (``python -m selftune.execution._child``, not fork: no inherited
threads, locks or database connections, and no ``if __name__ == "__main__"`` guard needed in the user's
script), so there is no GIL ceiling and a crash, a hang or an out-of-memory kill takes down one worker, never
the driver or the study.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftune.exceptions import InvalidParameterError
from selftune.execution._base import Executor, WorkerExit
from selftune.execution._worker import WorkerFailure, WorkerSpec

__all__ = ["ProcessExecutor"]

_FATAL_EXIT = 3  # as in _child.py


@dataclass
class _Proc:
    proc: subprocess.Popen[bytes]
    report: Path


class ProcessExecutor(Executor):
    """Runs trials in ``workers`` local processes that share the study through its storage.

    ``memory_limit`` (bytes, per worker) caps each worker's address space: an objective that exceeds it gets
    a ``MemoryError`` and its trial fails with that reason; the worker goes on. ``env`` adds environment
    variables for the workers; ``OMP_NUM_THREADS`` is 1 unless set (several workers each running many
    threads on the same cores is many times slower).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_limit: int | None = None,
        env: dict[str, str] | None = None,
        max_restarts: int | None = None,
    ) -> None:
        super().__init__(workers, max_restarts=max_restarts)
        if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                         or memory_limit < 2**24):
            raise InvalidParameterError(f"`memory_limit` must be a number of bytes >= 16 MiB, got {memory_limit!r}")
        self.memory_limit = memory_limit
        self.env = dict(env or {})
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def _memory_limit(self) -> int | None:
        return self.memory_limit

    def _setup(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="selftune-workers-")

    def _teardown(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _start(self, spec: WorkerSpec, data: bytes) -> _Proc:
        assert self._tmp is not None
        report = Path(self._tmp.name) / f"{spec.tag}.json"
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.update(self.env)
        env["SELFTUNE_WORKER_REPORT"] = str(report)
        proc = subprocess.Popen(
            [sys.executable, "-m", "selftune.execution._child"], stdin=subprocess.PIPE, env=env, cwd=spec.cwd
        )
        assert proc.stdin is not None
        path = json.dumps(spec.sys_path).encode()
        try:
            proc.stdin.write(len(path).to_bytes(8, "big") + len(data).to_bytes(8, "big") + path + data)
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once; _poll says how
        return _Proc(proc, report)

    def _poll(self, handle: _Proc) -> WorkerExit | None:
        rc = handle.proc.poll()
        if rc is None:
            return None
        _close(handle)
        if rc == 0:
            return WorkerExit(ok=True)
        if rc == _FATAL_EXIT and handle.report.exists():
            info = json.loads(handle.report.read_text(encoding="utf-8"))
            failure = WorkerFailure(info["kind"], info["message"], info["traceback"], info["trial"])
            return WorkerExit(ok=False, failure=failure)
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals.__members__.values() else str(-rc)
            hint = "; killed by the system, out of memory?" if -rc == signal.SIGKILL else ""
            return WorkerExit(ok=False, why=f"pid {handle.proc.pid} killed by {name}{hint}")
        return WorkerExit(ok=False, why=f"pid {handle.proc.pid} exited with status {rc}")

    def _kill(self, handle: _Proc) -> None:
        if handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait()

    def _stop(self, handle: _Proc) -> None:
        try:
            if handle.proc.stdin is not None and not handle.proc.stdin.closed:
                handle.proc.stdin.write(b"stop\n")
                handle.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass


def _close(handle: Any) -> None:
    stdin = handle.proc.stdin
    if stdin is not None and not stdin.closed:
        try:
            stdin.close()
        except OSError:
            pass
