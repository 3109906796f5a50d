"""CMA-ES: strong on continuous problems at larger budgets, integers on the grid, categoricals delegated."""

from __future__ import annotations

import numpy as np

import selftune
from selftune import Choice, Float, Int, Space
from selftune.history import History
from selftune.trial import TrialRecord, TrialState


def _best(space: Space, f, sampler: selftune.Sampler, budget: int) -> float:  # type: ignore[no-untyped-def]
    study = selftune.create_study(storage="memory", space=space, sampler=sampler)
    for _ in range(budget):
        trial = study.ask()
        study.tell(trial, f(trial.params))
    return study.best_value


def test_beats_random_on_a_rotated_ill_conditioned_problem() -> None:
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
    scales = 10.0 ** np.linspace(0, 3, 6)

    def ellipsoid(p: dict) -> float:
        z = rot @ (np.array([p[f"x{i}"] for i in range(6)]) - 0.3)
        return float(np.sum(scales * z**2))

    space = Space({f"x{i}": Float(-2.0, 2.0) for i in range(6)})
    cma = [_best(space, ellipsoid, selftune.CMAESSampler(seed=s), 250) for s in range(3)]
    rnd = [_best(space, ellipsoid, selftune.RandomSampler(seed=s), 250) for s in range(3)]
    assert np.median(cma) < 0.05 * np.median(rnd), (cma, rnd)


def test_integers_stay_on_their_grid_and_are_optimised() -> None:
    space = Space({"a": Int(0, 30), "b": Int(0, 30, step=3), "x": Float(-1.0, 1.0, step=0.25)})
    f = lambda p: (p["a"] - 17) ** 2 + (p["b"] - 12) ** 2 + (p["x"] - 0.5) ** 2  # noqa: E731
    study = selftune.create_study(storage="memory", space=space, sampler=selftune.CMAESSampler(seed=1))
    for _ in range(150):
        trial = study.ask()
        assert space.validate(trial.params) == trial.params
        study.tell(trial, f(trial.params))
    assert study.best_value <= 1.0


def test_categorical_and_conditional_parameters_use_the_fallback() -> None:
    space = Space(
        {
            "x": Float(0, 1),
            "y": Float(0, 1),
            "opt": Choice(["a", "b"]),
            "m": Float(0, 1, when={"opt": "b"}),
        }
    )
    rng = np.random.default_rng(0)
    records = []
    for i in range(30):
        p = space.decode(rng.random(4))
        records.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=p, value=float(p["x"])))
    sampler = selftune.CMAESSampler(seed=0, fallback=selftune.TPESampler(seed=0, n_startup=5))
    for p in sampler.propose(History(records, params=dict(space)), space, 5, rng=np.random.default_rng(1)):
        assert space.validate(p) == p


def test_restarts_after_convergence() -> None:
    """IPOP: once a run converges, the population doubles and the search goes on."""
    space = Space({"x": Float(-1, 1), "y": Float(-1, 1)})
    sampler = selftune.CMAESSampler(seed=0, popsize=4)
    study = selftune.create_study(storage="memory", space=space, sampler=sampler)
    for _ in range(400):
        trial = study.ask()
        study.tell(trial, round(trial.params["x"] ** 2 + trial.params["y"] ** 2, 3))  # a plateau stops CMA-ES
    assert sampler._cache is not None and sampler._cache[1].population_size > 4
