"""Kill tests for the executors: ``study.optimize(..., workers=k)`` and ``selftune worker`` under SIGKILL.

The main test runs on a private PostgreSQL server (``tests/pg_server.py``). A driver process
(``tests/kill_executor_objective.py`` run as a script) runs ``study.optimize(objective, trials=BUDGET,
workers=8, retries=1)``; the objective takes 10-50 ms. While it runs, the test

- SIGKILLs at least 50 local worker processes (``python -m selftune.execution._child``, found as the driver's
  children in ``/proc``), at random moments (spread over the run), preferring one the storage shows with a trial
  in flight, and only while another of the driver's workers is in its optimize loop (a replacement takes 0.5
  CPU-s to start, seconds on 2 busy cores); the driver fails a dead worker's trial at once and starts a
  replacement;
- SIGKILLs the driver 3 times, each time together with one of its workers that has a trial in flight (killed
  first, so the driver cannot fail it: the heartbeat reaper of another process must), and starts the same
  command again at once: it resumes the study to its budget. Its other workers are orphans: their stdin
  closes, they finish the trial in hand and exit (checked: none stays alive). The workers still starting
  (no objective call yet) are SIGKILLed with the driver: an orphan whose driver died before its optimize
  loop started runs on to the budget instead of stopping (a bug, shown by
  ``test_orphans_of_a_driver_killed_while_they_start``), and on 2 busy cores some worker is nearly always
  starting;
- stops the private PostgreSQL server once for 5-8 s mid-run (no kills then, nor for 3 s after): workers and
  driver reconnect with backoff and carry on. The workers still starting are SIGKILLed as it stops: a
  process whose storage never connected fails at once, by design (its URL is more likely wrong); the driver,
  blocked on the storage meanwhile, replaces them once the server is back.

``retries=1`` is on: a trial lost to a killed worker is retried once as a new trial (a retried failure does
not count against the budget; a retry that is lost again stays FAILED).

**Ledgers.** A result is "completed" for a worker when ``Storage.finish_trial(..., COMPLETE, value)``
returned in it: ``optimize`` in the worker calls it, and no callback of the worker's own loop can be passed
through an executor (``callbacks`` run in the driver). So the objective, on its first call in a worker
process, wraps ``SQLStorage.finish_trial`` there and appends ``number value pid`` to that process's own
ledger after the original returned (see ``kill_executor_objective.py``). Those ledgers are each worker's own
record of what it was told is stored, whatever happens to the driver. The driver keeps a second ledger from
its ``callbacks`` (called once it read a finished trial from the storage): what any process saw stored must
stay stored.

**Pass.**

- every ledger entry is stored COMPLETE with the same value, by the same worker pid, and is in one ledger only;
  every driver-ledger entry is stored with the state and value the driver saw;
- conversely every stored COMPLETE result is in its worker's ledger, unless it is the last trial of a worker
  SIGKILLed at most 2 s before it was stored (the kill can fall between the COMMIT and the ledger write, and
  PostgreSQL runs a one-statement finish that a client sent just before it died): a result stored behind a
  worker's back would show;
- trial numbers are exactly 0..N-1; the budget is met exactly: trials started (COMPLETE, FAILED) less the
  retried failures == BUDGET; nothing is left RUNNING or WAITING;
- every non-COMPLETE trial is FAILED and belongs to a SIGKILLed worker (no live worker's trial is reaped), a
  killed worker has at most one, it started before the kill, and it FAILED within grace + 5 s of the kill
  (the driver's "worker died" is immediate; the reaper's "heartbeat lost" comes after the 1.5 s grace period,
  never before it). A worker killed with its driver leaves no process that could reap its trial until the
  next driver runs: its 5 s count from the kill or from the moment the next driver started a worker (its
  heartbeat thread runs by then), whichever is later;
- every retryable failure is retried exactly once unless it was itself the retry, with the parameters it had;
- every orphaned worker exits within ``ORPHAN_EXIT`` s of its driver's death, with all its trials COMPLETE;
- the last driver and every ``selftune worker`` exit 0; no traceback in any process's stderr.

A smaller test adds ``selftune worker`` processes (the CLI, one process each) joining the same study alongside
4 executor workers (budget 1,000); 2 of them are SIGKILLed and replaced (their trials are reaped by the
others' heartbeat threads: they get the driver's heartbeat interval and grace period through
``--heartbeat-interval`` and ``--grace-period``, as every process of a study should: with the defaults, 10 s
between beats, the driver's 1.5 s grace would reap a live CLI worker's trial whenever its process stalled for
1.5 s, which CI saw on a loaded machine); the driver is killed once; no server restart. Ray workers are covered by ``tests/execution/test_ray.py``.

Runtimes on 2 cores shared with other jobs (load 7-15): the main test 37-100 s (2,000 trials, 52-56 worker
kills), the smaller one 10-30 s. Most of it is starting worker processes (0.5 CPU-s of imports each, about
100 of them).

The issue's size is the default; ``SELFTUNE_KILL_EXEC_TRIALS`` sets another budget (e.g. for a quick look).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import selftune
from selftune.storage._base import HEARTBEAT_LOST, RETRIED_AS_KEY, RETRY_KEY, WORKER_DIED
from selftune.storage._schema import studies as studies_table
from selftune.storage._schema import trials as trials_table
from selftune.trial import TrialRecord, TrialState

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # pg_server and kill_executor_objective, however pytest imports this file

from kill_executor_objective import GRACE_PERIOD as GRACE  # noqa: E402
from kill_executor_objective import HEARTBEAT_INTERVAL, LEDGER_ENV  # noqa: E402
from ledgers import ledger_lines  # noqa: E402

OBJECTIVE = HERE / "kill_executor_objective.py"
CHILD_MODULE = "selftune.execution._child"
BUDGET = int(os.environ.get("SELFTUNE_KILL_EXEC_TRIALS", "2000"))
RETRIES = 1
END_QUIET = 150  # no kills once the study holds BUDGET - END_QUIET trials: the end of the run stays clean
QUIET_AFTER_OUTAGE = 3.0
ORPHAN_EXIT = 10.0  # an orphaned worker finishes its trial (a few ms) and closes its study
REAP_SLACK = 5.0  # a killed worker's trial is FAILED within GRACE + REAP_SLACK s of the kill
POLL = 0.03
DEADLINE = 300.0  # a hang detector


@dataclass(frozen=True)
class Plan:
    budget: int
    workers: int  # the driver's local workers
    worker_kills: int  # SIGKILLs of the driver's workers, at least (the ones killed with a driver not counted)
    driver_kills: int
    pg_restart: bool
    cli_workers: int = 0  # `selftune worker` processes joining the study alongside
    cli_kills: int = 0
    extra_kills: int = 6  # kill up to this many more workers than asked (the target is a minimum)


@dataclass
class Proc:
    pid: int
    kind: str  # "driver", "worker" (a driver's local worker) or "cli" (`selftune worker`)
    popen: subprocess.Popen[bytes] | None = None  # drivers and CLI workers are this test's children
    stderr: Path | None = None
    driver: int | None = None  # a worker's driver run
    killed_at: float | None = None
    how: str = ""  # a killed worker: "alone", "with-driver" or "outage" (still starting when the server stopped)
    orphaned_at: float | None = None  # its driver was killed then
    up_at: float | None = None  # a driver: when its first worker was seen (its heartbeat thread runs by then)
    gone_at: float | None = None


def _state(pid: int) -> str | None:
    """The process's state letter from /proc, None once it is gone (a zombie counts as gone: an orphan's
    new parent here may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if state in ("Z", "X") else state


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(p) for p in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return CHILD_MODULE.encode() in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pid_of(worker: str | None) -> int:
    assert worker is not None
    return int(worker.split(":")[1])


class KillRun:
    """The run: starts the driver (and CLI workers), kills them and the server as the plan says, and keeps
    everything the checks need."""

    def __init__(self, plan: Plan, pg: Any, tmp: Path, name: str, seed: int) -> None:
        self.plan, self.pg, self.tmp, self.name = plan, pg, tmp, name
        self.rng = random.Random(seed)
        self.ledgers = tmp / "ledgers"
        self.ledgers.mkdir()
        (tmp / "tmp").mkdir()
        self.env = {
            **os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", LEDGER_ENV: str(self.ledgers),
            "TMPDIR": str(tmp / "tmp"),  # a killed driver leaves its workers' report folder here
        }
        self.procs: dict[int, Proc] = {}
        self.drivers: list[Proc] = []
        self.driver: Proc | None = None
        self.clis: list[Proc] = []
        self.running: dict[int, int] = {}  # trial number -> worker pid, from the last poll
        self.outages: list[tuple[float, float]] = []
        self.engine = sa.create_engine(pg.url, pool_pre_ping=True)
        with self.engine.connect() as conn:
            self.study_id = conn.execute(
                sa.select(studies_table.c.id).where(studies_table.c.name == name)
            ).scalar_one()
        self.started = self.ended = 0.0
        self.timeline: list[str] = []  # what happened when, printed with the stats

    def note(self, what: str) -> None:
        self.timeline.append(f"{time.time() - self.started:7.2f} {what}")

    # -- processes ------------------------------------------------------------------------------------------
    def start_driver(self) -> None:
        k = len(self.drivers)
        err = self.tmp / f"driver-{k}.err"
        cmd = [
            sys.executable, str(OBJECTIVE), self.pg.url, self.name, str(self.plan.budget), str(self.plan.workers),
            str(RETRIES), str(self.tmp / f"driver-{k}.ledger"),
        ]
        with open(err, "wb") as f:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, env=self.env)
        self.driver = Proc(popen.pid, "driver", popen, err, driver=k)
        self.note(f"driver {k} started: pid {popen.pid}")
        self.drivers.append(self.driver)
        self.procs[popen.pid] = self.driver

    def start_cli(self) -> None:
        k = len(self.clis)
        err = self.tmp / f"cli-{k}.err"
        cmd = [
            sys.executable, "-m", "selftune", "worker", self.name, "--storage", self.pg.url,
            "--objective", "kill_executor_objective:objective", "--trials", str(self.plan.budget), "--no-progress",
            "--heartbeat-interval", str(HEARTBEAT_INTERVAL), "--grace-period", str(GRACE),
        ]
        with open(err, "wb") as f:
            popen = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, env=self.env, cwd=HERE
            )
        proc = Proc(popen.pid, "cli", popen, err)
        self.note(f"selftune worker {k} started: pid {popen.pid}")
        self.clis.append(proc)
        self.procs[popen.pid] = proc

    def workers(self) -> list[Proc]:
        """The live local workers of the current driver (noting new ones)."""
        assert self.driver is not None
        out = []
        for pid in _children(self.driver.pid):
            proc = self.procs.get(pid)
            if proc is None:
                if not _is_worker(pid):
                    continue
                proc = self.procs[pid] = Proc(pid, "worker", driver=self.driver.driver)
                if self.driver.up_at is None:
                    self.driver.up_at = time.time()
            if proc.kind == "worker" and proc.killed_at is None and _state(pid) is not None:
                out.append(proc)
        return out

    def looping(self, proc: Proc) -> bool:
        """It ran its objective (the ledger is opened on the first call): it is in its optimize loop."""
        return (self.ledgers / f"ledger-{proc.pid}.txt").exists()

    def kill(self, proc: Proc, how: str = "alone") -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.killed_at = time.time()
        proc.how = how
        busy = [n for n, pid in self.running.items() if pid == proc.pid]
        self.note(f"SIGKILL {proc.kind} {proc.pid} ({how}){f' running trial {busy}' if busy else ''}")
        if proc.popen is not None:
            proc.popen.wait()

    def kill_driver(self) -> None:
        assert self.driver is not None
        workers = self.workers()
        busy = [w for w in workers if w.pid in self.running.values() and self.looping(w)]
        if busy:  # killed first: the driver cannot fail its trial, a heartbeat reaper must
            self.kill(self.rng.choice(busy), "with-driver")
        for w in workers:  # see the module docstring: orphaned while starting, it would not stop
            if not self.looping(w):
                self.kill(w, "with-driver")
        self.kill(self.driver)
        for w in workers:
            if w.killed_at is None:
                w.orphaned_at = self.driver.killed_at
        self.start_driver()

    def kill_cli(self) -> bool:
        """Kill a `selftune worker` in its loop (one with a trial in flight if any) and start another."""
        live = [c for c in self.clis if c.killed_at is None and c.popen is not None and c.popen.poll() is None]
        looping = [c for c in live if self.looping(c)]
        busy = [c for c in looping if c.pid in self.running.values()]
        if not looping:
            return False
        self.kill(self.rng.choice(busy or looping))
        self.start_cli()
        return True

    # -- the storage ----------------------------------------------------------------------------------------
    def poll_db(self) -> int:
        """Trials in the study; notes which worker runs which trial."""
        t = trials_table.c
        with self.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).where(t.study_id == self.study_id)).scalar_one()
            rows = conn.execute(
                sa.select(t.number, t.worker).where(t.study_id == self.study_id, t.state == TrialState.RUNNING.value)
            ).all()
        self.running = {int(number): _pid_of(worker) for number, worker in rows}
        return int(n)

    def heartbeats(self) -> dict[int, float | None]:
        t = trials_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.number, t.heartbeat_at).where(t.study_id == self.study_id)).all()
        return {int(n): hb for n, hb in rows}

    # -- the run --------------------------------------------------------------------------------------------
    def run(self) -> None:
        plan, rng = self.plan, self.rng
        # a kill leaves another worker in its optimize loop; a replacement costs 0.5 CPU-s of imports (seconds on
        # 2 busy cores), so a kill waits for progress: the rate of kills follows the rate workers start at
        # (with `selftune worker` processes alongside, the study goes on without the driver's workers)
        min_looping = 0 if plan.cli_workers else 1
        # kills spread over the run: a kill every `spacing / 2` trials on average, so they all fit before the end
        # even though a kill often waits for a replacement to start
        stop_kills_at = plan.budget - END_QUIET
        # (planned to take about a third of the run: on 2 busy cores kills often wait for replacements)
        spacing = max(6, int(0.7 * (stop_kills_at - 100) / (plan.worker_kills + plan.extra_kills)))
        # the driver kills and the outage at spread-out points of the budget, apart from each other
        events: list[tuple[int, str]] = []
        slots = plan.driver_kills + (1 if plan.pg_restart else 0)
        kinds = ["driver"] * plan.driver_kills
        if plan.pg_restart:
            kinds.insert(len(kinds) // 2 + 1, "outage")
        span = int(0.6 * (stop_kills_at - 100))  # early enough that a kill waiting for a busy worker still fits
        for i, kind in enumerate(kinds):
            lo = 100 + span * i // slots
            events.append((lo + rng.randint(span // (4 * slots), span * 3 // (4 * slots)), kind))
        cli_kills_at = sorted(rng.randint(100, stop_kills_at) for _ in range(plan.cli_kills))
        next_kill = rng.randint(10, 30)
        down_until: float | None = None
        quiet_until = last_note = 0.0
        due_since: float | None = None

        self.started = time.time()
        self.start_driver()
        for _ in range(plan.cli_workers):
            self.start_cli()
        try:
            while True:
                now = time.time()
                if now - self.started > DEADLINE:
                    pytest.fail(f"the kill run did not finish within {DEADLINE} s")
                self.watch_orphans(now)
                if down_until is not None:
                    if now >= down_until:
                        self.pg.start()
                        self.note("the server is up")
                        self.outages[-1] = (self.outages[-1][0], time.time())
                        self.engine.dispose()  # connections to the old server are dead
                        down_until = None
                        quiet_until = time.time() + QUIET_AFTER_OUTAGE
                    time.sleep(POLL)
                    continue
                assert self.driver is not None and self.driver.popen is not None
                if self.driver.popen.poll() is not None:  # the last driver ended (we restart killed ones)
                    if all(c.popen is not None and c.popen.poll() is not None for c in self.clis):
                        break
                    time.sleep(POLL)
                    continue
                n = self.poll_db()
                workers = self.workers()
                looping = [w for w in workers if self.looping(w)]
                if now - last_note >= 1.0:
                    last_note = now
                    self.note(f"n={n} workers={len(workers)} looping={len(looping)} running={len(self.running)}")
                if n >= stop_kills_at or now < quiet_until:
                    time.sleep(POLL)
                    continue
                if events and n >= events[0][0]:
                    if events[0][1] == "driver":
                        # with a worker in flight, to be killed with it (waiting a little for one)
                        due_since = due_since or now
                        if any(w.pid in self.running.values() for w in looping) or now - due_since > 3.0:
                            events.pop(0)
                            due_since = None
                            self.kill_driver()
                    else:
                        events.pop(0)
                        # a process whose storage never connected fails at once (by design: its URL is more
                        # likely wrong): the workers still starting are killed with the server (the driver,
                        # blocked on the storage meanwhile, replaces them once it is back)
                        for w in workers:
                            if not self.looping(w):
                                self.kill(w, "outage")
                        self.pg.stop()
                        self.note("the server is down")
                        down_until = time.time() + rng.uniform(5.0, 8.0)
                        self.outages.append((time.time(), down_until))
                elif cli_kills_at and n >= cli_kills_at[0] and self.kill_cli():
                    cli_kills_at.pop(0)
                elif n >= next_kill and len(looping) > min_looping and self.kills("alone") < plan.worker_kills + plan.extra_kills:
                    busy = [w for w in looping if w.pid in self.running.values()]
                    self.kill(rng.choice(busy or looping))
                    next_kill = n + rng.randint(3, spacing)
                time.sleep(POLL)
        finally:
            self.ended = time.time()
            if down_until is not None:
                self.pg.start()
            self.cleanup()

    def kills(self, how: str) -> int:
        return sum(p.kind == "worker" and p.how == how for p in self.procs.values())

    def watch_orphans(self, now: float) -> None:
        for p in self.procs.values():
            if p.orphaned_at is not None and p.gone_at is None and _state(p.pid) is None:
                p.gone_at = now

    def cleanup(self) -> None:
        """Kill whatever of ours still runs (a failed run), so nothing outlives the test."""
        for p in self.procs.values():
            if p.popen is not None:
                if p.popen.poll() is None:
                    p.popen.kill()
                    p.popen.wait()
            elif _state(p.pid) is not None and _is_worker(p.pid):
                if p.orphaned_at is not None and p.gone_at is None:
                    continue  # judged by the checks first (they wait a while for it)
                os.kill(p.pid, signal.SIGKILL)

    def wait_orphans(self) -> list[Proc]:
        """Wait for the orphans to exit (at most ORPHAN_EXIT s after their driver died); the ones that did not."""
        orphans = [p for p in self.procs.values() if p.orphaned_at is not None]
        while True:
            now = time.time()
            self.watch_orphans(now)
            late = [p for p in orphans if p.gone_at is None]
            if not late or all(now - p.orphaned_at > ORPHAN_EXIT for p in late):  # type: ignore[operator]
                for p in late:
                    if _is_worker(p.pid):
                        os.kill(p.pid, signal.SIGKILL)
                return late
            time.sleep(0.1)


# -- the checks ---------------------------------------------------------------------------------------------------
def _worker_ledgers(folder: Path) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("ledger-*.txt")):
        text = path.read_text()
        assert not text or text.endswith("\n"), f"{path.name}: a torn last line: {text[-80:]!r}"
        pid = int(path.stem.split("-")[1])
        entries = []
        for line in text.splitlines():
            number, value, who = line.split()
            assert int(who) == pid
            entries.append((int(number), float(value)))
        out[pid] = entries
    return out


def _driver_ledger(path: Path) -> list[tuple[int, TrialState, float | None]]:
    return [
        (int(number), TrialState(state), None if value == "None" else float(value))
        for number, state, value in ledger_lines(path)
    ]


def _check(run: KillRun, late_orphans: list[Proc]) -> dict[str, Any]:
    plan = run.plan
    procs = run.procs
    killed = {p.pid: p for p in procs.values() if p.kind != "driver" and p.killed_at is not None}
    last_kill = max((p.killed_at for p in killed.values() if p.killed_at is not None), default=0.0)
    time.sleep(max(0.0, last_kill + GRACE + 0.5 - time.time()))  # the last killed trials are reaped by now

    # the processes: the last driver and every CLI worker not killed exit 0, no traceback anywhere
    last = run.drivers[-1]
    assert last.popen is not None and last.popen.returncode == 0, (
        f"the last driver exited with {last.popen and last.popen.returncode}:\n{last.stderr and last.stderr.read_text()[-5000:]}"
    )
    for p in [*run.drivers, *run.clis]:
        assert p.popen is not None and p.stderr is not None
        if p.killed_at is None:
            assert p.popen.returncode == 0, f"{p.kind} {p.pid} exited with {p.popen.returncode}:\n{p.stderr.read_text()[-5000:]}"
        else:
            assert p.popen.returncode == -signal.SIGKILL
        err = p.stderr.read_text()
        assert "Traceback" not in err, f"{p.stderr.name}:\n{err[-5000:]}"
    assert not late_orphans, [
        f"orphan {p.pid} of driver {p.driver} still alive {ORPHAN_EXIT} s after its driver died" for p in late_orphans
    ]
    assert run.kills("alone") >= plan.worker_kills, f"only {run.kills('alone')} workers were killed"
    assert sum(d.killed_at is not None for d in run.drivers) == plan.driver_kills
    assert sum(c.killed_at is not None for c in run.clis) == plan.cli_kills
    assert len(run.outages) == (1 if plan.pg_restart else 0)

    study = selftune.load_study(run.name, storage=run.pg.url)
    try:
        records = study.trials
    finally:
        study.close()
        study.storage.close()
    by_number = {r.number: r for r in records}
    heartbeats = run.heartbeats()

    # dense, unique numbers; nothing left RUNNING or WAITING; the budget met exactly
    assert [r.number for r in records] == list(range(len(records))), "trial numbers are not exactly 0..N-1"
    states = {s.value: sum(r.state is s for r in records) for s in TrialState}
    assert states["RUNNING"] == 0, [r for r in records if r.state is TrialState.RUNNING]
    assert states["WAITING"] == 0, [r for r in records if r.state is TrialState.WAITING]
    assert states["COMPLETE"] + states["FAILED"] == len(records), states
    retried = [r for r in records if RETRIED_AS_KEY in r.system_attrs]
    assert len(records) - len(retried) == plan.budget, (
        f"{len(records)} trials, {len(retried)} retried: the budget {plan.budget} is not met exactly"
    )

    # every result a worker was told is stored is stored, COMPLETE, with the same value, by it, once
    ledgers = _worker_ledgers(run.ledgers)
    owner: dict[int, int] = {}
    for pid, entries in ledgers.items():
        for number, value in entries:
            assert number not in owner, f"trial {number} is in the ledgers of pids {owner[number]} and {pid}"
            owner[number] = pid
            r = by_number.get(number)
            assert r is not None, f"trial {number} told by pid {pid} is not stored"
            assert r.state is TrialState.COMPLETE, f"trial {number} told COMPLETE by pid {pid} is {r.state}: {r}"
            assert r.value == value, f"trial {number}: stored value {r.value!r}, pid {pid} was told {value!r}"
            assert _pid_of(r.worker) == pid, f"trial {number} told by pid {pid} is stored as run by {r.worker}"
    # ... and conversely: a stored result its worker did not log is one whose worker was killed right after
    unlogged = [r for r in records if r.state is TrialState.COMPLETE and r.number not in owner]
    for r in unlogged:
        proc = killed.get(_pid_of(r.worker))
        assert proc is not None, f"trial {r.number} is stored COMPLETE, but its worker never logged it: {r}"
        assert proc.killed_at is not None and r.finished_at is not None and r.started_at is not None
        assert r.started_at <= proc.killed_at + 0.05, f"trial {r.number} started after its worker was killed: {r}"
        # finished_at is the database clock: on PostgreSQL the finish is one statement, which the server runs
        # (and commits) even when its client died right after sending it; seen 0.09 s after the kill
        assert r.finished_at <= proc.killed_at + 2.0, f"trial {r.number} finished long after its worker was killed: {r}"
        later = [q.number for q in records if q.worker == r.worker and q.number > r.number]
        assert not later, f"trial {r.number} is not logged, yet its worker ran trials {later} after it"
    # what a driver saw stored stays stored, each finished trial seen by one driver run at most
    seen_by: dict[int, int] = {}
    for d in run.drivers:
        for number, state, value in _driver_ledger(run.tmp / f"driver-{d.driver}.ledger"):
            assert number not in seen_by, f"trial {number} called back by driver runs {seen_by[number]} and {d.driver}"
            seen_by[number] = d.driver  # type: ignore[assignment]
            r = by_number[number]
            assert (r.state, r.value) == (state, value), f"trial {number}: driver {d.driver} saw {state} {value!r}: {r}"

    # every non-COMPLETE trial is FAILED and belongs to a killed worker, reaped soon after the kill
    latency: dict[str, list[float]] = {"worker died": [], "heartbeat lost": []}
    mid_trial: dict[str, int] = {"alone": 0, "with-driver": 0, "outage": 0, "cli": 0}
    unfinished: dict[int, list[TrialRecord]] = {}
    for r in records:
        if r.state is not TrialState.FAILED:
            continue
        pid = _pid_of(r.worker)
        proc = killed.get(pid)
        assert proc is not None and proc.killed_at is not None, f"trial {r.number} of a live worker FAILED: {r}"
        unfinished.setdefault(pid, []).append(r)
        assert r.reason is not None and r.reason.startswith((WORKER_DIED, HEARTBEAT_LOST)), r
        assert r.started_at is not None and r.started_at <= proc.killed_at + 0.05, f"started after the kill: {r}"
        assert r.finished_at is not None
        took = r.finished_at - proc.killed_at
        # a worker killed with its driver leaves no process to reap its trial until the next driver runs
        since = proc.killed_at
        if proc.how == "with-driver":
            assert proc.driver is not None and proc.driver + 1 < len(run.drivers)
            up = run.drivers[proc.driver + 1].up_at
            assert up is not None, f"driver {proc.driver + 1} never started a worker"
            since = max(since, up)
        for down, back in run.outages:  # while the server is down nobody can fail anything: count from its return
            if down <= since + GRACE + REAP_SLACK and since <= back:
                since = max(since, back)
        assert r.finished_at - since <= GRACE + REAP_SLACK, (
            f"trial {r.number} FAILED {r.finished_at - since:.2f} s after its worker was killed "
            f"(or a reaper started): {r}"
        )
        if r.reason.startswith(HEARTBEAT_LOST):
            hb = heartbeats[r.number]
            assert hb is not None and hb <= proc.killed_at + 0.05, f"a heartbeat after the kill: {r}"
            # never before the grace period (the reaper's clock is read just before its UPDATE: a little slack)
            assert r.finished_at - hb >= GRACE - 0.1, f"trial {r.number} reaped {r.finished_at - hb:.2f} s after its last beat"
            latency["heartbeat lost"].append(took)
        else:
            latency["worker died"].append(took)
        mid_trial["cli" if proc.kind == "cli" else proc.how] += 1
    for pid, mine in unfinished.items():
        assert len(mine) == 1, f"killed pid {pid} has several FAILED trials: {mine}"
    # the trials of a worker killed with its driver can only be reaped by a heartbeat thread
    for pid, [r] in unfinished.items():
        if killed[pid].how == "with-driver":
            assert r.reason is not None and r.reason.startswith(HEARTBEAT_LOST), r

    # every failure is retried once (retries=1), with its parameters, unless it was the retry
    for r in records:
        if r.state is not TrialState.FAILED:
            continue
        attempt = int((r.fixed.get(RETRY_KEY) or {}).get("attempt", 1))
        if attempt > RETRIES:
            assert RETRIED_AS_KEY not in r.system_attrs, f"trial {r.number} retried past retries={RETRIES}: {r}"
            continue
        assert RETRIED_AS_KEY in r.system_attrs, f"trial {r.number} was not retried: {r}"
        again = by_number[int(r.system_attrs[RETRIED_AS_KEY])]
        info = again.fixed[RETRY_KEY]
        assert info["previous"] == r.number and info["attempt"] == attempt + 1, again
        # the parameters it had defined when it was lost (a worker killed before the objective defined one
        # leaves none: the retry samples it) are enqueued with the retry, and used once its objective defines
        # them (a retry whose own worker was killed before that has none yet)
        assert {k: again.fixed.get(k) for k in r.params} == dict(r.params), (r, again)
        if again.state is TrialState.COMPLETE:
            assert {k: again.params.get(k) for k in r.params} == dict(r.params), (r, again)
        else:
            assert all(again.params[k] == v for k, v in r.params.items() if k in again.params), (r, again)
    retries_of = [r for r in records if RETRY_KEY in r.fixed]
    assert len(retries_of) == len(retried)

    # orphans: all their trials COMPLETE (they finished the trial in hand)
    orphans = {p.pid: p for p in procs.values() if p.orphaned_at is not None}
    for r in records:
        if _pid_of(r.worker) in orphans:
            assert r.state is TrialState.COMPLETE, f"trial {r.number} of an orphaned worker: {r}"
    orphan_exit = [p.gone_at - p.orphaned_at for p in orphans.values() if p.gone_at and p.orphaned_at]

    def span(xs: list[float]) -> tuple[float, float] | None:
        return (round(min(xs), 2), round(max(xs), 2)) if xs else None

    return {
        "trials": len(records),
        "states": {k: v for k, v in states.items() if v},
        "retried": len(retried),
        "kills": {
            "workers": run.kills("alone"), "workers_with_driver": run.kills("with-driver"),
            "workers_starting_at_outage": run.kills("outage"),
            "drivers": plan.driver_kills, "cli": plan.cli_kills,
        },
        "kills_mid_trial": mid_trial,
        "fail_after_kill_s": {k: span(v) for k, v in latency.items()},
        "orphans": len(orphans),
        "orphan_exit_s": span(orphan_exit),
        "outage_s": [round(b - a, 1) for a, b in run.outages],
        "ledger_entries": len(owner),
        "stored_unlogged": len(unlogged),
        "driver_ledger_entries": len(seen_by),
        "processes": len(procs),
        "run_s": round(run.ended - run.started, 1),
    }


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    from pg_server import private_pg

    yield from private_pg()


def _kill_test(plan: Plan, pg: Any, tmp_path: Path, name: str) -> dict[str, Any]:
    if not pg.running:
        pg.start()
    study = selftune.create_study(name, storage=pg.url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE)
    study.close()
    study.storage.close()
    seed = random.randrange(2**32)
    run = KillRun(plan, pg, tmp_path, name, seed)
    try:
        try:
            run.run()
        finally:
            print("\n".join(run.timeline))  # shown when the test fails
        late = run.wait_orphans()
        stats = _check(run, late)
    finally:
        run.engine.dispose()
    print(f"\nexecutor kill test {name} (seed {seed}): {stats}")
    # most kills should hit a worker with a trial in flight, or the test is not testing much
    assert stats["kills_mid_trial"]["alone"] >= plan.worker_kills // 2, stats
    return stats


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_local_workers_and_driver(pg: Any, tmp_path: Path) -> None:
    plan = Plan(budget=BUDGET, workers=8, worker_kills=50, driver_kills=3, pg_restart=True)
    stats = _kill_test(plan, pg, tmp_path, "kill-executors")
    assert stats["kills_mid_trial"]["with-driver"] >= 1, stats


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_cli_workers_alongside(pg: Any, tmp_path: Path) -> None:
    plan = Plan(
        budget=min(BUDGET, 1000), workers=4, worker_kills=6, driver_kills=1, pg_restart=False,
        cli_workers=2, cli_kills=2, extra_kills=2,
    )
    _kill_test(plan, pg, tmp_path, "kill-cli-workers")


# -- orphans of a driver killed while they start ------------------------------------------------------------
@pytest.mark.slow
def test_orphans_of_a_driver_killed_while_they_start(tmp_path: Path) -> None:
    """The driver is SIGKILLed right after it started its 2 workers (their spec is in the pipe, their imports
    are not done): each orphan should stop after one trial at most, not run the study to its budget."""
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    budget = 300
    cmd = [sys.executable, str(OBJECTIVE), url, "orphans", str(budget), "2", "0", str(tmp_path / "driver.ledger")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    driver = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    kids: list[int] = []
    try:
        while len(kids) < 2:
            assert time.monotonic() < deadline and driver.poll() is None, "the driver started no workers"
            time.sleep(0.005)
            kids = [p for p in _children(driver.pid) if _is_worker(p)]
        time.sleep(0.1)  # the driver has written their specs into the pipes (it does so right after starting each)
        driver.kill()
        driver.wait()
        while any(_state(p) is not None for p in kids):
            assert time.monotonic() < deadline, "the orphans did not exit"
            time.sleep(0.05)
    finally:
        for p in kids:
            if _state(p) is not None and _is_worker(p):
                os.kill(p, signal.SIGKILL)
    study = selftune.load_study("orphans", storage=url)
    try:
        n = len(study.trials)
    finally:
        study.close()
        study.storage.close()
    assert n <= 2, f"the orphans ran {n} trials of the budget of {budget} after their driver died"
