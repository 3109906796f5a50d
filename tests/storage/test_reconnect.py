"""PostgreSQL restarts: storage operations reconnect with backoff and lose nothing; the reaper waits.

Every test runs against a private PostgreSQL server (``tests/pg_server.py``) that it stops and starts; the
shared server on 5432 is never touched.

- operations issued while the server is down succeed once it is back within ``reconnect_timeout``, and a
  restart while the storage is idle costs nothing (stale pooled connections are dropped);
- past ``reconnect_timeout`` a clear error names the URL (password masked) and how long it tried;
- a write whose COMMIT outcome is unknown (the connection dies right after the server committed) is
  recognised when retried, not refused or doubled;
- after an outage a heartbeat thread reaps only once it has had a grace period of working storage;
- the issue's scenario: 6 worker processes (this file run as a script) optimise one study; the server is
  stopped for 10 s mid-run and started again; every worker carries on to the budget, every result a worker
  saw stored is stored, no trial FAILED, numbers are dense.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server (also as a script)

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

import selftune  # noqa: E402
from selftune.exceptions import InvalidParameterError, StorageURLError, TrialStateError  # noqa: E402
from selftune.storage.sql import SQLStorage  # noqa: E402
from selftune.trial import TrialState  # noqa: E402

pytestmark = pytest.mark.postgres

N_WORKERS = 6
BUDGET = 360
STOP_AT = 100  # the server stops once the study holds this many trials
OUTAGE = 10.0
INTERVAL, GRACE = 0.2, 1.5  # the workers' heartbeat interval and grace period, as in the kill test
DEADLINE = 50.0


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    from pg_server import private_pg

    yield from private_pg()


@pytest.fixture
def pg(server: Any) -> Iterator[Any]:
    """The private server, running (a test that fails with it stopped leaves it running for the next)."""
    if not server.running:
        server.start()
    yield server
    if not server.running:
        server.start()


def _later(seconds: float, action: Any) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def _study(storage: SQLStorage, name: str) -> int:
    return storage.create_study(name, "minimize", None).id


# -- (a) operations while the server is down --------------------------------------------------------------
def test_operations_while_down_succeed_once_back(pg: Any, caplog: pytest.LogCaptureFixture) -> None:
    storage = SQLStorage(pg.url, reconnect_timeout=30)
    sid = _study(storage, "down")
    done = [storage.start_trial(sid, "w", {"x": float(i)}).number for i in range(4)]
    for n in done[:2]:
        storage.report(sid, n, 0, n + 0.5)
        storage.finish_trial(sid, n, TrialState.COMPLETE, float(n))
    running = done[2:]

    caplog.set_level(logging.WARNING, logger="selftune")
    pg.stop()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def op(key: str, fn: Any, *args: Any, **kwargs: Any) -> threading.Thread:
        def target() -> None:
            try:
                results[key] = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    down_at = time.monotonic()
    threads = [
        op("finish", storage.finish_trial, sid, running[0], TrialState.COMPLETE, 7.0),
        op("report", storage.report, sid, running[1], 3, 1.25),
        op("attr", storage.set_trial_attr, sid, running[1], "note", "kept"),
        op("start", storage.start_trial, sid, "w2", {"x": 9.0}, claim=False),
        op("enqueue", storage.enqueue_trial, sid, {"x": 4.0}),
        op("heartbeat", storage.heartbeat, sid, [running[1]]),
        op("read", storage.read_trials, sid, 0),
    ]
    time.sleep(2.0)  # every operation has failed at least once and is backing off
    assert all(t.is_alive() for t in threads), "an operation returned while the server was down"
    pg.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors
    assert time.monotonic() - down_at < 10
    assert storage.reconnected_at is not None and storage.reconnected_at > down_at
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost the connection" in m for m in messages) and any("reconnected" in m for m in messages)

    fresh = SQLStorage(pg.url)
    try:
        by_number = {r.number: r for r in fresh.read_trials(sid, 0)[0]}
    finally:
        fresh.close()
    assert sorted(by_number) == list(range(6)), "a trial is missing or doubled"
    for n in done[:2]:  # stored before the outage
        assert by_number[n].state is TrialState.COMPLETE and by_number[n].value == float(n)
        assert by_number[n].intermediate == {0: n + 0.5} and by_number[n].params == {"x": float(n)}
    assert by_number[running[0]].state is TrialState.COMPLETE and by_number[running[0]].value == 7.0
    assert by_number[running[1]].intermediate == {3: 1.25}
    assert by_number[running[1]].user_attrs == {"note": "kept"}
    assert results["heartbeat"] == []
    started, enqueued = results["start"].number, results["enqueue"].number
    assert by_number[started].params == {"x": 9.0} and by_number[started].worker == "w2"
    assert by_number[enqueued].state is TrialState.WAITING and by_number[enqueued].fixed == {"x": 4.0}
    storage.close()


def test_restart_while_idle_costs_nothing(pg: Any) -> None:
    """Every pooled connection dies with the restart; the next operations just work."""
    storage = SQLStorage(pg.url, reconnect_timeout=30)
    sid = _study(storage, "idle")
    threads = [threading.Thread(target=storage.read_trials, args=(sid, 0)) for _ in range(4)]
    for t in threads:  # fill the pool with several connections
        t.start()
    for t in threads:
        t.join()
    pg.restart()
    start = time.monotonic()
    trial = storage.start_trial(sid, "w")
    storage.finish_trial(sid, trial.number, TrialState.COMPLETE, 1.0)
    assert [r.state for r in storage.read_trials(sid, 0)[0]] == [TrialState.COMPLETE]
    assert time.monotonic() - start < 2.0
    storage.close()


# -- (b) past the timeout: a clear error -----------------------------------------------------------------
def test_past_the_timeout_a_clear_error(pg: Any) -> None:
    url = pg.url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores the password
    storage = SQLStorage(url, reconnect_timeout=1.5)
    sid = _study(storage, "timeout")
    pg.stop()
    start = time.monotonic()
    with pytest.raises(StorageURLError) as err:
        storage.start_trial(sid, "w")
    took = time.monotonic() - start
    assert 1.5 <= took < 4.0, took
    text = str(err.value)
    assert "hunter2" not in text and f"postgresql+psycopg://postgres:***@127.0.0.1:{pg.port}/postgres" in text
    assert "could not reconnect" in text and "tried for 1." in text and "SELFTUNE_RECONNECT_TIMEOUT" in text

    # a storage that never connected fails at once: its URL is more likely wrong than restarting
    start = time.monotonic()
    with pytest.raises(StorageURLError, match="cannot connect"):
        SQLStorage(url, reconnect_timeout=30)
    assert time.monotonic() - start < 1.5
    pg.start()
    assert storage.read_trials(sid, 0)[0] == []  # the same storage works again
    storage.close()


def test_a_worker_started_during_a_restart_waits_for_the_server(pg: Any) -> None:
    """A worker process its driver starts while the server restarts (found by the kill test: the child died
    with a traceback at its first connection) opens its storage with ``wait_connect``: it waits the outage out
    like a lost connection, then joins the study; a user's own first connection still fails at once."""
    from selftune.storage import get_storage

    storage = SQLStorage(pg.url)
    sid = _study(storage, "late-worker")
    storage.close()
    pg.stop()
    with pytest.raises(StorageURLError, match="cannot connect"):
        get_storage(pg.url)
    back = _later(2.0, pg.start)
    start = time.monotonic()
    worker = get_storage(pg.url, wait_connect=True)
    took = time.monotonic() - start
    back.join()
    assert took >= 1.5, took
    assert isinstance(worker, SQLStorage)
    assert worker.read_trials(sid, 0)[0] == []  # the study it was started for
    worker.close()
    # the wait is bounded by reconnect_timeout, with the usual error
    pg.stop()
    with pytest.raises(StorageURLError, match="could not reconnect"):
        SQLStorage(pg.url, reconnect_timeout=1.0, wait_connect=True)


def test_reconnect_timeout_setting(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFTUNE_RECONNECT_TIMEOUT", "2.5")
    storage = SQLStorage(pg.url)
    assert storage.reconnect_timeout == 2.5
    storage.close()
    assert SQLStorage(pg.url, reconnect_timeout=0).reconnect_timeout == 0.0
    monkeypatch.delenv("SELFTUNE_RECONNECT_TIMEOUT")
    assert SQLStorage(pg.url).reconnect_timeout == 60.0
    for bad in ("soon", "-1", "inf"):
        monkeypatch.setenv("SELFTUNE_RECONNECT_TIMEOUT", bad)
        with pytest.raises(InvalidParameterError, match="SELFTUNE_RECONNECT_TIMEOUT"):
            SQLStorage(pg.url)


# -- writes whose COMMIT outcome is unknown --------------------------------------------------------------
class _LoseAfterCommit:
    """The connection dies right after the server committed (the client never hears back): the one moment
    where a retry finds its own write. Armed per call; the server and the commit are real."""

    def __init__(self, storage: SQLStorage) -> None:
        import psycopg

        self.armed = False
        self.hits = 0
        dialect = storage._engine.dialect
        original = dialect.do_commit

        def do_commit(dbapi_connection: Any) -> None:
            original(dbapi_connection)
            if self.armed:
                self.armed = False
                self.hits += 1
                dbapi_connection.driver_connection.close()  # the psycopg connection under the pool's wrapper
                raise psycopg.OperationalError("server closed the connection unexpectedly (test)")

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        # PostgreSQL's hot paths (start, report, finish) are single autocommit statements: the statement is the
        # commit, so the connection dies right after it ran
        one_shot = storage._tx_one

        @contextlib.contextmanager
        def tx_one(call: Any) -> Iterator[Any]:
            with one_shot(call) as conn:
                yield conn
                if self.armed:
                    self.armed = False
                    self.hits += 1
                    conn.connection.driver_connection.close()
                    orig = psycopg.OperationalError("server closed the connection unexpectedly (test)")
                    raise sa.exc.OperationalError("(one-shot statement)", {}, orig)

        storage._tx_one = tx_one  # type: ignore[method-assign]

    def __call__(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.armed = True
        hits = self.hits
        out = fn(*args, **kwargs)
        assert self.hits == hits + 1, "the commit was not cut"
        return out


def test_unknown_commit_outcome_is_recognised(pg: Any) -> None:
    storage = SQLStorage(pg.url, reconnect_timeout=10)
    cut = _LoseAfterCommit(storage)
    info = cut(storage.create_study, "ambiguous", "minimize", None)
    assert storage.get_study("ambiguous").id == info.id
    sid = info.id

    first = cut(storage.start_trial, sid, "w", {"x": 1.0})
    second = cut(storage.start_trial, sid, "w", {"x": 2.0})
    assert (first.number, second.number) == (0, 1) and second.params == {"x": 2.0}
    cut(storage.report, sid, 0, 0, 0.5)
    cut(storage.set_trial_attr, sid, 0, "a", 1)
    cut(storage.finish_trial, sid, 0, TrialState.COMPLETE, 3.0)
    cut(storage.finish_trial, sid, 1, TrialState.FAILED, None, "boom")
    queued = cut(storage.enqueue_trial, sid, {"x": 5.0})
    claimed = cut(storage.start_trial, sid, "w")  # claims the enqueued trial
    assert claimed.number == queued.number == 2 and claimed.fixed == {"x": 5.0}
    cut(storage.set_trial_params, sid, 2, {"x": 5.0})
    cut(storage.pause_trial, sid, 2)
    resumed = cut(storage.resume_trial, sid, 2, "w")
    assert resumed.state is TrialState.RUNNING
    retry = cut(storage.retry_trial, sid, 1, 3)
    assert retry is not None and retry.number == 3
    assert storage.retry_trial(sid, 1, 3) is None  # once only, as ever

    records = {r.number: r for r in storage.read_trials(sid, 0)[0]}
    assert sorted(records) == [0, 1, 2, 3], "a trial was doubled"
    assert records[0].state is TrialState.COMPLETE and records[0].value == 3.0
    assert records[0].intermediate == {0: 0.5} and records[0].user_attrs == {"a": 1}
    assert records[1].state is TrialState.FAILED and records[1].reason == "boom"
    assert records[2].params == {"x": 5.0} and records[2].state is TrialState.RUNNING
    assert records[3].state is TrialState.WAITING

    # a real second attempt (not a lost commit) is refused as ever
    with pytest.raises(TrialStateError, match="already"):
        storage.finish_trial(sid, 0, TrialState.COMPLETE, 3.0)
    storage.report(sid, 2, 1, 1.0)
    with pytest.raises(TrialStateError, match="reported already"):
        storage.report(sid, 2, 1, 1.0)
    cut(storage.delete_study, "ambiguous")
    assert "ambiguous" not in [s.info.name for s in storage.list_studies()]
    storage.close()


# -- the reaper waits after an outage ---------------------------------------------------------------------
def test_reaper_waits_a_grace_period_after_reconnecting(pg: Any) -> None:
    """A trial whose worker never beats again (as one slow to reconnect) is reaped, but only after the reaping
    process has had ``grace`` seconds of working storage since it reconnected, never at once."""
    from selftune._heartbeat import Heartbeat

    grace = 1.0
    storage = SQLStorage(pg.url, reconnect_timeout=30)
    sid = _study(storage, "settle")
    reaped_at: list[float] = []
    reap = storage.reap

    def timed_reap(study_id: int, g: float) -> list[int]:
        out = reap(study_id, g)
        if out:
            reaped_at.append(time.monotonic())
        return out

    storage.reap = timed_reap  # type: ignore[method-assign]
    beat = Heartbeat(storage, sid, 0.1, grace, on_lost=lambda n: None)
    mine = storage.start_trial(sid, "reaper-process").number
    beat.add(mine)  # this process's own live trial
    time.sleep(0.5)
    other = storage.start_trial(sid, "silent-process").number  # nobody beats it
    pg.stop()
    time.sleep(grace + 1.0)  # longer than the grace period: every heartbeat is stale now
    pg.start()
    deadline = time.monotonic() + 15
    while not reaped_at and time.monotonic() < deadline:
        time.sleep(0.05)
    beat.stop()
    assert reaped_at, "the silent trial was never reaped"
    assert storage.reconnected_at is not None
    assert reaped_at[0] - storage.reconnected_at >= grace + storage.backoff_max - 0.05
    states = {r.number: r.state for r in storage.read_trials(sid, 0)[0]}
    assert states == {mine: TrialState.RUNNING, other: TrialState.FAILED}
    storage.close()


def test_a_new_heartbeat_reaps_after_a_grace_period() -> None:
    """A process's first round does not reap: it has not yet seen the storage work for a grace period."""
    from selftune._heartbeat import Heartbeat
    from selftune.storage import MemoryStorage

    grace = 1.0
    storage = MemoryStorage()
    sid = storage.create_study("first", "minimize", None).id
    dead = storage.start_trial(sid, "dead").number
    time.sleep(grace + 0.1)
    beat = Heartbeat(storage, sid, 0.1, grace, on_lost=lambda n: None)
    first = time.monotonic()
    assert beat.tick() == []  # stale for longer than grace, but this process just started
    reaped: list[int] = []
    while not reaped and time.monotonic() - first < 5:
        time.sleep(0.1)
        reaped = beat.tick()
    assert reaped == [dead] and time.monotonic() - first >= grace


# -- the scenario: worker processes through a 10 s restart ----------------------------------------
def _worker(argv: list[str]) -> int:
    """A worker process: optimise the study to the budget; after each ``tell`` that returned a COMPLETE
    record, append ``number value time`` to the ledger and fsync it."""
    ap = argparse.ArgumentParser()
    ap.add_argument("storage")
    ap.add_argument("study")
    ap.add_argument("budget", type=int)
    ap.add_argument("ledger")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    rng = random.Random()
    study = selftune.create_study(
        args.study, storage=args.storage, sampler=selftune.RandomSampler(),
        heartbeat_interval=INTERVAL, grace_period=GRACE,
    )
    fd = os.open(args.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def objective(trial: selftune.Trial) -> float:
        x = trial.float("x", -10.0, 10.0)
        time.sleep(rng.uniform(0.02, 0.06))
        trial.report(x, 0)
        return x * x

    def ledger(_study: selftune.Study, record: selftune.TrialRecord) -> None:
        if record.state is selftune.TrialState.COMPLETE:
            os.write(fd, f"{record.number} {record.value!r} {time.time()!r}\n".encode())
            os.fsync(fd)

    study.optimize(objective, trials=args.budget, callbacks=[ledger], progress=False)
    time.sleep(GRACE + 0.5)  # keep reaping a while, as a lingering worker does
    study.close()
    os.close(fd)
    return 0


@pytest.mark.slow
def test_workers_carry_on_through_a_10s_restart(pg: Any, tmp_path: Path) -> None:
    name = "restart"
    monitor = SQLStorage(pg.url, reconnect_timeout=30)
    sid = _study(monitor, name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "SELFTUNE_RECONNECT_TIMEOUT": "40"}
    procs, ledgers, stderrs = [], [], []
    for i in range(N_WORKERS):
        ledgers.append(tmp_path / f"ledger_{i}.txt")
        stderrs.append(tmp_path / f"stderr_{i}.txt")
        with open(stderrs[i], "wb") as err:
            procs.append(subprocess.Popen(
                [sys.executable, __file__, pg.url, name, str(BUDGET), str(ledgers[i])],
                stdout=subprocess.DEVNULL, stderr=err, env=env,
            ))
    start = time.monotonic()
    stopped_at = restarted_at = 0.0
    try:
        while True:  # the server stops mid-run, once every worker has told results
            assert time.monotonic() - start < DEADLINE, "the workers did not get going"
            assert all(p.poll() is None for p in procs), "a worker exited before the outage"
            if len(monitor.read_trials(sid, 0)[0]) >= STOP_AT and all(
                p.exists() and p.stat().st_size > 0 for p in ledgers
            ):
                break
            time.sleep(0.1)
        pg.stop()
        stopped_at = time.time()
        time.sleep(OUTAGE)
        pg.start()
        restarted_at = time.time()
        for p in procs:
            p.wait(timeout=max(1.0, DEADLINE - (time.monotonic() - start)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    took = time.monotonic() - start

    for i, p in enumerate(procs):
        err = stderrs[i].read_text()
        assert p.returncode == 0, f"worker {i} exited with {p.returncode}:\n{err}"
        assert "Traceback" not in err and "heartbeat failed" not in err, f"worker {i}:\n{err}"
        assert "lost the connection" in err and "reconnected" in err, f"worker {i} missed the outage:\n{err}"
    records = monitor.read_trials(sid, 0)[0]
    monitor.close()
    by_number = {r.number: r for r in records}
    assert [r.number for r in records] == list(range(len(records))), "trial numbers are not 0..N-1"
    assert BUDGET <= len(records) <= BUDGET + N_WORKERS, len(records)
    states = {s: sum(r.state is s for r in records) for s in TrialState}
    assert states[TrialState.FAILED] == 0, [r for r in records if r.state is TrialState.FAILED]
    assert states[TrialState.COMPLETE] == len(records), states

    seen: dict[int, int] = {}
    for i, path in enumerate(ledgers):
        lines = path.read_text().splitlines()
        told_after = 0
        for line in lines:
            number, value, at = line.split()
            assert int(number) not in seen, f"trial {number} is in the ledgers of workers {seen[int(number)]} and {i}"
            seen[int(number)] = i
            r = by_number.get(int(number))
            assert r is not None, f"trial {number} told by worker {i} is not stored"
            assert r.state is TrialState.COMPLETE and r.value == float(value), (r, value)
            assert r.worker is not None and int(r.worker.rsplit(":", 2)[1]) == procs[i].pid
            told_after += float(at) > restarted_at
        assert told_after > 0, f"worker {i} told nothing after the restart"
    assert len(seen) == len(records)  # every stored result was told by the worker that ran it
    print(
        f"\nrestart test: {len(records)} trials, outage {restarted_at - stopped_at:.1f} s, "
        f"run {took:.1f} s, {N_WORKERS} workers"
    )


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
