"""Real studies for the analysis tests: mixed parameters with failures, ASHA curves, two workers, empty."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

import selftune
from selftune.schedulers import ASHAScheduler
from selftune.storage import MemoryStorage


def mixed_objective(trial: selftune.Trial) -> float:
    """x linear, lr log-scaled, opt categorical, momentum only with sgd; x > 4.5 fails."""
    x = trial.float("x", -5, 5)
    lr = trial.float("lr", 1e-4, 1.0, log=True)
    opt = trial.choice("opt", ["adam", "sgd"])
    momentum = trial.float("momentum", 0.0, 0.99) if opt == "sgd" else 0.0
    if x > 4.5:
        raise ValueError("diverged")
    return (x - 1) ** 2 + (math.log10(lr) + 2) ** 2 + momentum + (0.5 if opt == "sgd" else 0.0)


@pytest.fixture(scope="module")
def mixed_study() -> Iterator[selftune.Study]:
    """40 trials (some FAILED), then one trial left RUNNING."""
    study = selftune.create_study(storage="memory", sampler=selftune.RandomSampler(seed=0))
    study.optimize(mixed_objective, trials=40, progress=False, catch=ValueError)
    study.ask()  # left RUNNING
    yield study
    study.close()


@pytest.fixture(scope="module")
def maximize_study() -> Iterator[selftune.Study]:
    study = selftune.create_study(
        storage="memory", direction="maximize", sampler=selftune.RandomSampler(seed=1)
    )
    study.optimize(lambda t: -mixed_objective(t), trials=30, progress=False, catch=ValueError)
    yield study
    study.close()


def curve_objective(trial: selftune.Trial) -> float:
    """A learning curve to step 9 that ASHA can stop; lower is better."""
    rate = trial.float("rate", 0.05, 1.0, log=True)
    floor = trial.float("floor", 0.0, 1.0)
    value = math.inf
    for step in range(1, 10):
        value = floor + math.exp(-rate * step)
        trial.report(value, step)
        if trial.should_stop():
            raise selftune.StopTrial()
    return value


@pytest.fixture(scope="module")
def asha_study() -> Iterator[selftune.Study]:
    study = selftune.create_study(
        storage="memory",
        sampler=selftune.RandomSampler(seed=0),
        scheduler=ASHAScheduler(max_resource=9, reduction_factor=3),
    )
    study.optimize(curve_objective, trials=24, progress=False)
    yield study
    study.close()


@pytest.fixture(scope="module")
def two_worker_study() -> Iterator[tuple[selftune.Study, selftune.Study]]:
    """Two Study handles (two workers) on one storage, taking turns; one trial FAILED."""
    storage = MemoryStorage()
    a = selftune.create_study("shared", storage=storage, sampler=selftune.RandomSampler(seed=0))
    b = selftune.create_study("shared", storage=storage, sampler=selftune.RandomSampler(seed=1))
    for i in range(10):
        study = a if i % 2 == 0 else b
        trial = study.ask()
        x = trial.float("x", 0.0, 1.0)
        if i == 3:
            study.tell(trial, state="FAILED", reason="test")
        else:
            study.tell(trial, x)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def empty_study() -> Iterator[selftune.Study]:
    study = selftune.create_study(storage="memory")
    yield study
    study.close()
