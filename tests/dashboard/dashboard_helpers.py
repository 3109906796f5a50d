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


# -- population based training -------------------------------------------------------------------------------
PBT_STEPS = 16


def pbt_objective(trial: selftune.Trial) -> float:
    """A toy PBT member: ``x`` grows by ``h`` per step in the first half, by ``1 - h`` in the second; its
    checkpoint is ``x`` and the step as JSON."""
    import json

    trial.float("h", 0.0, 1.0)
    x, start = 0.0, 0
    ck = trial.load_checkpoint()
    if ck is not None:
        state = json.loads(ck)
        x, start = state["x"], state["step"] + 1
    for step in range(start, PBT_STEPS):
        h = trial.params["h"]
        x += h if step < PBT_STEPS // 2 else 1.0 - h
        trial.report(x, step)
        if trial.should_stop():
            trial.save_checkpoint(json.dumps({"x": x, "step": step}).encode(), step=step)
            raise selftune.StopTrial()
    return x


def pbt_study(name: str, storage: Storage | str, members: int = 6) -> selftune.Study:
    """A new PBT study of ``members`` toy members (maximised), nothing run yet; the caller closes it."""
    pbt = selftune.PopulationBasedTraining(population_size=members, interval=2, hyperparams=["h"],
                                           max_step=PBT_STEPS - 1, seed=3)
    return selftune.create_study(name, storage=storage, direction="maximize", scheduler=pbt,
                                 sampler=selftune.RandomSampler(seed=0))


def make_pbt_study(name: str, storage: Storage | str, members: int = 6) -> selftune.Study:
    """A finished PBT study of ``members`` toy members (maximised), with exploits; the caller closes it."""
    study = pbt_study(name, storage, members)
    study.optimize(pbt_objective, trials=members, progress=False)
    return study


def add_pbt_trials(storage: Storage, name: str, n: int, steps: int) -> None:
    """``n`` COMPLETE members of ``steps`` reports written straight through the storage API, each (but the
    first) taking over the previous member's weights half way: a big population without running PBT."""
    from selftune.schedule import PBT_ATTR

    info = storage.get_study(name)
    storage.define_param(info.id, "h", {"kind": "float", "low": 0.0, "high": 1.0})
    half = steps // 2
    for i in range(n):
        h = (i % 10) / 10
        r = storage.start_trial(info.id, "w", {"h": h}, claim=False)
        for step in range(half):
            storage.report(info.id, r.number, step, h * step)
        if i:
            storage.pause_trial(info.id, r.number)
            new = {"h": 1.0 - h}
            attrs = {"schedule": [[0, {"h": ((i - 1) % 10) / 10}], [half, new]], "own": [[0, {"h": h}], [half, new]],
                     "lineage": [{"step": half, "source": i - 1, "source_step": half - 1, "params": new}]}
            storage.resume_trial(info.id, r.number, "w", params=new, system_attrs={PBT_ATTR: attrs})
        for step in range(half, steps):
            storage.report(info.id, r.number, step, h * half + (1 - h) * (step - half) + i * 1e-3)
        storage.finish_trial(info.id, r.number, TrialState.COMPLETE, h * half + (1 - h) * (steps - 1 - half))
