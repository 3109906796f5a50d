"""Entry point of a local worker process: ``python -m selftune.execution._child``.

Reads its :class:`~selftune.execution._worker.WorkerSpec` from stdin (an 8-byte length, the sys.path as
JSON, then the pickled spec), then keeps reading stdin: a ``stop`` line or end of input (the driver closed it,
or died) stops the worker after its current trial. A fatal objective error is written as JSON to the file
named by ``SELFTUNE_WORKER_REPORT`` and the process exits with status 3.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

FATAL_EXIT = 3


def _read_exact(n: int) -> bytes:
    # raw reads of fd 0: a buffered sys.stdin would hold a lock that a daemon thread blocked in it keeps at exit
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise EOFError("the driver closed the pipe before sending the worker spec")
        data += chunk
    return data


def main() -> int:
    try:
        n_path, n_spec = (int.from_bytes(_read_exact(8), "big") for _ in range(2))
        sys_path = json.loads(_read_exact(n_path))
        data = _read_exact(n_spec)
    except EOFError as exc:  # the driver died between starting this process and sending its spec: nothing to do
        print(f"selftune worker: {exc}; exiting", file=sys.stderr)
        return 0
    from selftune.execution._worker import WorkerFailure, loads_spec, run_worker

    spec = loads_spec(data, sys_path)
    logging.basicConfig(
        level=spec.log_level, stream=sys.stderr, format=f"%(asctime)s [worker {spec.index}] %(levelname)s %(message)s"
    )

    def watch(study: Any) -> None:
        def loop() -> None:
            while True:  # "stop" or end of input (the driver closed the pipe, or died)
                try:
                    chunk = os.read(0, 4096)
                except OSError:
                    break
                if not chunk or b"stop" in chunk:
                    break
            study._stop_sticky = True
            study.stop()

        threading.Thread(target=loop, name="selftune-stop-watch", daemon=True).start()

    try:
        run_worker(spec, on_study=watch)
    except WorkerFailure as failure:
        report = os.environ.get("SELFTUNE_WORKER_REPORT")
        if report:
            with open(report, "w", encoding="utf-8") as f:
                json.dump(
                    {"kind": failure.kind, "message": failure.message, "traceback": failure.remote_traceback,
                     "trial": failure.trial},
                    f,
                )
        return FATAL_EXIT
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
