"""Population based training vs ASHA (random / TPE) vs the best fixed configuration, at equal compute, on the
digits CNN, every recommendation scored on test seeds disjoint from the tuning seeds.

    python benchmarks/compare_pbt.py                                   # 5 tuning seeds, 216 epochs each (~30 min)
    python benchmarks/compare_pbt.py --seeds 10 --methods selftune-pbt,selftune-random-full
    python benchmarks/compare_pbt.py --methods raytune-pbt             # Ray Tune's PBT, run by --ray-python
    python benchmarks/compare_pbt.py --report-only                     # rewrite the report from the cache

Every method spends at most ``--population`` × ``--max-steps`` epochs (8 × 27 = 216); see
``selftune.benchmarks.pbt`` for the methods, seeds and recommendation rules. Results are cached as JSON under
``--results`` (stale when selftune's sources change; a Ray result names its Ray version; ``--force`` recomputes); the
report goes to ``--report``. ``raytune-pbt`` is opt-in: it runs in a subprocess with the Python of a separate
environment that has ``ray[tune]`` and torch (``--ray-python``, default ``$SELFTUNE_RAY_PYTHON`` or
``/work/ray-venv/bin/python``), with this repository's ``src`` on ``PYTHONPATH``; its schedule is scored here.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from selftune.benchmarks.pbt import (  # noqa: E402
    PBT_METHODS,
    PBTResult,
    PBTSettings,
    run_method,
    run_raytune_pbt,
    schedule_of,
    score,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_METHODS = [m for m in PBT_METHODS if m != "raytune-pbt"]
FIXED = "selftune-random-full"  # the best fixed configuration found with the same compute
DEFAULT_RAY_PYTHON = "/work/ray-venv/bin/python"
OBSERVATIONS = "## Observations"  # a report's hand-written section, kept when the script rewrites the report


def fingerprint(method: str) -> str:
    """What a cached result depends on: selftune's sources (and Ray's version for raytune-pbt)."""
    h = hashlib.sha256()
    src = ROOT / "src" / "selftune"
    for sub in ("samplers", "schedulers", "benchmarks/curves_torch.py", "benchmarks/pbt.py", "study.py",
                "history.py", "space.py", "protocol.py", "schedule.py", "trial.py", "_optimize.py",
                "_scheduling.py"):
        p = src / sub
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.exists():
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _path(results: Path, method: str, seed: int, s: PBTSettings) -> Path:
    return results / f"{method}__s{seed}__p{s.population}__t{s.max_steps}__i{s.interval}__q{s.quantile}__ts{s.test_seeds}.json"


def _ray(seed: int, settings: PBTSettings, ray_python: str) -> PBTResult:
    """Ray Tune's PBT in a subprocess of ``ray_python``; scored here."""
    if not Path(ray_python).exists():
        raise RuntimeError(f"no Python with Ray at {ray_python} (set --ray-python or $SELFTUNE_RAY_PYTHON)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    cmd = [ray_python, str(Path(__file__).resolve()), "--ray-worker", str(seed), "--settings",
           json.dumps(asdict(settings))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"Ray Tune's PBT failed (exit {proc.returncode}):\n" + "\n".join(tail))
    result = PBTResult.from_json(json.loads(lines[-1]))
    return score(result, schedule_of(result), settings)


def run(
    methods: list[str],
    seeds: list[int],
    settings: PBTSettings,
    results: Path | None = None,
    *,
    force: bool = False,
    ray_python: str = DEFAULT_RAY_PYTHON,
    log: Any = print,
) -> tuple[dict[str, list[PBTResult]], dict[str, str]]:
    """Run (or read from the cache) every method × seed; return the results by method and the failures."""
    out: dict[str, list[PBTResult]] = {m: [] for m in methods}
    failures: dict[str, str] = {}
    for m in methods:
        fp = fingerprint(m)
        for seed in seeds:
            path = None if results is None else _path(results, m, seed, settings)
            if path is not None and path.exists() and not force:
                data = json.loads(path.read_text())
                if data.get("fingerprint") == fp:
                    out[m].append(PBTResult.from_json(data))
                    continue
            try:
                r = _ray(seed, settings, ray_python) if m == "raytune-pbt" else run_method(m, seed, settings)
            except Exception as exc:  # a peer that fails is reported, not fatal
                if m != "raytune-pbt":
                    raise
                failures[m] = f"{type(exc).__name__}: {exc}"
                log(f"  {m} seed {seed}: FAILED {failures[m]}")
                break
            out[m].append(r)
            log(f"  {m} seed {seed}: test {r.test:.4f}, valid {r.valid:.4f}, {r.epochs} epochs, {r.trials} trials, "
                f"{r.seconds:.0f} s (+{r.eval_seconds:.0f} s scoring)")
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({**r.to_json(), "fingerprint": fp}))
                tmp.replace(path)
    return out, failures


def mean_ci(xs: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half width of its Student-t confidence interval (nan with one value)."""
    if not xs:
        return math.nan, math.nan
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, math.nan
    from scipy import stats

    return m, float(stats.t.ppf(0.5 + confidence / 2, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs)))


def report(runs: dict[str, list[PBTResult]], failures: dict[str, str], settings: PBTSettings, command: str) -> str:
    """The markdown report."""
    lines = [
        "# Population based training at equal compute (digits CNN)",
        "",
        f"Generated by `benchmarks/compare_pbt.py`: `{command}`.",
        "",
        f"Budget: {settings.budget} epochs per run ({settings.population} members × {settings.max_steps} epochs); "
        f"PBT interval {settings.interval} epochs, quantile {settings.quantile}. Each method's recommendation "
        f"(PBT: its best member's schedule, replayed; others: the best configuration by validation error) is "
        f"retrained on {settings.test_seeds} test seeds (1000000, 1000001, ...; tuning seeds are "
        "`tuning_seed * 1000 + trial`) and scored by its test error. Lower is better. ± is the 95% t-interval "
        "over tuning seeds.",
        "",
        "| method | tuning seeds | test error | validation error of the recommendation | epochs trained | trials "
        f"| tuning s | scoring s | test error below {FIXED} on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fixed = {r.seed: r.test for r in runs.get(FIXED, [])}
    order = sorted((m for m in runs if runs[m]), key=lambda m: mean_ci([r.test for r in runs[m]])[0])
    for m in order:
        rs = runs[m]
        t, ci = mean_ci([r.test for r in rs])
        v, vci = mean_ci([r.valid for r in rs])
        paired = [(r.test, fixed[r.seed]) for r in rs if r.seed in fixed]
        wins = f"{sum(a < b for a, b in paired)} of {len(paired)} (ties {sum(a == b for a, b in paired)})"
        lines.append(
            f"| {m} | {len(rs)} | {t:.4f} ± {ci:.4f} | {v:.4f} ± {vci:.4f} | "
            f"{statistics.fmean(r.epochs for r in rs):.0f} | {statistics.fmean(r.trials for r in rs):.1f} | "
            f"{statistics.fmean(r.seconds for r in rs):.0f} | {statistics.fmean(r.eval_seconds for r in rs):.0f} | "
            f"{wins if m != FIXED else '—'} |"
        )
    if fixed:
        lines += ["", f"Paired difference in test error against {FIXED} (same tuning seeds; negative: better than "
                  "the best fixed configuration), mean ± 95% t-interval:", ""]
        for m in order:
            if m == FIXED:
                continue
            diffs = [r.test - fixed[r.seed] for r in runs[m] if r.seed in fixed]
            if diffs:
                d, dci = mean_ci(diffs)
                lines.append(f"- {m}: {d:+.4f} ± {dci:.4f} over {len(diffs)} seeds")
    seeds = sorted({r.seed for rs in runs.values() for r in rs})
    lines += ["", "Test error per tuning seed (mean over the test seeds):", "",
              "| method | " + " | ".join(str(s) for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for m in order:
        by = {r.seed: r.test for r in runs[m]}
        lines.append(f"| {m} | " + " | ".join(f"{by[s]:.4f}" if s in by else "" for s in seeds) + " |")
    notes = sorted({r.note for rs in runs.values() for r in rs if r.note})
    for m, why in failures.items():
        lines += ["", f"**{m} did not run**: {why}"]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes)]
    lines += ["", f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs "
              "(one process, one thread)."]
    return "\n".join(lines) + "\n"


def _ray_worker(seed: int, settings: PBTSettings) -> int:
    import logging

    if not os.environ.get("SELFTUNE_RAY_VERBOSE"):
        logging.disable(logging.WARNING)
    result = run_raytune_pbt(seed, settings)
    print(json.dumps(result.to_json()), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated of {', '.join(PBT_METHODS)} (raytune-pbt is opt-in)")
    ap.add_argument("--seeds", type=int, default=5, help="tuning seeds 0 .. N-1")
    ap.add_argument("--seed-list", default=None, help="comma-separated tuning seeds (instead of --seeds)")
    ap.add_argument("--max-steps", type=int, default=27, help="epochs of a full training run")
    ap.add_argument("--population", type=int, default=8, help="PBT population; budget = this × max-steps")
    ap.add_argument("--interval", type=int, default=3, help="PBT ready interval in epochs")
    ap.add_argument("--quantile", type=float, default=0.25)
    ap.add_argument("--test-seeds", type=int, default=5)
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "pbt"))
    ap.add_argument("--report", default=str(ROOT / "docs" / "benchmarks_pbt.md"))
    ap.add_argument("--no-report", action="store_true", help="print the report, do not write it")
    ap.add_argument("--report-only", action="store_true", help="only cached results (compute nothing)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--ray-python", default=os.environ.get("SELFTUNE_RAY_PYTHON", DEFAULT_RAY_PYTHON))
    ap.add_argument("--ray-worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--settings", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ray_worker is not None:
        return _ray_worker(args.ray_worker, PBTSettings(**json.loads(args.settings)))
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in PBT_METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {list(PBT_METHODS)}")
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    settings = PBTSettings(args.max_steps, args.population, args.interval, args.quantile, args.test_seeds)
    results = Path(args.results)
    if args.report_only:  # every cached method with these settings, whatever --methods says
        methods = list(PBT_METHODS)
        runs = {m: [PBTResult.from_json(json.loads(p.read_text())) for s in seeds
                    if (p := _path(results, m, s, settings)).exists()] for m in methods}
        failures: dict[str, str] = {}
    else:
        print(f"digits-cnn: {len(methods)} methods × {len(seeds)} seeds, budget {settings.budget} epochs", flush=True)
        runs, failures = run(methods, seeds, settings, results, force=args.force, ray_python=args.ray_python)
        # the report shows every method cached with these settings, not only those run now
        for m in PBT_METHODS:
            if m not in runs:
                found = [PBTResult.from_json(json.loads(p.read_text())) for s in seeds
                         if (p := _path(results, m, s, settings)).exists()]
                if found:
                    runs[m] = found
    command = "python benchmarks/compare_pbt.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(runs, failures, settings, command.strip())
    if not args.no_report:
        out = Path(args.report)
        old = out.read_text() if out.exists() else ""
        if OBSERVATIONS in old:  # the hand-written part of the report survives a rerun
            text += "\n" + old[old.index(OBSERVATIONS):]
        out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
