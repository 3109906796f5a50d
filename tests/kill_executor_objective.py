"""The objective and the driver for tests/test_kill_executors.py.

``objective`` runs inside worker processes (local executor workers, ``python -m selftune.execution._child``,
and ``selftune worker`` processes); the driver pickles it by reference, so every worker imports this module.

The worker-side ledger: the only moment a worker learns that its result is stored is when
``Storage.finish_trial(..., COMPLETE, value)`` returns without raising (``optimize`` calls it for every
result; no callback of the worker's loop can be passed through an executor). So on its first call in a process
the objective wraps ``SQLStorage.finish_trial`` in that process: after the original returned for a COMPLETE
state, it appends ``number value pid`` (the value as ``repr``) to ``ledger-<pid>.txt`` in ``$KILL_LEDGER_DIR``
with one ``write`` (O_APPEND; a write that returned is in the page cache and survives SIGKILL of the process:
no fsync needed, the machine does not crash). The wrapper is installed only in processes that run the
objective, so the driver's own ``finish_trial`` calls (failing a dead worker's trial) are not wrapped.

Run as a script it is the driver::

    python kill_executor_objective.py STORAGE_URL STUDY BUDGET WORKERS RETRIES DRIVER_LEDGER

It opens the study (heartbeat interval 0.2 s, grace 1.5 s, as tests/kill_worker.py) and runs
``study.optimize(objective, trials=BUDGET, workers=WORKERS, retries=RETRIES)``. A callback (in the driver,
called once the driver read a finished trial from the storage) appends ``number STATE value`` to
DRIVER_LEDGER: what the driver saw stored must stay stored. Killed and started again, the same command
resumes the study to its budget.
"""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Any

LEDGER_ENV = "KILL_LEDGER_DIR"
HEARTBEAT_INTERVAL = 0.2
GRACE_PERIOD = 1.5

_installed = False


def _install_ledger() -> None:
    """Wrap ``SQLStorage.finish_trial`` in this process: log every COMPLETE result it stored."""
    global _installed
    _installed = True
    folder = os.environ.get(LEDGER_ENV)
    if not folder:
        return
    from selftune.storage.sql import SQLStorage
    from selftune.trial import TrialState

    pid = os.getpid()
    fd = os.open(os.path.join(folder, f"ledger-{pid}.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = SQLStorage.finish_trial

    def finish_trial(
        self: Any, study_id: int, number: int, state: Any, value: float | None = None, *args: Any, **kwargs: Any
    ) -> None:
        original(self, study_id, number, state, value, *args, **kwargs)
        if TrialState(state) is TrialState.COMPLETE:  # returned: the storage holds it (the worker may act on it)
            os.write(fd, f"{number} {value!r} {pid}\n".encode())

    SQLStorage.finish_trial = finish_trial  # type: ignore[method-assign]


def objective(trial: Any) -> float:
    if not _installed:
        _install_ledger()
    x = trial.float("x", -10.0, 10.0)
    time.sleep(random.uniform(0.010, 0.050))  # long enough that 50 kills (each waiting for a replacement) fit
    return x * x + random.random() * 1e-6  # values differ from trial to trial


def _driver(argv: list[str]) -> int:
    url, name, budget, workers, retries, ledger = argv
    import selftune

    study = selftune.create_study(
        name, storage=url, sampler=selftune.RandomSampler(),
        heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
    )
    fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def seen(_study: Any, record: Any) -> None:
        os.write(fd, f"{record.number} {record.state.value} {record.value!r}\n".encode())

    import kill_executor_objective  # this file by its module name: the workers import it, not __main__

    study.optimize(
        kill_executor_objective.objective, trials=int(budget), workers=int(workers), retries=int(retries),
        callbacks=[seen], progress=False,
    )
    study.close()
    study.storage.close()
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(_driver(sys.argv[1:]))
