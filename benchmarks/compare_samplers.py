"""Compare selftune's samplers with the peer libraries on the same problems, budgets and seeds.

    python benchmarks/compare_samplers.py --quick                      # a few-minute smoke run
    python benchmarks/compare_samplers.py --seeds 5 --workers 2        # the full comparison (hours)
    python benchmarks/compare_samplers.py --optimizers selftune-tpe --groups bbob-5d,sklearn

Raw results are cached as JSON under ``--results`` (one file per optimiser, problem, seed and budget), so a
rerun only computes what is missing and can add optimisers; a cached selftune result goes stale when the
sampler sources change, a peer's when its library version does (``--force`` recomputes anyway). The report
covers every optimiser with complete cached results for the chosen problems, seeds and budgets
(``--only-requested`` limits it to ``--optimizers``). ``--reuse-any-version hebo`` keeps a peer's cached
results measured with other library versions (say HEBO run on another machine, whose torch differs) instead
of recomputing them; the report then names the versions they were measured with. Peers are installed as
described in benchmarks/README.md.
"""

from __future__ import annotations

import os

# one thread per process for BLAS/OpenMP/torch, set before NumPy is imported (workers inherit it)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from selftune.benchmarks.problems import DEFAULT_GROUPS, GROUPS, Problem, get_problem, problems_in  # noqa: E402
from selftune.benchmarks.runner import (  # noqa: E402
    OPTIMIZERS,
    RunResult,
    measure_latency,
    optimizer_versions,
    resolve_name,
    run_detailed,
    unavailable_reason,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OPTIMIZERS = (
    "random,selftune-sobol,selftune-tpe,selftune-gp,selftune-cmaes,selftune-auto,"
    "optuna-tpe,optuna-gp,optuna-cmaes,hebo,smac,nevergrad"
)
QUICK_PROBLEMS = ("bbob-f08-d02", "bbob-f15-d05", "mixint-f21-d05", "noisy-mult-f08-d05", "sklearn-rf-digits")
REFERENCE_ORDER = ("selftune-auto", "selftune-gp", "selftune-tpe", "selftune-cmaes", "selftune-sobol")
#: rough seconds per ask, to start the slow jobs first
_ASK_COST = {"hebo": 4.0, "optuna-gp": 0.3, "smac": 0.3, "selftune-gp": 0.1, "nevergrad": 0.02}


def _result_path(results: Path, problem: str, optimizer: str, seed: int, budget: int) -> Path:
    return results / problem / f"{optimizer}__s{seed}__b{budget}.json"


def _load_cached(
    path: Path, problem_fp: str, versions: dict[str, str], any_version: bool = False
) -> RunResult | None:
    """The cached result at ``path`` if it is for this problem and these versions (with ``any_version``:
    this harness revision, whatever the library versions), else None."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cached = data.get("result", {}).get("versions") or {}
    fresh = cached.get("harness") == versions.get("harness") if any_version else cached == versions
    if data.get("problem_fingerprint") != problem_fp or not fresh:
        return None
    r = RunResult.from_json(data["result"])
    return r if r.error is None else None


def _job(problem_name: str, optimizer: str, seed: int, budget: int, path: str) -> dict[str, Any]:
    """Run one (problem, optimiser, seed) and write its JSON; runs in a worker process."""
    problem = get_problem(problem_name)
    r = run_detailed(problem, optimizer, seed, budget)
    out = {"problem_fingerprint": problem.fingerprint(), "problem": problem.describe(), "result": r.to_json()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, default=float))
    tmp.replace(p)
    return r.to_json()


def _latency_job(optimizer: str, levels: tuple[int, ...], asks: int, path: str) -> dict[str, Any]:
    problem = get_problem("hartmann6")
    try:
        lat = measure_latency(optimizer, problem, levels=levels, asks=asks)
        data: dict[str, Any] = {"latency": {str(k): v for k, v in lat.items()}, "error": None}
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        data = {"latency": {}, "error": f"{type(exc).__name__}: {exc}"}
    data["versions"] = optimizer_versions(optimizer)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data))
    return data


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _run_jobs(jobs: list[tuple[Any, ...]], fn: Any, workers: int, label: Any) -> list[Any]:
    """Run ``fn(*job)`` for every job, in ``workers`` spawned processes (or here when 1); prints progress."""
    out = []
    t0 = time.time()
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            out.append(fn(*job))
            print(f"[{i}/{len(jobs)} {time.time() - t0:6.0f}s] {label(job, out[-1])}", flush=True)
        return out
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = {pool.submit(fn, *job): job for job in jobs}
        pending = set(futures)
        done_n = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                done_n += 1
                res = f.result()
                out.append(res)
                print(f"[{done_n}/{len(jobs)} {time.time() - t0:6.0f}s] {label(futures[f], res)}", flush=True)
    return out


def _parse_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick", action="store_true", help="5 problems, 1 seed, budgets ≤ 25, latency at 25/100"
    )
    ap.add_argument("--optimizers", default=None, help=f"comma list (default: {DEFAULT_OPTIMIZERS})")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 5; --quick: 1)")
    ap.add_argument(
        "--groups", default=None, help=f"comma list of {', '.join(GROUPS)} (default: all but synthetic)"
    )
    ap.add_argument("--problems", default=None, help="comma list of problem names (overrides --groups)")
    ap.add_argument(
        "--workers", type=int, default=1, help="parallel processes (use at most the cores you have)"
    )
    ap.add_argument("--max-budget", type=int, default=None, help="cap every problem's budget")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="cache directory")
    ap.add_argument("--report", default=str(ROOT / "docs" / "benchmarks_samplers.md"), help="markdown output")
    ap.add_argument(
        "--reference", default=None, help="selftune sampler for wins/losses (default: best available)"
    )
    ap.add_argument(
        "--latency-levels", default=None, help="observations before timed asks (default 25,100,300)"
    )
    ap.add_argument(
        "--latency-asks", type=int, default=None, help="timed asks per level (default 8; --quick 4)"
    )
    ap.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    ap.add_argument("--force", action="store_true", help="recompute the requested optimisers' cached results")
    ap.add_argument("--only-requested", action="store_true", help="report only --optimizers")
    ap.add_argument(
        "--reuse-any-version",
        default=None,
        help="comma list of optimisers whose cached results are kept whatever library versions they were "
        "measured with (the report names those versions)",
    )
    ap.add_argument("--list", action="store_true", help="list problems and optimisers, then exit")
    args = ap.parse_args(argv)

    if args.list:
        for p in problems_in(GROUPS):
            print(f"{p.name:32s} {p.group:10s} d={p.dimension:2d} budget={p.budget}")
        for name, (desc, _) in OPTIMIZERS.items():
            why = unavailable_reason(name)
            print(f"{name:18s} {desc}" + (f"  [unavailable: {why}]" if why else ""))
        return 0

    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    max_budget = args.max_budget if args.max_budget is not None else (25 if args.quick else None)
    levels = tuple(
        int(x) for x in _parse_list(args.latency_levels or ("25,100" if args.quick else "25,100,300"))
    )
    asks = args.latency_asks if args.latency_asks is not None else (4 if args.quick else 8)
    if args.problems:
        problems: list[Problem] = [get_problem(n) for n in _parse_list(args.problems)]
    elif args.quick and not args.groups:
        problems = [get_problem(n) for n in QUICK_PROBLEMS]
    else:
        problems = problems_in(_parse_list(args.groups) or list(DEFAULT_GROUPS))

    requested = [resolve_name(n) for n in _parse_list(args.optimizers or DEFAULT_OPTIMIZERS)]
    if "random" not in requested:
        requested.insert(0, "random")  # the baseline of the normalised score
    skipped: dict[str, str] = {}
    optimizers = []
    for name in dict.fromkeys(requested):
        why = unavailable_reason(name)
        if why:
            skipped[name] = why
            print(f"skipping {name}: {why}", flush=True)
        else:
            optimizers.append(name)
    results_dir = Path(args.results)
    budgets = {p.name: min(p.budget, max_budget) if max_budget else p.budget for p in problems}
    fingerprints = {p.name: p.fingerprint() for p in problems}
    versions = {o: optimizer_versions(o) for o in optimizers}
    any_version = {resolve_name(n) for n in _parse_list(args.reuse_any_version)}

    # -- runs: reuse the cache, compute what is missing ------------------------------------------------
    results: list[RunResult] = []
    jobs: list[tuple[Any, ...]] = []
    for p in problems:
        for o in optimizers:
            for s in range(seeds):
                path = _result_path(results_dir, p.name, o, s, budgets[p.name])
                cached = (
                    None
                    if args.force
                    else _load_cached(path, fingerprints[p.name], versions[o], o in any_version)
                )
                if cached is not None:
                    results.append(cached)
                else:
                    jobs.append((p.name, o, s, budgets[p.name], str(path)))
    jobs.sort(key=lambda j: -(_ASK_COST.get(j[1], 0.005) * j[3]))
    print(
        f"{len(problems)} problems × {len(optimizers)} optimisers × {seeds} seeds: "
        f"{len(results)} cached, {len(jobs)} to run with {args.workers} worker(s)",
        flush=True,
    )

    def label(job: tuple[Any, ...], res: dict[str, Any]) -> str:
        r = RunResult.from_json(res)
        err = f"  ERROR {r.error.splitlines()[0]}" if r.error else ""
        return f"{job[0]:28s} {job[1]:16s} seed {job[2]}: final {r.final():.6g} in {r.wall_seconds:.1f}s{err}"

    results += [RunResult.from_json(d) for d in _run_jobs(jobs, _job, args.workers, label)]

    # -- latency ---------------------------------------------------------------------------------------
    latency: dict[str, dict[int, list[float]]] = {}
    if not args.no_latency and levels:
        lat_jobs = []
        for o in optimizers:
            path = results_dir / "latency" / f"{o}__{'-'.join(map(str, levels))}__a{asks}.json"
            data = None
            if path.exists() and not args.force:
                try:
                    data = json.loads(path.read_text())
                except ValueError:
                    data = None
                if data is not None and (data.get("versions") != versions[o] or data.get("error")):
                    data = None
            if data is None:
                lat_jobs.append((o, levels, asks, str(path)))
            else:
                latency[o] = {int(k): v for k, v in data["latency"].items()}
        lat_jobs.sort(key=lambda j: -_ASK_COST.get(j[0], 0.005))
        print(
            f"latency on hartmann6 at {levels} observations: {len(lat_jobs)} optimiser(s) to measure",
            flush=True,
        )

        def lat_label(job: tuple[Any, ...], res: dict[str, Any]) -> str:
            if res.get("error"):
                return f"latency {job[0]}: ERROR {res['error']}"
            med = {k: round(sorted(v)[len(v) // 2], 4) for k, v in res["latency"].items()}
            return f"latency {job[0]}: median s/ask {med}"

        _run_jobs(lat_jobs, _latency_job, args.workers, lat_label)
        for job in lat_jobs:  # results come back in completion order: read them from their files
            try:
                data = json.loads(Path(job[3]).read_text())
            except (OSError, ValueError):
                continue
            if data.get("latency"):
                latency[job[0]] = {int(k): v for k, v in data["latency"].items()}

    # -- report: every optimiser with complete results on these problems/seeds/budgets ---------------------
    def complete_cached(name: str) -> list[RunResult] | None:
        v = versions[name] = optimizer_versions(name)
        out = []
        for p in problems:
            for s in range(seeds):
                r = _load_cached(
                    _result_path(results_dir, p.name, name, s, budgets[p.name]),
                    fingerprints[p.name],
                    v,
                    name in any_version,
                )
                if r is None:
                    return None
                out.append(r)
        return out

    report_opts = list(optimizers)
    if not args.only_requested:
        for name in OPTIMIZERS:
            if name in report_opts or name in skipped or unavailable_reason(name):
                continue
            extra = complete_cached(name)
            if extra is not None:
                report_opts.append(name)
                results += extra
    reference = args.reference or next((o for o in REFERENCE_ORDER if o in report_opts), None)

    from selftune.benchmarks.report import build_report

    meta = {
        p.name: {"group": p.group, "optimum": p.optimum, "budget": budgets[p.name], "dimension": p.dimension}
        for p in problems
    }
    # results measured with other library versions than installed here (only with --reuse-any-version)
    measured_with: dict[str, list[dict[str, str]]] = {}
    for r in results:  # the installed versions come from ``versions``: computing them hashes the sampler sources
        installed = versions.get(r.optimizer) or optimizer_versions(r.optimizer)
        if r.optimizer in report_opts and r.versions and r.versions != installed:
            if r.versions not in measured_with.setdefault(r.optimizer, []):
                measured_with[r.optimizer].append(r.versions)
    settings = {"seeds": seeds, "workers": args.workers, "quick": args.quick}
    if max_budget:
        settings["max_budget"] = max_budget
    text = build_report(
        results,
        meta,
        optimizers=report_opts,
        descriptions={n: d for n, (d, _) in OPTIMIZERS.items()},
        reference=reference,
        latency=latency,
        latency_asks=asks,
        skipped=skipped,
        settings=settings,
        measured_with=measured_with,
    )
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
    print(text)
    print(f"report written to {report}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
