"""Throughput with many workers (issue 5): selftune's worker processes against Optuna (threads, and processes
sharing an RDB study) and Ray Tune, in the same run; and the per-trial cost as a study grows.

Measures, for k workers (``--workers``, default 1 2 4 8), two objectives (``trivial``: one float parameter ``x`` in
[-10, 10], returns ``x**2``; ``sleep``: the same after ``time.sleep(0.1)``) and two storages (an SQLite file and
PostgreSQL), trials per second of:

- selftune: ``study.optimize(objective, trials=N, workers=k)`` (k local worker processes; k = 1 runs in-process);
- Optuna, threads: ``study.optimize(objective, n_trials=N, n_jobs=k)`` on the same kind of RDB storage;
- Optuna, processes: k fresh interpreters, each ``optuna.load_study(...).optimize(n_trials=its share of N)`` on
  one shared RDB study;
- Ray Tune: ``Tuner(num_samples=N, max_concurrent_trials=k)``, random search (no SQL storage: run once per k and
  objective, shown in both storages' tables).

Each cell is one run on a fresh study (a fresh SQLite file or PostgreSQL database), random sampling everywhere.
"total" is completed trials over the wall time of the whole call (worker start-up included); "steady" is the
rate between the 10% and the 90% finished marks (from the trials' stored finish times). Every cell stops
starting trials after ``cap`` seconds (Optuna's and selftune's ``timeout``, Ray Tune's ``time_budget_s``).

Then the cost of one trial (single process, trivial objective, random sampler) when 1,000, 10,000 and 20,000
trials are stored: one study per size (filled fast, not timed), then 3 interleaved rounds over the sizes, each
a fresh study handle's first 10 trials (it reads the stored trials once) and 67 timed trials; the median time
per trial is reported.

Writes (or replaces) the section ``## Throughput`` of ``docs/benchmarks.md`` (``--out`` for another file); the
rest of that file is left alone. ``--quick`` is a smoke run with small sizes; it writes nothing unless ``--out``
is given.

    python benchmarks/throughput.py                     # full run (about 25 minutes on 2 cores)
    python benchmarks/throughput.py --quick --storages sqlite --workers 1 2 --no-ray --out /tmp/t.md

PostgreSQL: ``--pg`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) must allow CREATE
DATABASE; the benchmark creates throwaway databases there and drops them at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _common import (  # noqa: E402  (benchmarks/ is on sys.path when a script runs)
    Databases,
    environment,
    fast_fill_url,
    load_average,
    quiet,
    step,
    write_section,
)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Throughput"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOW, HIGH = -10.0, 10.0
SLEEP = 0.1  # seconds, the sleep objective
OBJECTIVES = ("trivial", "sleep")
STORAGES = ("sqlite", "postgresql")
LIBS = ("selftune", "optuna-threads", "optuna-procs", "raytune")
LIB_NAMES = {
    "selftune": "selftune (worker processes)",
    "optuna-threads": "Optuna, threads (`n_jobs=k`)",
    "optuna-procs": "Optuna, k processes",
    "raytune": "Ray Tune (no storage)",
}
STORAGE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Config:
    trivial_trials: int  # N for the trivial objective, every k
    sleep_per_worker: int  # N = this × k for the sleep objective
    cap: float  # seconds after which a trivial-objective cell starts no more trials
    cap_sleep: float  # the same for the sleep objective (8 fresh interpreters can take seconds to start)
    sizes: tuple[int, ...]  # stored trials for the per-trial cost
    window: int  # trials timed at each size
    window_cap: float  # seconds: a slower window is cut short (its per-trial time is still exact)
    goal_repeats: int = 1  # runs of the goal cells (PostgreSQL, 8 workers) in all, the grid's included


FULL = Config(trivial_trials=1000, sleep_per_worker=30, cap=30.0, cap_sleep=60.0, sizes=(1000, 10000, 20000),
              window=200, window_cap=20.0, goal_repeats=3)
QUICK = Config(trivial_trials=60, sleep_per_worker=5, cap=20.0, cap_sleep=20.0, sizes=(50, 150), window=20,
               window_cap=5.0)


# -- objectives (module level: cloudpickled by value to selftune's workers when this is __main__) ----------------
def st_trivial(trial: Any) -> float:
    x = trial.float("x", LOW, HIGH)
    return x * x


def st_sleep(trial: Any) -> float:
    x = trial.float("x", LOW, HIGH)
    time.sleep(SLEEP)
    return x * x


def op_trivial(trial: Any) -> float:
    x = trial.suggest_float("x", LOW, HIGH)
    return x * x


def op_sleep(trial: Any) -> float:
    x = trial.suggest_float("x", LOW, HIGH)
    time.sleep(SLEEP)
    return x * x


ST_OBJECTIVES = {"trivial": st_trivial, "sleep": st_sleep}
OP_OBJECTIVES = {"trivial": op_trivial, "sleep": op_sleep}


# -- results --------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One measurement: ``lib`` with ``workers`` workers on ``storage`` (None for Ray Tune)."""

    lib: str
    storage: str | None
    objective: str
    workers: int
    asked: int  # N
    completed: int = 0
    wall: float = 0.0  # seconds, the whole call
    steady: float | None = None  # trials/s between the 10% and 90% finished marks
    error: str | None = None
    repeat: int = 0  # 0: the grid's run; 1, 2, ...: the goal cells' extra runs

    @property
    def total(self) -> float | None:
        return self.completed / self.wall if self.wall > 0 and self.completed else None


@dataclass
class Growth:
    """Per-trial cost of ``lib`` on ``storage`` with ``size`` trials stored."""

    lib: str
    storage: str
    size: int
    first: float = 0.0  # seconds, 10 trials on a fresh handle (reads the stored trials once)
    per_trial: float | None = None  # seconds per trial: the median over the window
    mean: float | None = None  # seconds per trial: the window's wall time over its trials
    timed: int = 0  # trials in the window
    fill: float = 0.0  # seconds spent filling to ``size`` (not part of the measurement)
    error: str | None = None


def steady_rate(finished: Sequence[float]) -> float | None:
    """Trials per second between the 10% and the 90% finished marks (None with too few trials)."""
    ts = sorted(finished)
    if len(ts) < 5:
        return None
    i, j = int(0.1 * (len(ts) - 1)), int(0.9 * (len(ts) - 1))
    span = ts[j] - ts[i]
    return (j - i) / span if span > 0 else None


# -- storages -------------------------------------------------------------------------------------------------
def _analyze(url: str) -> None:
    """Fresh planner statistics after a fast fill (as autovacuum would give a study that grew this much)."""
    if not url.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


# -- the cells ------------------------------------------------------------------------------------------------
def selftune_cell(url: str, objective: str, n: int, k: int, cap: float) -> Cell:
    import selftune

    cell = Cell("selftune", None, objective, k, n)
    study = selftune.create_study(f"tp-{uuid.uuid4().hex[:8]}", storage=url, sampler=selftune.RandomSampler(seed=0))
    try:
        t0 = time.perf_counter()
        study.optimize(ST_OBJECTIVES[objective], trials=n, workers=k, progress=False, timeout=cap)
        cell.wall = time.perf_counter() - t0
        done = [r.finished_at for r in study.trials if r.state is selftune.TrialState.COMPLETE]
    finally:
        study.close()
        study.storage.close()
    cell.completed = len(done)
    cell.steady = steady_rate([t for t in done if t is not None])
    return cell


def _optuna_finished(study: Any) -> list[float]:
    import optuna

    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [t.datetime_complete.timestamp() for t in trials if t.datetime_complete is not None]


def _optuna_dispose(study: Any) -> None:
    with contextlib.suppress(Exception):
        study._storage._backend.engine.dispose()  # the RDBStorage behind Optuna's cache


def optuna_threads_cell(url: str, objective: str, n: int, k: int, cap: float) -> Cell:
    import optuna

    cell = Cell("optuna-threads", None, objective, k, n)
    study = optuna.create_study(
        study_name=f"tp-{uuid.uuid4().hex[:8]}", storage=url, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    try:
        t0 = time.perf_counter()
        study.optimize(OP_OBJECTIVES[objective], n_trials=n, n_jobs=k, timeout=cap)
        cell.wall = time.perf_counter() - t0
        done = _optuna_finished(study)
    finally:
        _optuna_dispose(study)
    cell.completed = len(done)
    cell.steady = steady_rate(done)
    return cell


def optuna_procs_cell(url: str, objective: str, n: int, k: int, cap: float) -> Cell:
    """k fresh interpreters, each optimising its share of ``n`` trials of one RDB study (a per-process share is
    Optuna's cheapest way to split a budget; ``MaxTrialsCallback`` reads the trials after each one)."""
    import optuna

    cell = Cell("optuna-procs", None, objective, k, n)
    name = f"tp-{uuid.uuid4().hex[:8]}"
    _optuna_dispose(optuna.create_study(study_name=name, storage=url))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
    t0 = time.perf_counter()
    deadline = time.time() + cap
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--optuna-worker", url, name, str(share), objective, str(i), repr(deadline)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for i, share in enumerate(shares)
    ]
    errors = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=cap + 300)
            if p.returncode != 0:
                errors.append(f"exit {p.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    cell.wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=url)
    done = _optuna_finished(study)
    _optuna_dispose(study)
    cell.completed = len(done)
    cell.steady = steady_rate(done)
    if errors:
        cell.error = f"{len(errors)} of {k} processes failed ({errors[0]})"
    return cell


def optuna_worker_main(url: str, name: str, n: int, objective: str, index: int, deadline: float) -> int:
    """One process of :func:`optuna_procs_cell`."""
    quiet()
    import optuna

    study = optuna.load_study(study_name=name, storage=url, sampler=optuna.samplers.RandomSampler(seed=index))
    left = deadline - time.time()
    if left > 0:
        study.optimize(OP_OBJECTIVES[objective], n_trials=n, timeout=left)
    _optuna_dispose(study)
    return 0


def ray_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    x = config["x"]
    if config["sleep"]:
        time.sleep(config["sleep"])
    tune.report({"loss": x * x, "t": time.time()})


def ray_main(k: int, jobs: list[tuple[str, int]], cap: float, cap_sleep: float) -> int:
    """Ray Tune cells for ``k`` workers, one per (objective, N) in ``jobs``: one JSON line per cell on stdout."""
    logging.disable(logging.WARNING)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    ray.init(num_cpus=max(k, 2), include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             logging_level=logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="selftune-ray-")
    try:
        for objective, n in jobs:
            cell = Cell("raytune", None, objective, k, n)
            try:
                tuner = tune.Tuner(
                    ray_trainable,
                    param_space={"x": tune.uniform(LOW, HIGH), "sleep": SLEEP if objective == "sleep" else 0.0},
                    tune_config=tune.TuneConfig(
                        num_samples=n, max_concurrent_trials=k,
                        time_budget_s=cap if objective == "trivial" else cap_sleep, metric="loss", mode="min",
                        reuse_actors=True,
                    ),
                    run_config=tune.RunConfig(storage_path=tmp, name=f"{objective}-{k}", verbose=0),
                )
                t0 = time.perf_counter()
                grid = tuner.fit()
                cell.wall = time.perf_counter() - t0
                results = [grid[i] for i in range(len(grid))]
                done = [r.metrics["t"] for r in results if r.metrics and "t" in r.metrics and r.error is None]
                cell.completed = len(done)
                cell.steady = steady_rate(done)
            except Exception as exc:  # a peer that fails is reported, not fatal
                cell.error = f"{type(exc).__name__}: {exc}"
            print(json.dumps(asdict(cell)), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def ray_cells(k: int, jobs: list[tuple[str, int]], cap: float, cap_sleep: float) -> list[Cell]:
    """Run :func:`ray_main` in a fresh interpreter (Ray's processes end with it)."""
    cmd = [sys.executable, __file__, "--ray-worker", str(k), json.dumps(jobs), repr(cap), repr(cap_sleep)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AIR_NEW_OUTPUT": "0"}
    timeout = (max(cap, cap_sleep) + 120) * len(jobs) + 120
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [Cell("raytune", None, o, k, n, error=f"timed out after {timeout:.0f} s") for o, n in jobs]
    cells = [Cell(**json.loads(ln)) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if len(cells) < len(jobs):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        have = {c.objective for c in cells}
        cells += [Cell("raytune", None, o, k, n, error=f"Ray exited {proc.returncode}: {tail[0][:200]}")
                  for o, n in jobs if o not in have]
    return cells


# -- per-trial cost as the study grows ------------------------------------------------------------------------
def selftune_fill(url: str, name: str, size: int) -> None:
    """Bring the study to ``size`` trials with ``optimize`` in this process (PostgreSQL: with
    ``synchronous_commit=off``; SQLite: selftune's own WAL settings)."""
    import selftune

    study = selftune.create_study(name, storage=fast_fill_url(url), sampler=selftune.RandomSampler(seed=size))
    try:
        study.optimize(st_trivial, trials=size, progress=False)
    finally:
        study.close()
        study.storage.close()
    _analyze(url)


def selftune_window(url: str, name: str, window: int, cap: float) -> tuple[float, list[float]]:
    """(seconds for 10 trials on a fresh handle, the clock at the window's start and after each trial in it)."""
    import selftune

    t0 = time.perf_counter()
    study = selftune.load_study(name, storage=url, sampler=selftune.RandomSampler(seed=1))
    try:
        have = len(study.trials)  # the handle's first read
        study.optimize(st_trivial, trials=have + 10, progress=False)
        first = time.perf_counter() - t0
        stamps = [time.perf_counter()]
        study.optimize(st_trivial, trials=have + 10 + window, progress=False, timeout=cap,
                       callbacks=[lambda _s, _r: stamps.append(time.perf_counter())])
    finally:
        study.close()
        study.storage.close()
    return first, stamps


def optuna_fill(url: str, name: str, size: int) -> None:
    """Bring the study to ``size`` COMPLETE trials with ``add_trials`` (durability relaxed while filling:
    PostgreSQL ``synchronous_commit=off``, SQLite ``PRAGMA synchronous=OFF``)."""
    import optuna
    import sqlalchemy as sa
    from optuna.distributions import BaseDistribution, FloatDistribution

    storage = optuna.storages.RDBStorage(fast_fill_url(url))
    if url.startswith("sqlite"):

        @sa.event.listens_for(storage.engine, "connect")
        def _no_sync(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=OFF")

        storage.engine.dispose()
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    have = len(study.get_trials(deepcopy=False))
    dist: dict[str, BaseDistribution] = {"x": FloatDistribution(LOW, HIGH)}
    rng = random.Random(size)
    batch = []
    for _ in range(max(0, size - have)):
        x = rng.uniform(LOW, HIGH)
        batch.append(optuna.trial.create_trial(params={"x": x}, distributions=dist, value=x * x))
    study.add_trials(batch)
    storage.engine.dispose()
    _analyze(url)


def optuna_window(url: str, name: str, window: int, cap: float) -> tuple[float, list[float]]:
    import optuna

    t0 = time.perf_counter()
    study = optuna.load_study(study_name=name, storage=url, sampler=optuna.samplers.RandomSampler(seed=1))
    try:
        study.optimize(op_trivial, n_trials=10)
        first = time.perf_counter() - t0
        stamps = [time.perf_counter()]
        study.optimize(op_trivial, n_trials=window, timeout=cap,
                       callbacks=[lambda _s, _t: stamps.append(time.perf_counter())])
    finally:
        _optuna_dispose(study)
    return first, stamps


ROUNDS = 3  # the windows at the different sizes are interleaved in this many rounds


def measure_growth(dbs: Databases, storage: str, libs: list[str], cfg: Config) -> list[Growth]:
    """Per-trial cost at each of ``cfg.sizes``: one study per size and library, filled first; then ``ROUNDS``
    rounds, each timing a fresh handle's first 10 trials and a third of the window at every size and library
    in turn (so that load from other work on the machine hits every size alike)."""
    fills = {"selftune": selftune_fill, "optuna": optuna_fill}
    windows = {"selftune": selftune_window, "optuna": optuna_window}
    name = "growth"
    urls: dict[tuple[str, int], str] = {}
    out: dict[tuple[str, int], Growth] = {}
    each: dict[tuple[str, int], list[float]] = {}
    firsts: dict[tuple[str, int], list[float]] = {}
    wall: dict[tuple[str, int], float] = {}
    try:
        for size in cfg.sizes:
            for lib in libs:
                key = (lib, size)
                out[key], each[key], firsts[key], wall[key] = Growth(lib, storage, size), [], [], 0.0
                urls[key] = dbs.new(storage, f"g{lib[:2]}{size}")
                try:
                    with step(f"{STORAGE_NAMES[storage]}: {lib} fill to {size:,}"):
                        t0 = time.perf_counter()
                        fills[lib](urls[key], name, size)
                        out[key].fill = time.perf_counter() - t0
                except Exception as exc:
                    traceback.print_exc(file=sys.stderr)
                    out[key].error = f"{type(exc).__name__}: {str(exc)[:200]}"
        per_round = -(-cfg.window // ROUNDS)
        for r in range(ROUNDS):
            for size in cfg.sizes:
                for lib in libs:
                    key = (lib, size)
                    if out[key].error:
                        continue
                    with step(f"{STORAGE_NAMES[storage]}: {lib} at {size:,}, round {r + 1}/{ROUNDS}") as note:
                        try:
                            first, stamps = windows[lib](urls[key], name, per_round, cfg.window_cap / ROUNDS)
                        except Exception as exc:
                            traceback.print_exc(file=sys.stderr)
                            out[key].error = f"{type(exc).__name__}: {str(exc)[:200]}"
                            continue
                        times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
                        each[key] += times
                        firsts[key].append(first)
                        wall[key] += stamps[-1] - stamps[0]
                        if times:
                            note.append(f"-> median {_ms(statistics.median(times))} ms/trial, first 10: {first:.2f} s")
    finally:
        for url in urls.values():
            dbs.drop(url)
    for key, g in out.items():
        if each[key]:
            g.timed = len(each[key])
            g.per_trial = statistics.median(each[key])
            g.mean = wall[key] / len(each[key])
            g.first = statistics.median(firsts[key])
    return list(out.values())


# -- the report -----------------------------------------------------------------------------------------------
def _rate(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def _cell_text(c: Cell | None, ideal: float | None) -> str:
    if c is None:
        return "not run"
    if c.error and not c.completed:
        return "error"
    txt = f"{_rate(c.steady)} / {_rate(c.total)}"
    if ideal:
        fs = "—" if c.steady is None else f"{c.steady / ideal:.0%}"
        ft = "—" if c.total is None else f"{c.total / ideal:.0%}"
        txt += f" ({fs} / {ft})"
    if c.completed < c.asked:
        txt += f" [{c.completed} of {c.asked}]"
    if c.error:
        txt += " ⚠"
    return txt


def render(env: dict[str, str], cfg: Config, args: argparse.Namespace, cells: list[Cell], growth: list[Growth],
           took: float) -> str:
    workers: list[int] = args.workers
    cmd = "python benchmarks/throughput.py" + (" " + " ".join(args.argv) if args.argv else "")
    vers = ", ".join(
        f"{label} {env[key]}" for key, label in (
            ("selftune", "selftune"), ("optuna", "Optuna"), ("ray", "Ray"), ("python", "Python"),
            ("sqlalchemy", "SQLAlchemy"), ("psycopg", "psycopg"), ("numpy", "numpy"), ("sqlite", "SQLite"),
        ) if key in env
    )
    lines = [
        SECTION,
        "",
        f"Measured with `{cmd}` on {env['date']} (issue 5).",
        "",
        f"- Machine: {env['machine']}; "
        + ("" if "postgresql" not in args.storages else
           f"PostgreSQL {env['postgresql']} on the same machine (local TCP), ")
        + "SQLite files on the local disk. "
        f"Load average (1 / 5 / 15 min) {env['load']} at the start, {load_average()} at the end; "
        f"the run took {took / 60:.1f} min. The machine is shared: single numbers move by tens of percent between "
        "runs; compare within a column (same run, cells interleaved) and read the ratios.",
        f"- Versions: {vers}.",
        f"- Objectives: `trivial` (one float `x` in [-10, 10], returns `x**2`) and `sleep` (the same after "
        f"`time.sleep({SLEEP:g})`); random sampling everywhere (`selftune.RandomSampler`, "
        "`optuna.samplers.RandomSampler`, Ray Tune's `BasicVariantGenerator`); `OMP_NUM_THREADS=1`; each library "
        "with its default storage settings (selftune: SQLite in WAL mode with `synchronous=NORMAL`, heartbeats "
        "on; Optuna: its `RDBStorage` defaults).",
        f"- N per cell: trivial {cfg.trivial_trials} trials; sleep {cfg.sleep_per_worker} trials per worker "
        f"({cfg.sleep_per_worker}·k); a cell starts no trial after {cfg.cap:g} s (sleep: {cfg.cap_sleep:g} s; "
        "`[done of N]` marks a cell cut there). Each cell is a fresh study in a fresh SQLite file / PostgreSQL database.",
        "- Cells read **steady / total** trials/s: steady = trials between the 10% and the 90% finished marks "
        "over that time (from the trials' stored finish times); total = completed trials over the wall time of "
        "the whole call, worker start-up included (a selftune or Optuna worker process is a fresh interpreter: "
        "about 1 s of CPU to start). For `sleep`, (x% / y%) is the fraction of the ideal k / 0.1 s.",
        "- selftune: `create_study(name, storage=url, sampler=RandomSampler(seed=0))`, then "
        "`optimize(objective, trials=N, workers=k, progress=False)`: k worker processes that open the study "
        "through its URL (k = 1 runs in the calling process). Optuna, threads: `optimize(n_trials=N, n_jobs=k)`. "
        "Optuna, k processes: k fresh interpreters, each `load_study(...)` and `optimize(n_trials=N // k)` on one "
        "shared RDB study (a per-process share; `MaxTrialsCallback` would read the trials after each one). "
        "Ray Tune: `Tuner(trainable, tune_config=TuneConfig(num_samples=N, max_concurrent_trials=k, "
        "reuse_actors=True))` after `ray.init(num_cpus=max(k, 2), include_dashboard=False, "
        "object_store_memory=100 MiB)` (`ray.init` not timed; without `reuse_actors=True` Ray Tune started a "
        "process per trial here: about 1 trial/s). Ray Tune has no SQL storage (results go to files): its rows "
        "are the same run shown in both storages' tables.",
        f"- Reading the numbers: this machine has {os.cpu_count()} cores, so with the trivial objective more "
        "workers cannot add CPU beyond that (the steady rate then measures how well the storage takes concurrent "
        "writers), and the total rate pays for starting k interpreters on those cores; the sleep objective is "
        "where k workers should give k times the rate.",
        "",
    ]
    by = {(c.lib, c.storage, c.objective, c.workers): c for c in cells if c.repeat == 0}
    libs = [lib for lib in LIBS if any(c.lib == lib for c in cells)]
    for storage in args.storages:
        for objective in OBJECTIVES:
            n_text = (f"N = {cfg.trivial_trials}" if objective == "trivial"
                      else f"N = {cfg.sleep_per_worker}·k, ideal k / {SLEEP:g} s")
            lines += [
                f"### {STORAGE_NAMES[storage]}, {objective} objective ({n_text})",
                "",
                "| | " + " | ".join(f"{k} worker{'s' if k > 1 else ''}" for k in workers) + " |",
                "|---|" + "---:|" * len(workers),
            ]

            def get(lib: str, k: int, storage: str = storage, objective: str = objective) -> Cell | None:
                return by.get((lib, None if lib == "raytune" else storage, objective, k))

            for lib in libs:
                row = [_cell_text(get(lib, k), k / SLEEP if objective == "sleep" else None) for k in workers]
                lines.append(f"| {LIB_NAMES[lib]} | " + " | ".join(row) + " |")
            for lib in libs[1:]:
                if libs[0] != "selftune":
                    break
                row = []
                for k in workers:
                    a, b = get("selftune", k), get(lib, k)
                    row.append("—" if a is None or b is None else
                               f"{_ratio(a.steady, b.steady)} / {_ratio(a.total, b.total)}")
                lines.append(f"| selftune / {LIB_NAMES[lib]} | " + " | ".join(row) + " |")
            lines.append("")
    errors = [c for c in cells if c.error]
    if errors:
        lines.append("Errors (⚠):")
        for c in errors:
            where = "" if c.storage is None else f" on {STORAGE_NAMES[c.storage]}"
            lines.append(f"- {LIB_NAMES[c.lib]}{where}, {c.objective}, k = {c.workers}: {c.error}")
        lines.append("")
    if growth:
        sizes = sorted({g.size for g in growth})
        lines += [
            "### Per-trial cost as the study grows",
            "",
            f"One process, trivial objective, random sampler. A study is filled to each size (not timed: "
            "selftune with `optimize` in batches, Optuna with `add_trials`; durability relaxed while filling: "
            "PostgreSQL `synchronous_commit=off`, Optuna's SQLite `synchronous=OFF`; then `ANALYZE` on "
            f"PostgreSQL), one study per size and library. Then {ROUNDS} rounds, each visiting every size and "
            "library in turn (so that load from other work hits them alike): a fresh study handle runs 10 trials "
            "(\"first 10\", median over the rounds: it reads the stored trials once), then "
            f"{-(-cfg.window // ROUNDS)} trials are timed; {ROUNDS * -(-cfg.window // ROUNDS)} timed trials per "
            f"size in all (a round is cut at {cfg.window_cap / ROUNDS:.1f} s; `[n]` marks fewer). Milliseconds per trial in the window, **median** of the trials' times (robust to "
            "the load from other work on this machine) and, after it, the mean (window wall time over trials); "
            "the growth column is the median at the largest size over the median at the smallest.",
            "",
            "| storage | library | " + " | ".join(f"ms/trial at {s:,}" for s in sizes)
            + f" | {sizes[-1]:,} / {sizes[0]:,} | first 10 at " + " / ".join(f"{s:,}" for s in sizes) + " (s) |",
            "|---|---|" + "---:|" * (len(sizes) + 2),
        ]
        gby = {(g.lib, g.storage, g.size): g for g in growth}
        for storage in args.storages:
            for lib in ("selftune", "optuna"):
                gs = [gby.get((lib, storage, s)) for s in sizes]
                if not any(gs):
                    continue
                ms = ["—" if g is None or g.per_trial is None else f"{_ms(g.per_trial)} ({_ms(g.mean)})"
                      + ("" if g.timed >= cfg.window else f" [{g.timed}]") for g in gs]
                lo, hi = gs[0], gs[-1]
                growth_txt = (_ratio(hi.per_trial, lo.per_trial) if lo and hi else "—")
                firsts = " / ".join("—" if g is None or g.per_trial is None else f"{g.first:.2f}" for g in gs)
                name = "selftune" if lib == "selftune" else "Optuna"
                lines.append(f"| {STORAGE_NAMES[storage]} | {name} | " + " | ".join(ms) + f" | {growth_txt} | {firsts} |")
        gerr = [g for g in growth if g.error]
        for g in gerr:
            lines.append(f"\n{g.lib} on {g.storage} at {g.size:,}: {g.error}")
        lines.append("")
    lines += repeated(cells, cfg)
    lines += goals(cells, growth, cfg)
    return "\n".join(lines).rstrip() + "\n"


def _median_cell(cs: list[Cell]) -> Cell:
    """A cell with the median steady and total rates of ``cs`` (runs of one cell)."""
    steady = [c.steady for c in cs if c.steady is not None]
    totals = [c.total for c in cs if c.total is not None]
    med = Cell(cs[0].lib, cs[0].storage, cs[0].objective, cs[0].workers, cs[0].asked)
    med.steady = statistics.median(steady) if steady else None
    med.completed = min(c.completed for c in cs) if totals else 0  # marks a run cut short
    med.wall = med.completed / statistics.median(totals) if totals else 0.0  # so that med.total is the median
    return med


def _runs(cells: list[Cell]) -> dict[tuple[str, str | None, str, int], list[Cell]]:
    out: dict[tuple[str, str | None, str, int], list[Cell]] = {}
    for c in cells:
        out.setdefault((c.lib, c.storage, c.objective, c.workers), []).append(c)
    return out


def repeated(cells: list[Cell], cfg: Config) -> list[str]:
    """The goal cells, run ``cfg.goal_repeats`` times (interleaved with the other libraries): every run and the
    median."""
    runs = {key: cs for key, cs in _runs(cells).items() if len(cs) > 1}
    if not runs:
        return []
    out = [
        f"### The goal cells, {cfg.goal_repeats} runs (PostgreSQL, 8 workers)",
        "",
        "The grid's run, then the same cells again (every library in turn, each run on a fresh database); the "
        "issue's goals are judged on the median.",
        "",
        "| objective | library | steady, each run | total, each run | median steady / total |",
        "|---|---|---|---|---:|",
    ]
    for (lib, _storage, objective, k), cs in runs.items():
        ideal = k / SLEEP if objective == "sleep" else None
        out.append(
            f"| {objective} | {LIB_NAMES[lib]} | {', '.join(_rate(c.steady) for c in cs)} | "
            f"{', '.join(_rate(c.total) for c in cs)} | {_cell_text(_median_cell(cs), ideal)} |"
        )
    return out + [""]


def goals(cells: list[Cell], growth: list[Growth], cfg: Config) -> list[str]:
    """The issue's goals next to what this run measured (the median where a cell ran several times)."""
    out = ["### The issue's goals, as measured in this run", ""]
    grouped = _runs(cells)
    by = {key: _median_cell(cs) if len(cs) > 1 else cs[0] for key, cs in grouped.items()}

    def how(key: tuple[str, str | None, str, int]) -> str:
        n = len(grouped.get(key, []))
        return f"median of {n} runs" if n > 1 else "one run"
    pg8 = by.get(("selftune", "postgresql", "trivial", 8))
    if pg8 is not None:
        ok = pg8.steady is not None and pg8.steady >= 500
        out.append(
            f"- ≥ 500 trials/s aggregate with 8 workers on PostgreSQL, trivial objective: {_rate(pg8.steady)} "
            f"steady, {_rate(pg8.total)} total (start-up included; {how(('selftune', 'postgresql', 'trivial', 8))}) — "
            f"**{'met' if ok else 'not met'}** (judged on the steady rate)."
        )
    for storage in STORAGES:
        c = by.get(("selftune", storage, "sleep", 8))
        if c is None:
            continue
        ideal = 8 / SLEEP
        ok = c.steady is not None and c.steady >= 0.9 * ideal
        fs = "—" if c.steady is None else f"{c.steady / ideal:.0%}"
        ft = "—" if c.total is None else f"{c.total / ideal:.0%}"
        out.append(
            f"- 100 ms objective, 8 workers ≥ 90% of the ideal {ideal:.0f} trials/s ({STORAGE_NAMES[storage]}): "
            f"{_rate(c.steady)} steady ({fs}), {_rate(c.total)} total ({ft}, start-up of 8 fresh interpreters "
            f"included, {c.completed} trials; {how(('selftune', storage, 'sleep', 8))}) — "
            f"**{'met' if ok else 'not met'}** (steady)."
        )
    sizes = sorted({g.size for g in growth})
    for storage in STORAGES:
        gs = {g.size: g for g in growth if g.lib == "selftune" and g.storage == storage and g.per_trial}
        if len(sizes) >= 2 and sizes[0] in gs and sizes[-1] in gs:
            r = gs[sizes[-1]].per_trial / gs[sizes[0]].per_trial  # type: ignore[operator]
            ok = r <= 1.25
            out.append(
                f"- No growth in per-trial cost from {sizes[0]:,} to {sizes[-1]:,} trials ({STORAGE_NAMES[storage]}): "
                f"{_ms(gs[sizes[0]].per_trial)} → {_ms(gs[sizes[-1]].per_trial)} ms per trial (median; means "
                f"{_ms(gs[sizes[0]].mean)} → {_ms(gs[sizes[-1]].mean)}) (× {r:.2f}) — **{'met' if ok else 'not met'}** (counted as no growth up to × 1.25, the noise on this machine)."
            )
    return out + [""]


# -- profiling ------------------------------------------------------------------------------------------------
def profile_driver(url: str, name: str, n: int, k: int) -> int:
    """The other workers of :func:`profile`: ``optimize(trials=n, workers=k)`` on the same study."""
    quiet()
    import selftune

    study = selftune.load_study(name, storage=url, sampler=selftune.RandomSampler(seed=0))
    try:
        study.optimize(st_trivial, trials=n, workers=k, progress=False)
    finally:
        study.close()
        study.storage.close()
    return 0


def profile(args: argparse.Namespace) -> int:
    """cProfile of one selftune worker (an in-process ``optimize`` on the study) while ``K - 1`` worker
    processes of ``optimize(workers=K - 1)`` work on the same PostgreSQL study."""
    import cProfile
    import pstats

    import selftune

    quiet()
    k, n = args.profile, args.profile_trials
    dbs = Databases(args.pg, "bench_tp")
    try:
        url = dbs.new("postgresql", "prof")
        name = "profile"
        study = selftune.create_study(name, storage=url, sampler=selftune.RandomSampler(seed=1))
        driver = None
        if k > 1:
            cmd = [sys.executable, __file__, "--profile-driver", url, name, str(n), str(k - 1)]
            driver = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
            time.sleep(1.0 + 0.3 * k)  # let its workers start: profile the steady state
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        mine = 0

        def count(_s: Any, _r: Any) -> None:
            nonlocal mine
            mine += 1

        prof.runcall(study.optimize, st_trivial, trials=n, progress=False, callbacks=[count])
        elapsed = time.perf_counter() - t0
        if driver is not None:
            driver.wait(timeout=600)
        total = len(study.trials)
        study.close()
        study.storage.close()
        print(f"\n=== one selftune worker of {k} on PostgreSQL: {mine} of {total} trials in {elapsed:.2f} s under "
              f"cProfile ({elapsed / max(mine, 1) * 1e3:.2f} ms per trial of its own) ===")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    finally:
        dbs.close()
    return 0


# -- main -----------------------------------------------------------------------------------------------------
RUNNERS = {"selftune": selftune_cell, "optuna-threads": optuna_threads_cell, "optuna-procs": optuna_procs_cell}


def one_cell(dbs: Databases, cfg: Config, storage: str, objective: str, k: int, lib: str) -> Cell:
    """One cell on a fresh database."""
    n = cfg.trivial_trials if objective == "trivial" else cfg.sleep_per_worker * k
    url = dbs.new(storage, lib)
    try:
        with step(f"{STORAGE_NAMES[storage]}, {objective}, k={k}: {lib} (N={n})") as note:
            cap = cfg.cap if objective == "trivial" else cfg.cap_sleep
            cell = _guarded(RUNNERS[lib], url, lib, objective, n, k, cap)
            cell.storage = storage
            note.append(f"-> {_cell_text(cell, None)} trials/s ({cell.completed} done)")
    finally:
        dbs.drop(url)
    return cell


def _guarded(fn: Any, url: str, lib: str, objective: str, n: int, k: int, cap: float) -> Cell:
    try:
        cell: Cell = fn(url, objective, n, k, cap)
        return cell
    except Exception as exc:  # one failing cell is reported, the run goes on
        traceback.print_exc(file=sys.stderr)
        return Cell(lib, None, objective, k, n, error=f"{type(exc).__name__}: {str(exc)[:200]}")


def run(args: argparse.Namespace) -> int:
    cfg = QUICK if args.quick else FULL
    quiet()
    t_start = time.perf_counter()
    dbs = Databases(args.pg if "postgresql" in args.storages else None, "bench_tp")
    cells: list[Cell] = []
    growth: list[Growth] = []
    libs = ["selftune"] + ([] if args.no_optuna else ["optuna-threads", "optuna-procs"])
    try:
        env = environment(dbs, ("optuna", "ray", "psycopg") if not args.no_ray else ("optuna", "psycopg"))
        print(f"load average at the start: {env['load']}", file=sys.stderr)
        if not args.no_grid:
            print("trials per second:", file=sys.stderr)
            for storage in args.storages:
                for objective in OBJECTIVES:
                    for k in args.workers:
                        for lib in libs:  # interleaved: load from elsewhere hits every library alike
                            cells.append(one_cell(dbs, cfg, storage, objective, k, lib))
            if "postgresql" in args.storages and 8 in args.workers and cfg.goal_repeats > 1:
                print("the goal cells again (PostgreSQL, 8 workers):", file=sys.stderr)
                for rep in range(1, cfg.goal_repeats):
                    for objective in OBJECTIVES:
                        for lib in libs:
                            cell = one_cell(dbs, cfg, "postgresql", objective, 8, lib)
                            cell.repeat = rep
                            cells.append(cell)
            if not args.no_ray:
                print("Ray Tune:", file=sys.stderr)
                for k in args.workers:
                    jobs = [("trivial", cfg.trivial_trials), ("sleep", cfg.sleep_per_worker * k)]
                    with step(f"Ray Tune, k={k}") as note:
                        got = ray_cells(k, jobs, cfg.cap, cfg.cap_sleep)
                        note.append(" ".join(f"{c.objective}: {_cell_text(c, None)}" for c in got))
                    cells += got
        if not args.no_growth:
            print("per-trial cost as the study grows:", file=sys.stderr)
            glibs = ["selftune"] + ([] if args.no_optuna else ["optuna"])
            for storage in args.storages:
                growth += measure_growth(dbs, storage, glibs, cfg)
    finally:
        dbs.close()
    took = time.perf_counter() - t_start
    section = render(env, cfg, args, cells, growth, took)
    print(f"\n(total {took:.0f} s)\n", file=sys.stderr)
    print(section)
    out = args.out if args.out is not None else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if out is not None:
        write_section(Path(out), SECTION, section)
        print(f"wrote {SECTION!r} in {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--optuna-worker"]:
        url, name, n, objective, index, deadline = argv[1:7]
        return optuna_worker_main(url, name, int(n), objective, int(index), float(deadline))
    if argv[:1] == ["--ray-worker"]:
        return ray_main(int(argv[1]), [tuple(j) for j in json.loads(argv[2])], float(argv[3]), float(argv[4]))
    if argv[:1] == ["--profile-driver"]:
        url, name, n, k = argv[1:5]
        return profile_driver(url, name, int(n), int(k))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run with small sizes (writes no docs unless --out)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="worker counts (default 1 2 4 8)")
    ap.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    ap.add_argument("--no-ray", action="store_true", help="skip Ray Tune")
    ap.add_argument("--no-optuna", action="store_true", help="skip Optuna")
    ap.add_argument("--no-grid", action="store_true", help="skip the trials-per-second tables")
    ap.add_argument("--no-growth", action="store_true", help="skip the per-trial cost as the study grows")
    ap.add_argument("--pg", default=os.environ.get("SELFTUNE_BENCH_PG", DEFAULT_PG), help="PostgreSQL admin URL")
    ap.add_argument("--profile", type=int, metavar="K", default=None,
                    help="instead: cProfile of one selftune worker among K on PostgreSQL (trivial objective)")
    ap.add_argument("--profile-trials", type=int, default=3000, help="the study's budget when profiling")
    ap.add_argument("--top", type=int, default=30, help="functions to show per profile")
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown file whose '## Throughput' section is written (default docs/benchmarks.md; "
                         "--quick writes none unless given)")
    args = ap.parse_args(argv)
    if any(k < 1 for k in args.workers):
        ap.error("--workers must be >= 1")
    shown: list[str] = []  # the command line for the report, without --out
    for a in argv:
        if shown[-1:] == ["--out"]:
            shown.pop()
        elif not a.startswith("--out="):
            shown.append(a)
    args.argv = shown[:-1] if shown[-1:] == ["--out"] else shown
    if args.profile is not None:
        return profile(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
