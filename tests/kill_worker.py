"""A worker process for tests/test_kill.py: joins a study and optimizes it until the study-wide budget.

Usage: python kill_worker.py STORAGE_URL STUDY_NAME BUDGET LEDGER_PATH [--linger SECONDS] [--standby]

With ``--standby`` it does its imports, then waits for a line on stdin before it joins the study (it exits
at end of input): the test keeps a few started ahead so a replacement for a killed worker joins at once.

After every ``tell`` that returned a COMPLETE record, it appends ``number value`` (the value as ``repr``)
to its own ledger file and fsyncs it: the ledger holds only results this worker saw stored. The test
SIGKILLs workers at random moments; a result in a ledger must never be missing from the storage.

When the budget is reached the worker keeps its study handle open for ``--linger`` seconds: its heartbeat
thread keeps reaping, so the in-flight trials of workers killed near the end are marked FAILED too.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time

HEARTBEAT_INTERVAL = 0.2
GRACE_PERIOD = 1.5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("storage")
    ap.add_argument("study")
    ap.add_argument("budget", type=int)
    ap.add_argument("ledger")
    ap.add_argument("--linger", type=float, default=GRACE_PERIOD + 1.0)
    ap.add_argument("--standby", action="store_true", help="import, then wait for a line on stdin to start")
    args = ap.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s [{os.getpid()}] %(levelname)s %(message)s",
    )
    import selftune
    import selftune.storage.sql  # noqa: F401 - the imports a standby worker does ahead

    if args.standby:
        if args.storage.startswith("postgresql"):
            import psycopg  # noqa: F401
        if not sys.stdin.readline():  # end of input: not needed after all
            return 0

    rng = random.Random()
    study = selftune.create_study(
        args.study,
        storage=args.storage,
        sampler=selftune.RandomSampler(),
        heartbeat_interval=HEARTBEAT_INTERVAL,
        grace_period=GRACE_PERIOD,
    )
    fd = os.open(args.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def objective(trial: selftune.Trial) -> float:
        x = trial.float("x", -10.0, 10.0)
        time.sleep(rng.uniform(0.03, 0.09))  # so kills land mid-trial, and the run lasts long enough for them
        return x * x

    def ledger(_study: selftune.Study, record: selftune.TrialRecord) -> None:
        # called by optimize() right after tell() returned the stored record
        if record.state is selftune.TrialState.COMPLETE:
            os.write(fd, f"{record.number} {record.value!r}\n".encode())
            os.fsync(fd)

    study.optimize(objective, trials=args.budget, callbacks=[ledger], progress=False)
    time.sleep(args.linger)
    study.close()
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
