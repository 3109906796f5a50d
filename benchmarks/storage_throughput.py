"""Storage throughput of selftune's core, side by side with Optuna in the same run.

Measures, for a trivial objective (one float parameter ``x``, returns ``x**2``) and random sampling:

1. trials per second of ``optimize`` on in-memory storage, SQLite (1 process), PostgreSQL (1 and 8 processes);
2. the time of one ask+tell (one float parameter) when 100, 1,000 and 10,000 trials are already stored, on
   SQLite and PostgreSQL: the median of ``--pairs`` pairs on a fresh study handle, plus the first pair on that
   handle (which reads the stored trials once). With ``--tpe``, also TPE ask+tell on SQLite.

Prints markdown tables and writes (or replaces) the section ``## Storage throughput (core)`` of
``docs/benchmarks.md``. ``--quick`` is a smoke run with small sizes; it writes no docs unless ``--docs`` is given.

    python benchmarks/storage_throughput.py            # full run, about 7 minutes on 2 cores
    python benchmarks/storage_throughput.py --quick    # about 1 minute
    python benchmarks/storage_throughput.py --profile memory   # cProfile of selftune's optimize loop

PostgreSQL: ``--pg`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) must allow CREATE
DATABASE; the benchmark creates throwaway databases there and drops them at the end.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
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
SECTION = "## Storage throughput (core)"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOW, HIGH = -10.0, 10.0


@dataclass(frozen=True)
class Config:
    throughput: dict[str, int]  # trials timed per case
    sizes: tuple[int, ...]
    pairs: int
    tpe_sizes: tuple[int, ...]
    tpe_pairs: int
    repeats: int
    workers: int = 8


FULL = Config(
    throughput={"memory": 3000, "sqlite": 300, "postgresql": 200, "postgresql-8": 480},
    sizes=(100, 1000, 10000),
    pairs=50,
    tpe_sizes=(100, 1000),
    tpe_pairs=20,
    repeats=3,
)
QUICK = Config(
    throughput={"memory": 300, "sqlite": 40, "postgresql": 30, "postgresql-8": 80},
    sizes=(20, 100),
    pairs=10,
    tpe_sizes=(20,),
    tpe_pairs=5,
    repeats=1,
)


# -- the two libraries behind one small interface -------------------------------------------------------------
def st_objective(trial: Any) -> float:
    x = trial.float("x", LOW, HIGH)
    return x * x


def op_objective(trial: Any) -> float:
    x = trial.suggest_float("x", LOW, HIGH)
    return x * x


def st_study(name: str, url: str, sampler: str = "random") -> Any:
    import selftune

    s = selftune.TPESampler() if sampler == "tpe" else selftune.RandomSampler()
    return selftune.create_study(name, storage=url, sampler=s)


def op_study(name: str, url: str | None, sampler: str = "random") -> Any:
    import optuna

    s = optuna.samplers.TPESampler() if sampler == "tpe" else optuna.samplers.RandomSampler()
    return optuna.create_study(study_name=name, storage=url, sampler=s, load_if_exists=True)


def st_ask_tell(study: Any) -> None:
    t = study.ask()
    x = t.float("x", LOW, HIGH)
    study.tell(t, x * x)


def op_ask_tell(study: Any) -> None:
    t = study.ask()
    x = t.suggest_float("x", LOW, HIGH)
    study.tell(t, x * x)


def st_close(study: Any) -> None:
    study.close()
    study.storage.close()


def op_close(study: Any) -> None:
    with contextlib.suppress(Exception):
        study._storage._backend.engine.dispose()  # RDBStorage behind Optuna's cache


# -- storages -------------------------------------------------------------------------------------------------
# -- 1. trials per second -------------------------------------------------------------------------------------
def throughput_one(lib: str, url: str | None, n: int) -> float:
    """Trials/s of one process running ``optimize`` for ``n`` trials (after 10 warm-up trials)."""
    name = f"tp-{uuid.uuid4().hex[:8]}"
    if lib == "selftune":
        study = st_study(name, url or "memory")
        study.optimize(st_objective, trials=10, progress=False)
        t0 = time.perf_counter()
        study.optimize(st_objective, trials=10 + n, progress=False)
        elapsed = time.perf_counter() - t0
        st_close(study)
    else:
        study = op_study(name, url)
        study.optimize(op_objective, n_trials=10)
        t0 = time.perf_counter()
        study.optimize(op_objective, n_trials=n)
        elapsed = time.perf_counter() - t0
        op_close(study)
    return n / elapsed


def throughput_many(lib: str, url: str, n: int, workers: int) -> float:
    """Trials/s of ``workers`` processes on one study until it holds ``n`` trials: trials done over the time
    from the first worker's start to the last one's end (imports and connections happen before the start).

    selftune: ``optimize(trials=n)``, the study-wide budget. Optuna: ``n_trials=n // workers`` in each worker
    (its cheapest way to share a budget; ``MaxTrialsCallback`` would count the trials after each one).
    """
    name = f"tp8-{uuid.uuid4().hex[:8]}"
    if lib == "selftune":
        st_close(st_study(name, url))
    else:
        op_close(op_study(name, url))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", lib, url, name, str(n), str(workers)]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(workers)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", "a worker did not start"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        spans = []
        for p in procs:
            out, _ = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"a {lib} worker failed with exit code {p.returncode}")
            spans.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    done = _count_complete(lib, url, name)
    return done / (max(s["t1"] for s in spans) - min(s["t0"] for s in spans))


def _count_complete(lib: str, url: str, name: str) -> int:
    if lib == "selftune":
        import selftune

        study = selftune.load_study(name, storage=url)
        n = sum(r.state is selftune.TrialState.COMPLETE for r in study.trials)
        st_close(study)
        return n
    import optuna

    study = optuna.load_study(study_name=name, storage=url)
    n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    op_close(study)
    return n


def worker_main(lib: str, url: str, name: str, n: int, workers: int) -> int:
    """One process of :func:`throughput_many`: connect, say ready, wait for go, optimize, print the span."""
    quiet()
    if lib == "selftune":
        import selftune

        study = selftune.load_study(name, storage=url, sampler=selftune.RandomSampler())
        study.history()  # connect before the start
        run: Callable[[], None] = lambda: study.optimize(st_objective, trials=n, progress=False)  # noqa: E731
    else:
        import optuna

        study = optuna.load_study(study_name=name, storage=url, sampler=optuna.samplers.RandomSampler())
        study.get_trials(deepcopy=False)
        run = lambda: study.optimize(op_objective, n_trials=n // workers)  # noqa: E731
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1
    t0 = time.time()
    run()
    t1 = time.time()
    print(json.dumps({"t0": t0, "t1": t1}), flush=True)
    return 0


# -- 2. ask+tell with many trials stored ----------------------------------------------------------------------
def fill(lib: str, url: str, name: str, size: int) -> None:
    """Bring the study to ``size`` stored COMPLETE trials (not timed).

    selftune: its Storage API (two transactions per trial). Optuna: ``add_trials`` (one transaction per trial).
    Both with durability relaxed while filling (PostgreSQL: ``synchronous_commit=off``; SQLite for Optuna:
    ``PRAGMA synchronous=OFF``; selftune's SQLite runs WAL with ``synchronous=NORMAL`` anyway).
    """
    fast = fast_fill_url(url)
    if lib == "selftune":
        _selftune_fill(fast, name, size)
    else:
        _optuna_fill(fast, url, name, size)
    if url.startswith("postgresql"):
        # fresh planner statistics, as autovacuum would give a study that grew this much: without them a
        # table that grew 10x in a minute can get plans made for its old size (timings then depend on when
        # autovacuum last ran)
        import sqlalchemy as sa

        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()


def _selftune_fill(url: str, name: str, size: int) -> None:
    """The first trial through the Study API (it registers the parameter ``x``), the rest through the Storage
    API: ``start_trial`` with the parameter, then ``finish_trial`` (two transactions per trial)."""
    from selftune.trial import TrialState

    study = st_study(name, url)
    have = len(study.trials)
    if have == 0:
        st_ask_tell(study)
        have = 1
    storage, sid = study.storage, study.storage.get_study(name).id
    rng = random.Random(0)
    for _ in range(max(0, size - have)):
        x = rng.uniform(LOW, HIGH)
        record = storage.start_trial(sid, "fill", params={"x": x}, claim=False)
        storage.finish_trial(sid, record.number, TrialState.COMPLETE, x * x)
    st_close(study)


def _optuna_fill(fast: str, url: str, name: str, size: int) -> None:
    import optuna
    import sqlalchemy as sa
    from optuna.distributions import BaseDistribution, FloatDistribution

    storage = optuna.storages.RDBStorage(fast)
    if url.startswith("sqlite"):

        @sa.event.listens_for(storage.engine, "connect")
        def _no_sync(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA synchronous=OFF")

        storage.engine.dispose()
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    have = len(study.get_trials(deepcopy=False))
    dist: dict[str, BaseDistribution] = {"x": FloatDistribution(LOW, HIGH)}
    rng = random.Random(0)
    batch = []
    for _ in range(max(0, size - have)):
        x = rng.uniform(LOW, HIGH)
        batch.append(optuna.trial.create_trial(params={"x": x}, distributions=dist, value=x * x))
    study.add_trials(batch)
    storage.engine.dispose()


def ask_tell(lib: str, url: str, name: str, pairs: int, sampler: str = "random") -> tuple[float, float]:
    """(first, median) seconds of ask+tell on a fresh handle of the study: the first pair reads the stored
    trials; the median is over ``pairs`` pairs after it."""
    if lib == "selftune":
        study, step, close = st_study(name, url, sampler), st_ask_tell, st_close
    else:
        study, step, close = op_study(name, url, sampler), op_ask_tell, op_close
    try:
        t0 = time.perf_counter()
        step(study)
        first = time.perf_counter() - t0
        times = []
        for _ in range(pairs):
            t0 = time.perf_counter()
            step(study)
            times.append(time.perf_counter() - t0)
    finally:
        close(study)
    return first, statistics.median(times)


# -- the report -----------------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def _ms(s: float) -> str:
    return f"{s * 1000:.2f}" if s < 1 else f"{s * 1000:.0f}"


def render(
    env: dict[str, str],
    cfg: Config,
    tp: list[tuple[str, float, float]],
    lat: list[tuple],
    quick: bool,
    took: float,
) -> str:
    lines = [
        SECTION,
        "",
        f"Measured with `python benchmarks/storage_throughput.py{' --quick' if quick else ''}` on {env['date']}.",
        "",
        f"- Machine: {env['machine']}; PostgreSQL {env['postgresql']} on the same machine (local TCP), "
        f"SQLite files on the local disk. Load average (1 / 5 / 15 min) {env['load']} at the start, {load_average()} at the end "
        f"(the run took {took:.0f} s).",
        f"- Versions: selftune {env['selftune']}, Optuna {env['optuna']}, Python {env['python']}, "
        f"SQLAlchemy {env['sqlalchemy']}, psycopg {env['psycopg']}, numpy {env['numpy']}, SQLite {env['sqlite']}.",
        "- Objective: one float parameter `x` in [-10, 10], returns `x**2`; random sampling in both libraries "
        "(`selftune.RandomSampler`, `optuna.samplers.RandomSampler`); `OMP_NUM_THREADS=1`, Optuna logging off; "
        "each library with its default storage settings (selftune: SQLite in WAL mode with `synchronous=NORMAL`, "
        "heartbeats on; Optuna: SQLite in rollback-journal mode with `synchronous=FULL`, no heartbeats).",
        "- Noise: on a shared 2-core machine (see the load average) repeated runs move single numbers by tens of "
        "percent; the in-memory ratio, where both take about 0.1 ms per trial, is the least stable.",
        "",
        "### Trials per second (`optimize`)",
        "",
        f"Best of {cfg.repeats} runs (interleaved: selftune, Optuna, selftune, ...), each timed after 10 warm-up "
        "trials. 8 processes, one run: one study, trials done over the time from the first "
        f"worker's start to the last one's end (imports excluded); selftune uses the study-wide budget "
        f"(`trials={cfg.throughput['postgresql-8']}`), Optuna `n_trials={cfg.throughput['postgresql-8'] // 8}` "
        "per worker. Ratio > 1: selftune faster.",
        "",
        "| storage | trials | selftune (trials/s) | Optuna (trials/s) | selftune / Optuna |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, s, o in tp:
        lines.append(f"| {case} | {cfg.throughput[_tp_key(case)]} | {s:.0f} | {o:.0f} | {_ratio(s, o)} |")
    lines += [
        "",
        "### One ask+tell with N trials stored",
        "",
        f"Median of {cfg.pairs} ask+tell pairs (one float parameter) on a fresh study handle, in milliseconds, "
        "after its first pair (shown apart: it reads the stored trials once). Filling: selftune through its "
        "Storage API (`start_trial` + `finish_trial`), Optuna with `add_trials`, then `ANALYZE` on PostgreSQL. Ratio < 1: selftune faster. "
        "TPE rows: `selftune.TPESampler()` and `optuna.samplers.TPESampler()` with their defaults, on the same "
        "stored trials.",
        "",
        "| storage | sampler | N stored | selftune median (ms) | Optuna median (ms) | selftune / Optuna "
        "| selftune first (ms) | Optuna first (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, sampler, size, s_first, s_med, o_first, o_med in lat:
        s_med_txt = _ms(s_med) if s_med is not None else "n/a"
        s_first_txt = _ms(s_first) if s_first is not None else "n/a"
        ratio = _ratio(s_med, o_med) if s_med is not None else "-"
        lines.append(
            f"| {backend} | {sampler} | {size:,} | {s_med_txt} | {_ms(o_med)} | {ratio} | {s_first_txt} "
            f"| {_ms(o_first)} |"
        )
    slower = [f"{case} throughput" for case, s, o in tp if s < o]
    slower += [f"{b} {smp} ask+tell at {n:,}" for b, smp, n, _, s, _, o in lat if s is not None and s > o]
    if slower:
        lines += [
            "",
            f"selftune is slower than Optuna in: {', '.join(slower)}. "
            "`python benchmarks/storage_throughput.py --profile memory|sqlite|postgresql` shows where the time goes.",
        ]
    return "\n".join(lines) + "\n"


def _tp_key(case: str) -> str:
    return {
        "in-memory": "memory",
        "SQLite, 1 process": "sqlite",
        "PostgreSQL, 1 process": "postgresql",
        "PostgreSQL, 8 processes": "postgresql-8",
    }[case]


# -- main -----------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    cfg = QUICK if args.quick else FULL
    quiet()
    import selftune

    has_st_tpe = hasattr(selftune, "TPESampler")
    t_start = time.perf_counter()
    dbs = Databases(args.pg) if not args.no_postgres else None
    tmp = Path(tempfile.mkdtemp(prefix="selftune-bench-"))
    tp: list[tuple[str, float, float]] = []
    lat: list[tuple] = []
    try:
        env = environment(dbs)
        pg = {lib: dbs.new("postgresql", lib[:2]) for lib in ("selftune", "optuna")} if dbs else {}
        sq = {lib: f"sqlite:///{tmp / (lib + '.db')}" for lib in ("selftune", "optuna")}
        print("trials per second:", file=sys.stderr)
        cases = [("in-memory", None), ("SQLite, 1 process", sq)]
        if dbs:
            cases += [("PostgreSQL, 1 process", pg), ("PostgreSQL, 8 processes", pg)]
        for case, urls in cases:
            key = _tp_key(case)
            best = {"selftune": 0.0, "optuna": 0.0}
            repeats = 1 if key == "postgresql-8" else cfg.repeats
            for rep in range(repeats):  # interleaved, so that load from elsewhere hits both alike
                for lib in ("selftune", "optuna"):
                    with step(f"{case}: {lib} ({rep + 1}/{repeats})"):
                        url = None if urls is None else urls[lib]
                        if key == "postgresql-8":
                            rate = throughput_many(lib, url, cfg.throughput[key], cfg.workers)  # type: ignore[arg-type]
                        else:
                            rate = throughput_one(lib, url, cfg.throughput[key])
                    best[lib] = max(best[lib], rate)
            tp.append((case, best["selftune"], best["optuna"]))
        print("ask+tell with N trials stored:", file=sys.stderr)
        backends = [("SQLite", sq)] + ([("PostgreSQL", pg)] if dbs else [])
        for backend, urls in backends:
            name = f"lat-{uuid.uuid4().hex[:8]}"
            for size in cfg.sizes:
                row: dict[str, tuple[float, float]] = {}
                for lib in ("selftune", "optuna"):
                    with step(f"{backend}: {lib} fill to {size:,}"):
                        fill(lib, urls[lib], name, size)
                    with step(f"{backend}: {lib} ask+tell x{cfg.pairs}"):
                        row[lib] = ask_tell(lib, urls[lib], name, cfg.pairs)
                lat.append((backend, "random", size, *row["selftune"], *row["optuna"]))
                if args.tpe and backend == "SQLite" and size in cfg.tpe_sizes:
                    trow: dict[str, tuple[float | None, float | None]] = {"selftune": (None, None)}
                    for lib in ("selftune", "optuna") if has_st_tpe else ("optuna",):
                        with step(f"{backend}: {lib} TPE ask+tell x{cfg.tpe_pairs}"):
                            trow[lib] = ask_tell(lib, urls[lib], name, cfg.tpe_pairs, sampler="tpe")
                    lat.append((backend, "TPE", size, *trow["selftune"], *trow["optuna"]))
    finally:
        if dbs:
            dbs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t_start
    section = render(env, cfg, tp, lat, args.quick, total)
    print(f"\n(total {total:.0f} s)\n", file=sys.stderr)
    print(section)
    docs = args.docs if args.docs is not None else (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if docs is not None and not args.no_docs:
        write_section(Path(docs), SECTION, section)
        print(f"wrote {SECTION!r} in {docs}", file=sys.stderr)
    return 0


def profile(args: argparse.Namespace) -> int:
    """cProfile of selftune's optimize loop (and Optuna's, for comparison) on one storage."""
    import cProfile
    import pstats

    quiet()
    dbs = Databases(args.pg) if args.profile == "postgresql" else None
    tmp = Path(tempfile.mkdtemp(prefix="selftune-prof-"))
    n = args.n or {"memory": 5000, "sqlite": 500, "postgresql": 300}[args.profile]
    try:
        for lib in ("selftune", "optuna"):
            if args.profile == "memory":
                url = None
            elif args.profile == "sqlite":
                url = f"sqlite:///{tmp / (lib + '.db')}"
            else:
                assert dbs is not None
                url = dbs.new("postgresql", lib[:2])
            name = f"prof-{lib}"
            if lib == "selftune":
                study = st_study(name, url or "memory")
                study.optimize(st_objective, trials=10, progress=False)
                call = lambda s=study: s.optimize(st_objective, trials=10 + n, progress=False)  # noqa: E731
            else:
                study = op_study(name, url)
                study.optimize(op_objective, n_trials=10)
                call = lambda s=study: s.optimize(op_objective, n_trials=n)  # noqa: E731
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.runcall(call)
            elapsed = time.perf_counter() - t0
            print(
                f"\n=== {lib} on {args.profile}: {n} trials in {elapsed:.2f} s under cProfile "
                f"({elapsed / n * 1e6:.0f} us/trial) ==="
            )
            stats = pstats.Stats(prof)
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
    finally:
        if dbs:
            dbs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="a smoke run with small sizes (writes no docs by default)"
    )
    ap.add_argument(
        "--pg", default=os.environ.get("SELFTUNE_BENCH_PG", DEFAULT_PG), help="PostgreSQL admin URL"
    )
    ap.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL cases")
    ap.add_argument("--tpe", action=argparse.BooleanOptionalAction, default=True, help="also TPE ask+tell")
    ap.add_argument("--docs", type=Path, default=None, help="the markdown file to write the section into")
    ap.add_argument("--no-docs", action="store_true", help="only print the tables")
    ap.add_argument("--profile", choices=("memory", "sqlite", "postgresql"), help="profile optimize instead")
    ap.add_argument("--n", type=int, default=0, help="trials to profile")
    ap.add_argument("--top", type=int, default=25, help="functions to show per profile")
    ap.add_argument(
        "--worker", nargs=5, metavar=("LIB", "URL", "STUDY", "N", "WORKERS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.worker:
        lib, url, name, n, workers = args.worker
        return worker_main(lib, url, name, int(n), int(workers))
    if args.profile:
        return profile(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
