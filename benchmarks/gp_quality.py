"""Best value found by GPSampler vs random search on a few test functions (median over seeds).

    python benchmarks/gp_quality.py [branin,hartmann6,mixed,rosenbrock10,ackley20,styblinski30] [--seeds 5]
        [--trust-region]

Each run is a sequential loop of ``propose`` → evaluate on an in-memory history.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from selftune.benchmarks.problems import hartmann6 as _hartmann6
from selftune.history import History
from selftune.samplers import RandomSampler
from selftune.samplers._base import Sampler
from selftune.samplers.gp import GPSampler
from selftune.space import Choice, Float, Int, Space
from selftune.trial import TrialRecord, TrialState


def _vec(p: dict, d: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(d)])


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def hartmann6(p: dict) -> float:
    return _hartmann6(_vec(p, 6))


def rosenbrock(p: dict) -> float:
    x = _vec(p, len(p))
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


def ackley(p: dict) -> float:
    x = _vec(p, len(p))
    return float(
        -20 * np.exp(-0.2 * np.sqrt((x**2).mean())) - np.exp(np.cos(2 * np.pi * x).mean()) + 20 + np.e
    )


def styblinski_tang(p: dict) -> float:
    x = _vec(p, len(p))
    return float(0.5 * (x**4 - 16 * x**2 + 5 * x).sum())


def mixed(p: dict) -> float:
    """Float, log-int, stepped int, categorical and stepped float; minimum 0."""
    offset = {"a": 1.0, "b": 0.0, "c": 2.0, "d": 3.0}[p["c"]]
    return (
        (p["x"] - 1) ** 2
        + (math.log(p["n"]) - math.log(8)) ** 2
        + 0.1 * (p["k"] - 4) ** 2
        + offset
        + (p["s"] - 0.7) ** 2
    )


def _box(d: int, lo: float, hi: float) -> Space:
    return Space({f"x{i}": Float(lo, hi) for i in range(d)})


#: name -> (space, function, budget, optimum)
PROBLEMS: dict[str, tuple[Space, Callable[[dict], float], int, float]] = {
    "branin": (Space({"x1": Float(-5, 10), "x2": Float(0, 15)}), branin, 30, 0.397887),
    "hartmann6": (_box(6, 0, 1), hartmann6, 60, -3.32237),
    "mixed": (
        Space(
            {
                "x": Float(-3, 3),
                "n": Int(1, 50, log=True),
                "k": Int(0, 10, step=2),
                "c": Choice(["a", "b", "c", "d"]),
                "s": Float(0, 1, step=0.1),
            }
        ),
        mixed,
        40,
        0.0,
    ),
    "rosenbrock10": (_box(10, -2, 2), rosenbrock, 100, 0.0),
    "ackley20": (_box(20, -5, 10), ackley, 150, 0.0),
    "styblinski30": (_box(30, -5, 5), styblinski_tang, 150, -39.16617 * 30),
}


def run(sampler: Sampler, space: Space, f: Callable[[dict], float], budget: int, seed: int) -> float:
    records: list[TrialRecord] = []
    for i in range(budget):
        history = History(records, params=dict(space))
        params = sampler.propose(history, space, 1, rng=np.random.default_rng([seed, i]))[0]
        records.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=params, value=f(params)))
    return min(float(r.value) for r in records if r.value is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="?", default="branin,hartmann6,mixed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trust-region", action="store_true")
    args = parser.parse_args()
    for name in args.problems.split(","):
        space, f, budget, optimum = PROBLEMS[name]
        makers: list[tuple[str, Callable[[int], Sampler]]] = [
            ("gp", lambda s: GPSampler(seed=s, trust_region=args.trust_region)),
            ("random", lambda s: RandomSampler(seed=s)),
        ]
        for label, make in makers:
            t = time.perf_counter()
            best = [run(make(s), space, f, budget, s) for s in range(args.seeds)]
            print(
                f"{name:13s} {label:6s} budget={budget:3d} optimum={optimum:9.4g} median best={np.median(best):9.4g} "
                f"all={np.round(best, 3).tolist()} ({time.perf_counter() - t:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
