"""The early-stopping goal read on validation error without the selection bias: retrain each recommendation.

``compare_multifidelity.py`` scores a method by the validation error its recommended trial reported. That number
is the one the method selected on, so it is biased low, and more so the more trials competed for "best": a
full-budget search picks the best of 30 at its end, ASHA the best of the 3-7 trials it finished by a third of
the budget. This script re-measures each recommendation's validation error with ``--fresh`` new training seeds
(the same seeds for every configuration, so the comparison is paired): the mean is the configuration's
validation error, which no selection has touched. It reads the runs ``compare_multifidelity.py`` cached (run
that first with the same ``--problems``, ``--seeds``, ``--full-trials`` and ``--results``) and caches what it
retrains under ``<results>/<problem>/revalidated/`` (stale when the curve problems' code changes).

    python benchmarks/compare_multifidelity.py --problems digits-mlp --seeds 40 --full-trials 30 \\
        --methods selftune-asha-tpe,selftune-full-tpe,selftune-full-auto
    python benchmarks/revalidate_multifidelity.py --problems digits-mlp --seeds 40 --full-trials 30 \\
        --methods selftune-asha-tpe,selftune-full-tpe,selftune-full-auto

For each method it prints the reported and the re-measured validation error of its recommendation at a third
of the budget and at the budget, and, against each full-budget search's final recommendation, the paired
difference of the re-measured errors (a method at a third of the budget minus the full search at its end).
"""

from __future__ import annotations

import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import compare_multifidelity as cmf  # noqa: E402

from selftune.benchmarks.curves import get_curve_problem  # noqa: E402
from selftune.benchmarks.multifidelity import MFRun  # noqa: E402

#: the fresh training seeds are FRESH_BASE + k: far from every trial's seed (``_trial_seed``: seed * 1_000_003 +
#: trial number, so a clash needs a benchmark seed near 1073 and 700,000 trials)
FRESH_BASE = 2**30


def recommendation(run: MFRun, steps: float) -> dict[str, Any] | None:
    """The configuration ``run`` recommends once ``steps`` were spent (None before a trial completed)."""
    out = None
    for spent, params, _ in run.incumbents:
        if spent > steps:
            break
        out = params
    return out


@functools.cache
def _problem_code() -> str:
    """A hash of the curve problems' code: a retrained value is stale when it changes."""
    h = hashlib.sha256()
    for f in sorted((cmf.ROOT / "src" / "selftune" / "benchmarks").glob("curves*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


def _config(params: dict[str, Any]) -> str:
    """A configuration as a string (its items sorted)."""
    return json.dumps(sorted(params.items()), default=str)


def _key(problem: str, max_steps: int, params: dict[str, Any], fresh: int) -> str:
    text = json.dumps([problem, max_steps, _config(params), fresh, _problem_code()])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _retrain(args: tuple[str, int, dict[str, Any], int]) -> list[float]:
    problem_name, max_steps, params, fresh = args
    problem = get_curve_problem(problem_name, max_steps)
    return [problem.final_value(params, FRESH_BASE + k) for k in range(fresh)]


def load_runs(results: Path, problem: str, method: str, seeds: int, budget: int, max_steps: int) -> list[MFRun]:
    """The cached runs of ``method`` on ``problem`` for seeds ``0 .. seeds - 1`` (an error names a missing one)."""
    out = []
    for seed in range(seeds):
        path = cmf.result_path(results, problem, method, seed, budget, max_steps)
        if not path.exists():
            raise SystemExit(
                f"no cached run {path}: run benchmarks/compare_multifidelity.py with the same --problems, --seeds,"
                " --full-trials and --results first"
            )
        data = json.loads(path.read_text())
        data.pop("fingerprint", None)
        out.append(cmf._from_json(data))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="digits-mlp")
    ap.add_argument("--methods", default="selftune-asha-tpe,selftune-full-tpe,selftune-full-auto")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--full-trials", type=int, default=30)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--fresh", type=int, default=10, help="training seeds per recommendation")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--results", default=str(cmf.ROOT / "benchmarks" / "results" / "multifidelity"))
    args = ap.parse_args(argv)
    if args.fresh < 2:
        ap.error("--fresh must be at least 2")
    methods = [m for m in args.methods.split(",") if m]
    results = Path(args.results)
    for problem_name in args.problems.split(","):
        problem = get_curve_problem(problem_name, args.max_steps)
        budget = args.full_trials * problem.max_steps
        runs = {m: load_runs(results, problem.name, m, args.seeds, budget, problem.max_steps) for m in methods}
        cache_dir = results / problem.name / "revalidated"
        cache_dir.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, dict[str, Any]] = {}
        for rs in runs.values():
            for r in rs:
                for steps in (budget / 3, budget):
                    params = recommendation(r, steps)
                    if params is not None:
                        wanted[_key(problem.name, problem.max_steps, params, args.fresh)] = params
        todo = [k for k in wanted if not (cache_dir / f"{k}.json").exists()]
        print(f"{problem.name}: {len(wanted)} recommendations, {len(todo)} to retrain {args.fresh} times", flush=True)
        with ProcessPoolExecutor(args.workers) as ex:
            jobs = [(problem.name, problem.max_steps, wanted[k], args.fresh) for k in todo]
            for k, values in zip(todo, ex.map(_retrain, jobs), strict=True):
                tmp = cache_dir / f"{k}.tmp"
                tmp.write_text(json.dumps({"params": wanted[k], "values": values}))
                tmp.replace(cache_dir / f"{k}.json")
        means = {k: statistics.fmean(json.loads((cache_dir / f"{k}.json").read_text())["values"]) for k in wanted}
        remeasure = {_config(p): means[k] for k, p in wanted.items()}
        print(section(problem.name, budget, runs, remeasure, args.fresh))
    return 0


def section(problem: str, budget: int, runs: dict[str, list[MFRun]], remeasure: dict[str, float], fresh: int) -> str:
    """The report for one problem; ``remeasure`` maps each recommended configuration (:func:`_config`) to
    its mean validation error over the fresh training seeds."""

    def again(r: MFRun, steps: float) -> float:
        params = recommendation(r, steps)
        return float("inf") if params is None else remeasure[_config(params)]

    seeds = len(next(iter(runs.values())))
    lines = [
        f"## {problem}: {seeds} seeds, budget {budget} steps, each recommendation retrained with {fresh} fresh seeds",
        "",
        "| method | reported at budget/3 | re-measured at budget/3 | reported at budget | re-measured at budget |",
        "|---|---|---|---|---|",
    ]
    for m, rs in runs.items():
        lines.append(
            f"| {m} | {cmf._mean([r.value_at(budget / 3) for r in rs]):.4f} | "
            f"{cmf._mean([again(r, budget / 3) for r in rs]):.4f} | {cmf._mean([r.value_at(budget) for r in rs]):.4f}"
            f" | {cmf._mean([again(r, budget) for r in rs]):.4f} |"
        )
    for full in (cmf.FULL, cmf.DEFAULT_FULL):
        if full not in runs:
            continue
        target = {r.seed: again(r, budget) for r in runs[full]}
        lines += [
            "",
            f"Re-measured at budget/3 minus {full}'s final recommendation re-measured (paired mean, 95% interval;"
            " seeds at or below; the full search's own line compares its pick at a third of its budget with its end):",
            "",
        ]
        for m, rs in runs.items():
            diffs = [again(r, budget / 3) - target[r.seed] for r in rs if r.seed in target]
            lines.append(f"- {m}: {cmf._interval(diffs)}; {sum(d <= 0 for d in diffs)} of {len(diffs)}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
