"""Where early stopping loses the full search's result: an oracle over the configurations ASHA tried.

For each seed, the full-budget search (TPE, no stopping) sets the target (its best final value). ASHA + a sampler
then runs on the same problem and seed; for every trial that ended within the first third of the budget, the
trials it stopped are retrained to the last step (same trial seed, so the same curve). Each seed falls in one of
three cases:

- *reached*: ASHA's recommendation at budget/3 is already as good as the target;
- *stopped at r*: some configuration tried in the first third would have reached the target, but ASHA stopped it
  at rung r (a selection miss: the rung's value ranked it outside the best third);
- *none tried*: no configuration tried in the first third reaches the target, whatever the stopping rule
  (a proposal miss).

It also prints the rank correlation (Spearman) between each rung's value and the final value over the trials
that reached the rung: how well a rung predicts the end.

    python benchmarks/diagnose_multifidelity.py --problem digits-mlp --seeds 10     # ~2 min per seed here
    python benchmarks/diagnose_multifidelity.py --problem synthetic-curves --seeds 20

This is a diagnosis (it trains every stopped configuration to the end), not a comparison at equal compute. Values
are the ones the trials report (on the synthetic curves, noisy; the comparison scores the noiseless error).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import selftune  # noqa: E402
from selftune.benchmarks.curves import CurveProblem, _trial_seed, get_curve_problem  # noqa: E402
from selftune.benchmarks.multifidelity import run_study  # noqa: E402
from selftune.schedulers import ASHAScheduler  # noqa: E402
from selftune.schedulers.asha import rung_steps  # noqa: E402

MIN_RESOURCE, ETA = 1, 3  # ASHA as compare_multifidelity.py runs it


@dataclass
class Ended:
    """A trial as the diagnosis needs it: how far it ran, its curve, and the steps spent when it ended."""

    number: int
    params: dict[str, Any]
    complete: bool
    last_step: int
    curve: dict[int, float]
    value: float | None
    spent: int


def _run(
    problem: CurveProblem, seed: int, budget: int, sampler: selftune.Sampler, scheduler: Any
) -> list[Ended]:
    spent: dict[int, int] = {}
    trials = run_study(
        problem, seed, budget, sampler, scheduler, lambda r, steps: spent.__setitem__(r.number, steps)
    )
    return [
        Ended(
            t.number,
            dict(t.params),
            t.state is selftune.TrialState.COMPLETE,
            t.last_step or 0,
            dict(t.intermediate),
            t.value,
            spent[t.number],
        )
        for t in trials
        if t.number in spent
    ]


def _spearman(xs: list[float], ys: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).correlation) if len(xs) > 4 else math.nan


def diagnose(problem: CurveProblem, seed: int, sampler: str, full_trials: int) -> dict[str, Any]:
    """One seed: the target, ASHA's value at budget/3, the best any early configuration reaches, the case."""
    budget = full_trials * problem.max_steps
    make = {"tpe": selftune.TPESampler, "random": selftune.RandomSampler, "auto": selftune.AutoSampler}[
        sampler
    ]
    full = _run(problem, seed, budget, selftune.TPESampler(seed=seed), None)
    target = min(t.value for t in full if t.complete and t.value is not None)
    asha = ASHAScheduler(min_resource=MIN_RESOURCE, max_resource=problem.max_steps, reduction_factor=ETA)
    early = [t for t in _run(problem, seed, budget, make(seed=seed), asha) if t.spent <= budget / 3]
    rungs = rung_steps(MIN_RESOURCE, ETA, 0, problem.max_steps, problem.max_steps)
    finals: dict[int, float] = {}
    for t in early:
        if t.complete and t.value is not None:
            finals[t.number] = t.value
        else:  # the curve it would have had: the same trial seed
            finals[t.number] = problem.final_value(t.params, _trial_seed(seed, t.number))
    recommended = min((t.value for t in early if t.complete and t.value is not None), default=math.inf)
    winners = [t for t in early if finals[t.number] <= target]
    if recommended <= target:
        case = "reached"
    elif not winners:
        case = "none tried"
    else:
        case = "stopped at " + ",".join(str(s) for s in sorted({t.last_step for t in winners}))
    rho = {}
    for rung in rungs:
        at = [t for t in early if rung in t.curve]
        rho[rung] = _spearman([t.curve[rung] for t in at], [finals[t.number] for t in at])
    return {
        "seed": seed,
        "target": target,
        "recommended": recommended,
        "oracle": min(finals.values(), default=math.inf),
        "tried": len(early),
        "complete": sum(t.complete for t in early),
        "winners": len(winners),
        "case": case,
        "rho": rho,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="synthetic-curves")
    ap.add_argument("--sampler", default="tpe", choices=("tpe", "random", "auto"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--full-trials", type=int, default=30, help="budget = this × max_steps training steps")
    args = ap.parse_args(argv)
    problem = get_curve_problem(args.problem)
    print(
        f"{problem.name}, ASHA (eta 3) + {args.sampler}, budget {args.full_trials} × {problem.max_steps} steps"
    )
    print(
        "| seed | target (full TPE) | ASHA at budget/3 | best final of the configurations tried by then "
        "| tried | complete | would reach the target | case |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.seeds):
        r = diagnose(problem, seed, args.sampler, args.full_trials)
        rows.append(r)
        print(
            f"| {seed} | {r['target']:.4f} | {r['recommended']:.4f} | {r['oracle']:.4f} | {r['tried']} "
            f"| {r['complete']} | {r['winners']} | {r['case']} |",
            flush=True,
        )
    cases: dict[str, int] = {}
    for r in rows:
        key = "stopped" if r["case"].startswith("stopped") else r["case"]
        cases[key] = cases.get(key, 0) + 1
    print("\ncases:", ", ".join(f"{k} {v}" for k, v in sorted(cases.items())))
    for rung in rows[0]["rho"] if rows else []:
        vals = [r["rho"][rung] for r in rows if not math.isnan(r["rho"][rung])]
        if vals:
            print(
                f"rank correlation, value at step {rung} vs final (median over seeds): {statistics.median(vals):.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
