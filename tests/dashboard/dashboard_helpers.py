"""Helpers for the dashboard and report tests: clients, study ids, fast fills through the storage API."""

from __future__ import annotations

import math
import warnings
from typing import Any

import selftune
from selftune.dashboard import create_app
from selftune.storage import Storage
from selftune.trial import TrialState

with warnings.catch_warnings():  # starlette's TestClient warns that httpx will be replaced one day
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BASE_URL = "http://127.0.0.1:8080"
TOKEN = "s3cret-token"


def objective(trial: selftune.Trial) -> float:
    """x and a log-scaled lr, a categorical opt; a short curve; x > 4 fails."""
    x = trial.float("x", -5.0, 5.0)
    lr = trial.float("lr", 1e-4, 1.0, log=True)
    opt = trial.choice("opt", ["adam", "sgd"])
    if x > 4.0:
        raise ValueError("diverged")
    value = (x - 1) ** 2 + (math.log10(lr) + 2) ** 2 + (0.5 if opt == "sgd" else 0.0)
    for step in range(1, 4):
        trial.report(value + 1.0 / step, step)
    trial.set_attr("note", "<b>not html</b>")
    return value


def fill(study: selftune.Study, n: int) -> None:
    study.optimize(objective, trials=len(study.trials) + n, progress=False, catch=ValueError)


def make_client(storage: Storage, **options: Any) -> TestClient:
    options.setdefault("preload", False)
    return TestClient(create_app(storage, **options), base_url=BASE_URL)


def study_id(client: TestClient, name: str) -> int:
    found = [s["id"] for s in client.get("/api/studies").json()["studies"] if s["name"] == name]
    assert len(found) == 1, found
    return found[0]


def add_trials(storage: Storage, name: str, n: int, *, curve: int = 0, seed: int = 0) -> None:
    """``n`` finished trials written straight through the storage API (fast: no sampler)."""
    import random

    rng = random.Random(seed)
    info = storage.get_study(name)
    storage.define_param(info.id, "x", {"kind": "float", "low": -5.0, "high": 5.0})
    storage.define_param(info.id, "k", {"kind": "int", "low": 1, "high": 8})
    for i in range(n):
        x, k = rng.uniform(-5, 5), rng.randint(1, 8)
        r = storage.start_trial(info.id, f"w{i % 3}", {"x": x, "k": k}, claim=False)
        for step in range(curve):
            storage.report(info.id, r.number, step, x * x + 1.0 / (step + 1))
        if i % 97 == 5:
            storage.finish_trial(info.id, r.number, TrialState.FAILED, reason="boom")
        elif curve and i % 5 == 0:
            storage.finish_trial(info.id, r.number, TrialState.STOPPED, x * x + 0.5, reason="asha")
        else:
            storage.finish_trial(info.id, r.number, TrialState.COMPLETE, x * x + 0.1 * k)
