"""Median ask latency of GPSampler at 25 / 100 / 300 observations on a 6-D problem (Hartmann-6).

    python benchmarks/gp_latency.py [--repeats 7] [--sizes 25,100,300]

If Optuna (and the PyTorch its GPSampler needs) is importable, its GPSampler is timed on the same history:
``study.ask()`` on a study holding the same complete trials, so both include building the model.
Set ``OMP_NUM_THREADS=1`` for stable numbers on small machines (BLAS threads fight over the cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from selftune.benchmarks.problems import hartmann6
from selftune.history import History
from selftune.samplers.gp import GPSampler
from selftune.space import Float, Space
from selftune.trial import TrialRecord, TrialState

D = 6
SPACE = Space({f"x{i}": Float(0.0, 1.0) for i in range(D)})


def make_history(n: int, seed: int = 0) -> History:
    """``n`` complete trials: half uniform, half clustered near the optimum (like a real BO run)."""
    rng = np.random.default_rng(seed)
    opt = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])
    records = []
    for i in range(n):
        x = rng.random(D) if i % 2 == 0 else np.clip(opt + 0.1 * rng.normal(size=D), 0.0, 1.0)
        params = {f"x{j}": float(v) for j, v in enumerate(x)}
        records.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=params, value=hartmann6(x)))
    return History(records, params=dict(SPACE))


def time_selftune(history: History, repeats: int) -> list[float]:
    sampler = GPSampler(seed=0)
    sampler.propose(history, SPACE, 1, rng=np.random.default_rng(123))  # warm-up (imports, caches)
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        sampler.propose(history, SPACE, 1, rng=np.random.default_rng(k))
        times.append(time.perf_counter() - t)
    return times


def time_optuna(history: History, repeats: int) -> list[float] | str:
    try:
        import optuna
        import torch  # noqa: F401  (Optuna's GPSampler needs it)
        from optuna.distributions import BaseDistribution, FloatDistribution
        from optuna.samplers import GPSampler as OptunaGP
    except Exception as exc:  # noqa: BLE001
        return f"unavailable ({type(exc).__name__}: {exc})"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists: dict[str, BaseDistribution] = {name: FloatDistribution(0.0, 1.0) for name in SPACE}
    trials = [
        optuna.trial.create_trial(params=dict(r.params), distributions=dists, value=float(r.value))
        for r in history.complete
        if r.value is not None
    ]
    times = []
    for k in range(repeats + 1):
        study = optuna.create_study(sampler=OptunaGP(seed=k))
        study.add_trials(trials)
        t = time.perf_counter()
        trial = study.ask(dists)
        elapsed = time.perf_counter() - t
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if k:  # the first ask pays one-time imports
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", default="25,100,300")
    args = parser.parse_args()
    print(
        f"6-D Hartmann history; median of {args.repeats} asks; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        history = make_history(n)
        ours = statistics.median(time_selftune(history, args.repeats)) * 1e3
        line = f"n={n:4d}  selftune GPSampler {ours:8.1f} ms"
        theirs = time_optuna(history, max(3, args.repeats // 2))
        if isinstance(theirs, str):
            line += f"   optuna GPSampler {theirs}"
        else:
            line += f"   optuna GPSampler {statistics.median(theirs) * 1e3:8.1f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
