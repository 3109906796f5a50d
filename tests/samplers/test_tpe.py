"""TPE: better than random search, conditional parameters modelled, pending trials avoided."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sampler_helpers import random_records

import selftune
from selftune import Choice, Float, Int, Space
from selftune.history import History
from selftune.samplers._parzen import Dims, Parzen
from selftune.trial import TrialRecord, TrialState


def _run(space: Space, f, sampler: selftune.Sampler, budget: int) -> float:  # type: ignore[no-untyped-def]
    study = selftune.create_study(storage="memory", space=space, sampler=sampler)
    for _ in range(budget):
        trial = study.ask()
        study.tell(trial, f(trial.params))
    return study.best_value


def branin(p: dict) -> float:
    x, y = p["x"], p["y"]
    return (y - 5.1 / (4 * np.pi**2) * x**2 + 5 / np.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x) + 10


def mixed(p: dict) -> float:
    v = (math.log10(p["lr"]) + 3) ** 2 + 0.5 * (p["layers"] - 3) ** 2 + {"adam": 0.0, "sgd": 1.0, "rms": 0.5}[p["opt"]]
    return v + (10 * (p["mom"] - 0.9) ** 2 if p["opt"] == "sgd" else 0.0)


MIXED = Space(
    {
        "lr": Float(1e-6, 1.0, log=True),
        "layers": Int(1, 8),
        "opt": Choice(["adam", "sgd", "rms"]),
        "mom": Float(0.0, 0.99, when={"opt": "sgd"}),
    }
)


@pytest.mark.parametrize("multivariate", [True, False])
@pytest.mark.parametrize(
    ("space", "f", "budget"),
    [(Space({"x": Float(-5, 10), "y": Float(0, 15)}), branin, 40), (MIXED, mixed, 50)],
    ids=["branin", "mixed-conditional"],
)
def test_beats_random_search(space: Space, f, budget: int, multivariate: bool) -> None:  # type: ignore[no-untyped-def]
    tpe = [_run(space, f, selftune.TPESampler(seed=s, multivariate=multivariate), budget) for s in range(7)]
    rnd = [_run(space, f, selftune.RandomSampler(seed=s), budget) for s in range(7)]
    assert np.median(tpe) < 0.75 * np.median(rnd), (np.median(tpe), np.median(rnd))


_records = random_records


def test_conditional_parameter_is_modelled() -> None:
    """'mom' exists only for sgd; its proposals concentrate near its optimum instead of staying uniform."""
    space = Space({"opt": Choice(["sgd"]), "mom": Float(0.0, 1.0, when={"opt": "sgd"}), "x": Float(0, 1)})
    history = History(_records(space, lambda p: (p["mom"] - 0.9) ** 2 + p["x"], 120, 0), params=dict(space))
    tpe = selftune.TPESampler(seed=0)
    moms = [tpe.propose(history, space, 1, rng=np.random.default_rng(i))[0]["mom"] for i in range(40)]
    assert abs(np.median(moms) - 0.9) < 0.1 and np.mean(np.abs(np.array(moms) - 0.9) < 0.2) > 0.7


def test_define_by_run_groups_conditional_parameters() -> None:
    """Without a declared space, parameters seen only in some trials are modelled on those trials."""
    def objective(trial: selftune.Trial) -> float:
        kind = trial.choice("kind", ["a", "b"])
        if kind == "a":
            return (trial.float("xa", 0, 1) - 0.2) ** 2
        return 0.5 + (trial.float("xb", 0, 1) - 0.7) ** 2

    study = selftune.create_study(storage="memory", sampler=selftune.TPESampler(seed=1))
    study.optimize(objective, trials=60, progress=False)
    late = [t for t in study.trials[30:] if t.params["kind"] == "a"]
    assert len(late) > 15 and np.median([abs(t.params["xa"] - 0.2) for t in late]) < 0.1


def test_pending_and_batch_points_are_avoided() -> None:
    space = Space({"x": Float(0, 1)})
    done = _records(space, lambda p: (p["x"] - 0.5) ** 2, 40, 3)
    tpe = selftune.TPESampler(seed=0)
    alone = [tpe.propose(History(done, params=dict(space)), space, 1, rng=np.random.default_rng(i))[0]["x"] for i in range(30)]
    pending = [TrialRecord(number=40 + i, state=TrialState.RUNNING, params={"x": 0.5}) for i in range(30)]
    crowded = History(done + pending, params=dict(space))
    steered = [tpe.propose(crowded, space, 1, rng=np.random.default_rng(i))[0]["x"] for i in range(30)]
    assert np.mean(np.abs(np.array(steered) - 0.5)) > np.mean(np.abs(np.array(alone) - 0.5))
    batch = tpe.propose(History(done, params=dict(space)), space, 4, rng=np.random.default_rng(0))
    assert len({p["x"] for p in batch}) == 4


def test_parzen_discrete_mass_sums_to_one() -> None:
    """On a grid of m cells the density is a probability mass over the cells; categories sum to one too."""
    dims = Dims(cells=np.array([5]), sizes=np.array([3]))
    pz = Parzen(np.array([[0.1], [0.9], [0.5]]), np.array([[0], [2], [2]]), dims)
    centres = (np.arange(5) + 0.5) / 5
    Xn = np.repeat(centres, 3)[:, None]
    Xc = np.tile(np.arange(3), 5)[:, None]
    assert np.exp(pz.logpdf(Xn, Xc)).sum() == pytest.approx(1.0, abs=1e-9)
    xn, xc = pz.sample(np.random.default_rng(0), 2000)
    assert set(np.round(xn[:, 0] * 5 - 0.5).astype(int)) <= set(range(5)) and set(xc[:, 0]) == {0, 1, 2}


def test_continuous_density_integrates_to_one() -> None:
    dims = Dims(cells=np.array([0]), sizes=np.array([], dtype=int))
    pz = Parzen(np.array([[0.02], [0.6]]), np.empty((2, 0), dtype=int), dims)
    grid = np.linspace(0, 1, 20001)[:, None]
    dens = np.exp(pz.logpdf(grid, np.empty((grid.shape[0], 0), dtype=int)))
    assert np.trapezoid(dens, grid[:, 0]) == pytest.approx(1.0, abs=1e-3)
