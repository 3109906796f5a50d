"""The dashboard's fast read of an SQL storage gives exactly what ``read_trials`` gives."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import add_pbt_trials, make_client, study_id

import selftune
from selftune.storage import MemoryStorage, _fastread, get_storage
from selftune.storage._fastread import read_trials_fast, trial_reader
from selftune.trial import TrialState


def objective(trial: selftune.Trial) -> float:
    """Every kind of parameter, user attributes, a curve; some trials fail with a traceback."""
    x = trial.float("x", -1.0, 1.0)
    trial.int("k", 1, 9)
    trial.choice("opt", ["adam", "sgd", None, 3, True, "ünïcode \"quoted\""])
    trial.set_attr("tags", {"a": [1, 2], "b": "<b>"})
    for step in range(3):
        trial.report(x + step, step)
    if x > 0.6:
        raise ValueError("too big")
    return math.inf if x < -0.9 else x * x


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQL storage: a study of 40 mixed trials (one enqueued with fixed values, one RUNNING) and a study of
    6 PBT members (lineage and schedules in their system attributes)."""
    url = f"sqlite:///{tmp_path / 'fast.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with selftune.create_study("mixed", storage=url, sampler=selftune.RandomSampler(seed=0)) as study:
        study.enqueue({"x": 0.25, "k": 2, "opt": None})
        study.optimize(objective, trials=40, progress=False, catch=ValueError)
        running = study.ask()
        running.float("x", -1.0, 1.0)
    with selftune.create_study("pop", storage=url, direction="maximize") as pop:
        add_pbt_trials(pop.storage, "pop", 6, 8)
    return url


def _all(storage: Any, name: str) -> tuple[Any, Any]:
    sid = storage.get_study(name).id
    return read_trials_fast(storage, sid, 0), storage.read_trials(sid, 0)


@pytest.mark.parametrize("aggregate", [True, False], ids=["params-aggregated", "params-as-rows"])
def test_same_records_as_read_trials(url: str, aggregate: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not aggregate:  # as with an SQLite without JSON functions
        monkeypatch.setitem(_fastread._aggregate_ok, url.split(":")[0].split("+")[0], False)
    storage = get_storage(url)
    for name in ("mixed", "pop"):
        (fast, fast_cursor), (slow, slow_cursor) = _all(storage, name)
        assert fast == slow and fast_cursor == slow_cursor and len(fast) == (41 if name == "mixed" else 6)
    (mixed, _), _ = _all(storage, "mixed")
    states = {r.state for r in mixed}
    assert {TrialState.COMPLETE, TrialState.FAILED, TrialState.RUNNING} <= states
    assert mixed[0].fixed == {"x": 0.25, "k": 2, "opt": None} and mixed[0].params["opt"] is None
    assert any(r.traceback and "too big" in r.traceback for r in mixed)
    assert any(r.value == math.inf for r in mixed)
    (pop, _), _ = _all(storage, "pop")
    assert any(r.lineage for r in pop)
    storage.close()


def test_incremental_reads_match(url: str) -> None:
    storage = get_storage(url)
    sid = storage.get_study("mixed").id
    _, cursor = storage.read_trials(sid, 0)
    assert read_trials_fast(storage, sid, cursor) == ([], cursor)  # nothing new
    with selftune.load_study("mixed", storage=url, sampler=selftune.RandomSampler(seed=5)) as study:
        study.optimize(objective, trials=45, progress=False, catch=ValueError)
    fast, fast_cursor = read_trials_fast(storage, sid, cursor)
    slow, slow_cursor = storage.read_trials(sid, cursor)
    assert fast == slow and fast_cursor == slow_cursor > cursor
    assert [r.number for r in fast] == list(range(41, 45))
    storage.close()


def test_other_storages_use_read_trials() -> None:
    storage = MemoryStorage()
    assert trial_reader(storage) == storage.read_trials


def test_dashboard_on_sqlite_shows_what_the_storage_holds(url: str) -> None:
    storage = get_storage(url)
    client = make_client(storage)
    sid = study_id(client, "mixed")
    doc = client.get(f"/api/studies/{sid}").json()
    assert doc["n_trials"] == 41 and doc["counts"]["RUNNING"] == 1
    rows = client.get(f"/api/studies/{sid}/trials", params={"limit": 500}).json()["trials"]
    truth = storage.read_trials(sid, 0)[0]
    assert [(r["number"], r["state"], r["params"]) for r in rows] == [
        (t.number, t.state.value, dict(t.params)) for t in truth]
    one = client.get(f"/api/studies/{sid}/trials/3").json()["trial"]
    assert one["user_attrs"] == {"tags": {"a": [1, 2], "b": "<b>"}} and one["curve"]["n_reports"] == 3
    storage.close()
