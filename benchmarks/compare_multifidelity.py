"""Early stopping at equal compute: selftune's ASHA / Hyperband / BOHB-style / median stopping against
full-budget search and Optuna's pruners, on learning-curve problems, several seeds, one report.

    python benchmarks/compare_multifidelity.py --quick                       # synthetic curves, 3 seeds (a minute)
    python benchmarks/compare_multifidelity.py --seeds 20 --workers 2        # synthetic curves, 20 seeds
    python benchmarks/compare_multifidelity.py --problems digits-mlp --seeds 5 --full-trials 30
    python benchmarks/compare_multifidelity.py --methods raytune-asha     # with `pip install 'selftune[ray]'`

Every method gets the same budget of training steps (epochs): ``--full-trials`` × the problem's
``max_steps``, i.e. what a search without early stopping spends on ``--full-trials`` trials. Results are
cached as JSON under ``--results`` (stale when selftune's sources or Optuna's version change).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from selftune.benchmarks.curves import get_curve_problem  # noqa: E402
from selftune.benchmarks.multifidelity import MF_METHODS, MFRun, run_mf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FULL = "selftune-full-tpe"  # the full-budget search the goal is measured against
DEFAULT_FULL = "selftune-full-auto"  # the default sampler without stopping: the goal read against it too
OPTUNA_PRUNED = ("optuna-tpe-hyperband", "optuna-tpe-sha", "optuna-tpe-median")


def _fingerprint(method: str) -> str:
    if method.startswith("optuna"):
        from importlib import metadata

        return "optuna-" + metadata.version("optuna")
    if method.startswith("raytune"):
        from importlib import metadata

        return "ray-" + metadata.version("ray")
    h = hashlib.sha256()
    src = ROOT / "src" / "selftune"
    for sub in (
        "samplers",
        "schedulers",
        "benchmarks/curves.py",
        "benchmarks/curves_torch.py",
        "benchmarks/multifidelity.py",
        "study.py",
        "history.py",
        "space.py",
    ):
        p = src / sub
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _job(args: tuple[str, str, int, int, int | None, str]) -> dict[str, Any]:
    method, problem_name, seed, budget, max_steps, path = args
    problem = get_curve_problem(problem_name, max_steps)
    result = run_mf(method, problem, seed, budget).to_json()
    result["fingerprint"] = _fingerprint(method)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def result_path(results: Path, problem: str, method: str, seed: int, budget: int, max_steps: int) -> Path:
    """Where one run's result is cached under ``results``."""
    return results / problem / f"{method}__s{seed}__b{budget}__t{max_steps}.json"


def _from_json(data: dict[str, Any]) -> MFRun:
    for key in ("trace", "test_trace"):
        data[key] = [tuple(x) for x in data.get(key, [])]
    data["incumbents"] = [tuple(x) for x in data.get("incumbents", [])]
    return MFRun(**data)


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="synthetic-curves")
    ap.add_argument(
        "--methods",
        default=",".join(m for m in MF_METHODS if not m.startswith("raytune")),
        help="comma-separated; raytune-asha needs `pip install 'selftune[ray]'` and is not in the default list",
    )
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--full-trials", type=int, default=40, help="budget = this × max_steps training steps")
    ap.add_argument("--max-steps", type=int, default=None, help="override the problems' max_steps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 seeds, 20 full trials")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "multifidelity"))
    ap.add_argument("--report", default=str(ROOT / "docs" / "benchmarks_multifidelity.md"))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.full_trials = 3, 20
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in MF_METHODS]
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {sorted(MF_METHODS)}")
    sections = []
    for problem_name in args.problems.split(","):
        problem = get_curve_problem(problem_name, args.max_steps)
        budget = args.full_trials * problem.max_steps
        jobs: list[tuple[str, str, int, int, int | None, str]] = []
        runs: dict[str, list[MFRun]] = {m: [] for m in methods}
        for m in methods:
            fp = _fingerprint(m)
            for seed in range(args.seeds):
                path = result_path(Path(args.results), problem.name, m, seed, budget, problem.max_steps)
                if path.exists() and not args.force:
                    data = json.loads(path.read_text())
                    if data.get("fingerprint") == fp:
                        data.pop("fingerprint")
                        runs[m].append(_from_json(data))
                        continue
                jobs.append((m, problem.name, seed, budget, args.max_steps, str(path)))
        print(f"{problem.name}: {len(jobs)} runs to do, budget {budget} steps", flush=True)
        with ProcessPoolExecutor(args.workers) as ex:
            for data in ex.map(_job, jobs):
                data.pop("fingerprint")
                run = _from_json(data)
                runs[run.method].append(run)
                print(
                    f"  {run.method} seed {run.seed}: {run.value_at(budget):.4f} ({run.seconds:.1f} s)",
                    flush=True,
                )
        sections.append(_section(problem.name, problem.max_steps, budget, runs, args.seeds))
    report = Path(args.report)
    text = _merge(report.read_text() if report.exists() else "", sections)
    report.write_text(text)
    print(text)
    return 0


HEADER = (
    "# Early stopping at equal compute\n\nGenerated by `benchmarks/compare_multifidelity.py` (one section per "
    "problem; a rerun replaces the sections of the problems it ran).\nLower is better: the validation error of "
    "the configuration each method recommends (its best COMPLETE trial; on synthetic-curves the noiseless final "
    "error), mean over seeds.\n\n"
)


def _merge(old: str, sections: list[str]) -> str:
    """The report with ``sections`` replacing those of the same problem in ``old`` in place (new ones appended;
    the others, and the text before the first section, kept: an edited report survives a rerun)."""
    chunks = ("\n" + old).split("\n## ")
    head = chunks[0].strip() + "\n\n" if chunks[0].strip() else HEADER
    kept: dict[str, str] = {}
    for chunk in chunks[1:]:
        kept[chunk.split(":", 1)[0]] = "## " + chunk.rstrip() + "\n"
    for sec in sections:
        kept[sec.split(":", 1)[0].removeprefix("## ")] = sec.rstrip() + "\n"
    return head + "\n".join(kept.values())


def _reach(rs: list[MFRun], target: dict[int, float], budget: int, test: bool = False) -> tuple[str, str]:
    """Steps to reach each seed's ``target`` value (``test``: test error): (median as a fraction of ``budget``,
    seeds within budget/3)."""
    reach = [r.steps_to_reach(target[r.seed], test=test) / budget for r in rs if r.seed in target]
    if not reach:
        return "n/a", "n/a"
    med = statistics.median(reach)
    return ("never" if math.isinf(med) else f"{med:.2f}"), f"{sum(x <= 1 / 3 for x in reach)} of {len(reach)}"


def _section(problem: str, max_steps: int, budget: int, runs: dict[str, list[MFRun]], seeds: int) -> str:
    full_final = {r.seed: r.value_at(budget) for r in runs.get(FULL, [])}
    lines = [
        f"## {problem}: {seeds} seeds, budget {budget} steps ({budget // max_steps} full-length trials)",
        "",
        "| method | value at budget/3 | value at budget | trials | stopped | steps to reach full-TPE's "
        "final value (median, fraction of budget) | seeds that reach it within budget/3 | seconds per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(runs, key=lambda m: _mean([r.value_at(budget) for r in runs[m]]))
    for m in order:
        rs = runs[m]
        if not rs:
            continue
        shown, within = _reach(rs, full_final, budget)
        lines.append(
            f"| {m} | {_mean([r.value_at(budget / 3) for r in rs]):.4f} | {_mean([r.value_at(budget) for r in rs]):.4f}"
            f" | {_mean([r.trials for r in rs]):.0f} | {_mean([r.stopped / max(1, r.trials) for r in rs]):.0%}"
            f" | {shown} | {within} | {_mean([r.seconds for r in rs]):.1f} |"
        )
    # the goals, stated as measured
    best_pruned = min(
        (m for m in OPTUNA_PRUNED if runs.get(m)),
        key=lambda m: _mean([r.value_at(budget) for r in runs[m]]),
        default=None,
    )
    if best_pruned is not None:
        ref = _mean([r.value_at(budget) for r in runs[best_pruned]])
        lines += ["", f"Optuna's best pruner here: {best_pruned} ({ref:.4f} at the budget)."]
        for m in ("selftune-asha-tpe", "selftune-hyperband-tpe", "selftune-asha-random"):
            if runs.get(m):
                rs = runs[m]
                wins = sum(
                    r.value_at(budget) < o.value_at(budget)
                    for r in rs
                    for o in runs[best_pruned]
                    if o.seed == r.seed
                )
                lines.append(
                    f"{m}: {_mean([r.value_at(budget) for r in rs]):.4f}, better than {best_pruned} on "
                    f"{wins} of {len(rs)} seeds."
                )
    # the other reading of "the full-budget search": selftune's default sampler, no stopping
    if runs.get(DEFAULT_FULL):
        default_final = {r.seed: r.value_at(budget) for r in runs[DEFAULT_FULL]}
        lines += [
            "",
            f"Against the default full-budget search ({DEFAULT_FULL}, {_mean(list(default_final.values())):.4f}"
            " at the budget), steps to reach its final value (median, fraction of budget; seeds within budget/3):",
        ]
        for m in order:
            if m in (FULL, DEFAULT_FULL) or not runs[m]:
                continue
            shown, within = _reach(runs[m], default_final, budget)
            if within != "n/a":
                lines.append(f"{m}: {shown} ({within}).")
    lines += _test_lines(runs, order, budget)
    lines.append("")
    return "\n".join(lines)


def _test_lines(runs: dict[str, list[MFRun]], order: list[str], budget: int) -> list[str]:
    """The same reading on the held-out test split (problems that have one): the recommended network's test
    error, which no method saw, so the validation error's selection bias (lower the more trials compete for
    "best") does not favour the search that finished more trials."""
    tested = {m: [r for r in runs[m] if r.test_trace] for m in order}
    if not any(tested.values()):
        return []
    lines = ["", "The recommended network's test error (held-out split, never reported to a method):"]
    for full in (FULL, DEFAULT_FULL):
        if not tested.get(full):
            continue
        target = {r.seed: r.value_at(budget, test=True) for r in tested[full]}
        lines += [
            "",
            f"| method | test error at budget/3 | test error at budget | steps to reach {full}'s final test error "
            "(median, fraction of budget) | seeds that reach it within budget/3 | seeds at or below it at budget/3 "
            f"| budget/3 minus {full}'s final (paired mean, 95% interval) |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in order:
            rs = [r for r in tested[m] if r.seed in target]
            if not rs:
                continue
            shown, within = _reach(rs, target, budget, test=True)
            third = [r.value_at(budget / 3, test=True) for r in rs]
            diffs = [t - target[r.seed] for t, r in zip(third, rs, strict=True)]
            lines.append(
                f"| {m} | {_mean(third):.4f} | {_mean([r.value_at(budget, test=True) for r in rs]):.4f} | {shown}"
                f" | {within} | {sum(d <= 0 for d in diffs)} of {len(rs)} | {_interval(diffs)} |"
            )
    return lines


def _interval(xs: list[float]) -> str:
    """``mean (low, high)``: a 95% t-interval of the mean; ``n/a`` when it is undefined."""
    finite = [x for x in xs if math.isfinite(x)]
    if len(finite) < 2 or len(finite) < len(xs):
        return "n/a"
    from scipy import stats

    m = statistics.fmean(finite)
    half = float(stats.t.ppf(0.975, len(finite) - 1)) * statistics.stdev(finite) / math.sqrt(len(finite))
    return f"{m:+.4f} ({m - half:+.4f}, {m + half:+.4f})"


if __name__ == "__main__":
    raise SystemExit(main())
