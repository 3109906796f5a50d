"""The default sampler's rules: Sobol start, GP for small budgets, then TPE or CMA-ES."""

from __future__ import annotations

import numpy as np

import selftune
from selftune import AutoSampler, Choice, Float, Int, Space
from selftune.history import History
from selftune.trial import TrialRecord, TrialState


def _history(space: Space, n: int) -> History:
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        p = space.decode(rng.random(len(space)))
        recs.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=p, value=float(rng.random())))
    return History(recs, params=dict(space))


NUMERIC = Space({"x": Float(0, 1), "y": Float(-1, 1), "k": Int(1, 9)})
TREE = Space({"opt": Choice(["a", "b"]), "m": Float(0, 1, when={"opt": "b"}), "x": Float(0, 1)})


def test_rules_by_budget_and_types() -> None:
    auto = AutoSampler(seed=0, gp_max_trials=50)
    assert auto.choose(_history(NUMERIC, 0), NUMERIC) == "gp"  # the GP starts with its own Sobol points
    assert auto.choose(_history(NUMERIC, 49), NUMERIC) == "gp"
    assert auto.choose(_history(NUMERIC, 50), NUMERIC) == "cmaes"
    assert auto.choose(_history(TREE, 50), TREE) == "tpe"


def test_define_by_run_conditional_goes_to_tpe() -> None:
    space = Space({"x": Float(0, 1), "m": Float(0, 1)})  # inferred: no conditions declared
    recs = [
        TrialRecord(number=i, state=TrialState.COMPLETE, params={"x": 0.5} if i % 2 else {"x": 0.5, "m": 0.1}, value=1.0)
        for i in range(60)
    ]
    assert AutoSampler(gp_max_trials=50).choose(History(recs, params=dict(space)), space) == "tpe"


def test_high_dimension_skips_gp() -> None:
    space = Space({f"x{i}": Float(0, 1) for i in range(40)})
    assert AutoSampler(seed=0).choose(_history(space, 5), space) == "sobol"
    assert AutoSampler(seed=0).choose(_history(space, 30), space) == "cmaes"


def test_default_finds_good_points_quickly() -> None:
    def branin(p: dict) -> float:
        x, y = p["x"], p["y"]
        return (y - 5.1 / (4 * np.pi**2) * x**2 + 5 / np.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x) + 10

    space = Space({"x": Float(-5, 10), "y": Float(0, 15)})
    bests = []
    for seed in range(3):
        study = selftune.create_study(storage="memory", space=space, sampler=AutoSampler(seed=seed))
        for _ in range(30):
            trial = study.ask()
            study.tell(trial, branin(trial.params))
        bests.append(study.best_value)
    assert np.median(bests) < 0.45  # the optimum is 0.398
