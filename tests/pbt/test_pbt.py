"""Population based training end to end: exploit/explore, schedules, lineage, replay, workers, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pbt_toy
import pytest
from pbt_toy import EVENTS, STEPS, objective, pbt

import selftune
from selftune import Choice, Float, Int, TrialState
from selftune.exceptions import CheckpointError, InvalidParameterError
from selftune.history import History
from selftune.schedulers import Action, Decision, Scheduler
from selftune.schedulers.pbt import perturb
from selftune.trial import TrialRecord


def run_toy(storage: str = "memory", name: str = "toy", **kw: Any) -> selftune.Study:
    study = selftune.create_study(
        name, storage=storage, direction="maximize", scheduler=pbt(**kw), sampler=selftune.RandomSampler(seed=0)
    )
    study.optimize(objective, trials=8, progress=False)
    return study


def in_bounds(value: float) -> bool:
    return 0.0 <= value <= 1.0


# -- explore ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "value", "factor", "expected"),
    [
        (Float(0.0, 1.0), 0.9, 1.2, 1.0),  # clipped to the bound (the reference code forgets this)
        (Float(0.0, 1.0), 0.5, 0.8, 0.4),
        (Float(1e-5, 1e-1, log=True), 0.09, 1.2, 0.1),
        (Float(0.0, 1.0, step=0.25), 0.5, 1.2, 0.5),  # 0.6 snaps back to the grid
        (Float(0.0, 1.0, step=0.25), 0.75, 1.2, 1.0),
        (Int(1, 10), 2, 1.2, 3),  # an integer moves at least one step
        (Int(1, 10), 2, 0.8, 1),
        (Int(1, 10), 10, 1.2, 10),
        (Int(0, 100, step=10), 50, 1.2, 60),
        (Choice([16, 32, 64, 128]), 32, 1.2, 64),  # numeric choices move to a neighbour
        (Choice([16, 32, 64, 128]), 16, 0.8, 16),
        (Choice(["adam", "sgd"]), "sgd", 1.2, "sgd"),  # no order: only resampling changes it
    ],
)
def test_perturb_stays_in_the_domain(param: Any, value: Any, factor: float, expected: Any) -> None:
    got = perturb(param, value, factor)
    assert got == pytest.approx(expected) if isinstance(expected, float) else got == expected
    param.validate(got, "p")


def test_explore_values_always_valid() -> None:
    domains = {"lr": Float(1e-4, 1.0, log=True), "wd": Float(0.0, 0.1), "bs": Int(16, 256, log=True),
               "opt": Choice(["adam", "sgd"])}
    scheduler = selftune.PopulationBasedTraining(4, 2, ["lr", "wd", "bs", "opt"])
    rng = np.random.default_rng(0)
    params = {"lr": 1.0, "wd": 0.1, "bs": 256, "opt": "adam", "width": 64}
    changed = set()
    for _ in range(300):
        new = scheduler.explore(params, domains, rng)
        for k, d in domains.items():
            d.validate(new[k], k)
        assert new["width"] == 64  # not a hyperparameter PBT may change
        changed |= {k for k in domains if new[k] != params[k]}
        params = new
    assert changed == set(domains)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"population_size": 1}, "population_size"),
        ({"interval": 0}, "interval"),
        ({"hyperparams": []}, "hyperparams"),
        ({"hyperparams": "lr"}, "hyperparams"),
        ({"quantile": 0.6}, "quantile"),
        ({"quantile": 0.0}, "quantile"),
        ({"resample_probability": 1.5}, "resample_probability"),
        ({"factors": (0.8, -1.0)}, "factors"),
    ],
)
def test_bad_arguments_are_named(kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"population_size": 4, "interval": 2, "hyperparams": ["lr"]}
    args.update(kw)
    with pytest.raises(InvalidParameterError, match=match):
        selftune.PopulationBasedTraining(**args)


def test_window_ranks_members_on_their_recent_mean() -> None:
    """A member whose value spiked at the ready step is first on that value alone, and last on the mean of its
    last 3 reports: with ``window=3`` it is the one that copies a better member, not the one copied."""
    curves = {0: {1: 0.9, 2: 0.9, 3: 0.1}, 1: {1: 0.3, 2: 0.3, 3: 0.3}, 2: {1: 0.4, 2: 0.4, 3: 0.4},
              3: {1: 0.5, 2: 0.5, 3: 0.5}}
    records = [TrialRecord(number=n, state=TrialState.PAUSED, intermediate=c, params={"lr": 0.01})
               for n, c in curves.items()]
    history = History(records, params={"lr": Float(1e-4, 1e-1, log=True)})

    def exploits(window: int) -> dict[int, int]:
        pbt_ = selftune.PopulationBasedTraining(4, 3, ["lr"], window=window)
        out = pbt_.on_paused(history, final=False)
        return {n: int(d.source) for n, d in out.items() if d.action is Action.EXPLOIT}

    assert exploits(1) == {3: 0}
    assert exploits(3) == {0: 1}
    with pytest.raises(InvalidParameterError, match="window"):
        selftune.PopulationBasedTraining(4, 3, ["lr"], window=0)


# -- the toy problem with a known optimal schedule -------------------------------------------------------------
@pytest.mark.parametrize("synchronous", [False, True])
def test_pbt_learns_a_schedule_better_than_any_constant(synchronous: bool) -> None:
    study = run_toy(synchronous=synchronous)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 8
    best = study.best
    # the best constant h reaches STEPS / 2; the optimal schedule reaches STEPS
    assert best.value > 0.55 * STEPS
    assert len(best.schedule) > 1 and best.lineage
    # the schedule it learned goes from high h to low h, like the optimal one
    first, last = best.schedule.at(0)["h"], best.schedule.at(STEPS - 1)["h"]
    assert first > 0.5 > last
    for t in study.trials:
        for _, params in t.schedule:
            assert in_bounds(params["h"])
        assert t.params == t.schedule.at(STEPS - 1)  # the record's params are the last segment's


def test_exploit_copies_exactly_the_sources_weights_and_lineage_matches() -> None:
    EVENTS.clear()
    study = run_toy()
    saves = {(e[1], e[2]): e[3] for e in EVENTS if e[0] == "save"}
    loads = [(e[1], e[2]) for e in EVENTS if e[0] == "load"]
    exploits = 0
    for t in study.trials:
        own_loads = [state for number, state in loads if number == t.number]
        for entry in t.lineage:
            if entry.source == t.number:
                continue
            exploits += 1
            # the load right after this exploit is the source's checkpoint of source_step, byte for byte
            taken = [s for s in own_loads if s["owner"] == entry.source and s["step"] == entry.source_step]
            assert taken, (t.number, entry)
            assert taken[0] == saves[(entry.source, entry.source_step)]
            assert entry.source_step >= entry.step  # never an older checkpoint than its own step
        if t.lineage:  # the schedule it ends with goes on from its last exploit with that exploit's values
            last = t.lineage[-1]
            assert t.schedule.at(last.source_step + 1) == last.params
            assert t.schedule.changes[-1] == last.source_step + 1
    assert exploits >= 3


def test_replaying_the_best_schedule_reproduces_its_value() -> None:
    study = run_toy()
    best = study.best
    replay = selftune.create_study(
        storage="memory", direction="maximize", scheduler=selftune.ScheduleReplay(best),
        sampler=selftune.RandomSampler(seed=0),
    )
    replay.enqueue(best.schedule.at(0))
    replay.optimize(objective, trials=1, progress=False)
    assert replay.best.value == pytest.approx(best.value, abs=1e-9)
    assert replay.best.schedule == best.schedule


def test_pbt_is_deterministic_under_a_seed() -> None:
    a, b = run_toy(seed=5), run_toy(seed=5)
    assert [(t.value, t.schedule) for t in a.trials] == [(t.value, t.schedule) for t in b.trials]


def test_pbt_without_checkpoints_is_a_clear_error() -> None:
    def forgetful(trial: selftune.Trial) -> float:
        h = trial.float("h", 0.0, 1.0)
        for step in range(STEPS):
            trial.report(h * step, step)
            if trial.should_stop():
                raise selftune.StopTrial()
        return h * STEPS

    study = selftune.create_study(storage="memory", direction="maximize", scheduler=pbt())
    with pytest.raises(CheckpointError, match=r"save_checkpoint\(\{\.\.\.\}\) before raising StopTrial"):
        study.optimize(forgetful, trials=8, progress=False)
    assert study.trials[0].state is TrialState.FAILED
    assert "without a checkpoint" in (study.trials[0].reason or "")


def test_reserved_names_are_refused() -> None:
    study = selftune.create_study(storage="memory")
    trial = study.ask()
    with pytest.raises(InvalidParameterError, match="reserved"):
        trial.float("selftune:lr", 0.0, 1.0)
    with pytest.raises(InvalidParameterError, match="reserved"):
        trial.set_attr("selftune:pbt", {})


def test_a_custom_scheduler_may_exploit_on_a_report() -> None:
    """EXPLOIT returned by on_report is carried out by optimize() at once, on the same worker."""

    class CopyTrialZero(Scheduler):
        def on_report(self, trial: TrialRecord, history: History) -> Decision:
            if trial.number == 1 and trial.last_step == 5 and not trial.lineage:
                return Decision.exploit(0, {"h": 0.25}, "copy trial 0")
            return Decision(Action.CONTINUE)

    loaded: list[Any] = []

    def obj(trial: selftune.Trial) -> float:
        trial.float("h", 0.0, 1.0)
        ck = trial.load_checkpoint()
        x, start = (json.loads(ck)["x"], trial.resume_step + 1) if ck else (0.0, 0)
        loaded.append((trial.number, ck))
        for step in range(start, 10):
            x += trial.params["h"]
            trial.report(x, step)
            trial.save_checkpoint(json.dumps({"x": x}).encode(), step=step)
            if trial.should_stop():
                raise selftune.StopTrial()
        return x

    study = selftune.create_study(storage="memory", scheduler=CopyTrialZero())
    study.enqueue({"h": 1.0})
    study.enqueue({"h": 0.5})
    study.optimize(obj, trials=2, progress=False)
    t1 = study.trials[1]
    assert t1.state is TrialState.COMPLETE
    (entry,) = t1.lineage
    assert (entry.step, entry.source, entry.source_step) == (5, 0, 9)  # trial 0's newest checkpoint
    assert loaded[-1] == (1, json.dumps({"x": 10.0}).encode())
    assert t1.params == {"h": 0.25} and t1.schedule.at(0) == {"h": 1.0}  # inherited from trial 0
    assert t1.value == pytest.approx(10.0)  # resumed past step 9: nothing left to train


# -- several workers, resume -------------------------------------------------------------------------------------
def test_two_workers_share_the_population(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    selftune.create_study("pop", storage=url, direction="maximize")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            study = selftune.load_study("pop", storage=url, scheduler=pbt(synchronous=i == 0),
                                        sampler=selftune.RandomSampler(seed=0))
            study.optimize(objective, trials=8, progress=False)
            study.close()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    study = selftune.load_study("pop", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 8
    best = study.best
    assert best.value > 0.55 * STEPS
    replayed = selftune.protocol.evaluate(objective, [best], seeds=[10**6], direction="maximize")
    assert replayed[0].values[0] == pytest.approx(best.value, abs=1e-9)


def test_a_stopped_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    reference = run_toy(seed=7)
    study = selftune.create_study("r", storage=url, direction="maximize", scheduler=pbt(seed=7),
                                  sampler=selftune.RandomSampler(seed=0))
    calls = {"n": 0}

    def interrupted(trial: selftune.Trial) -> float:
        calls["n"] += 1
        if calls["n"] == 20:
            study.stop()  # after this trial run, the driver stops: a crash between two runs
        return objective(trial)

    study.optimize(interrupted, trials=8, progress=False)
    assert any(t.state is TrialState.PAUSED for t in study.trials)
    study.close()
    again = selftune.load_study("r", storage=url, scheduler=pbt(seed=7), sampler=selftune.RandomSampler(seed=0))
    again.optimize(objective, trials=8, progress=False)
    assert [(t.value, t.schedule) for t in again.trials] == [(t.value, t.schedule) for t in reference.trials]


@pytest.mark.postgres
def test_pbt_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    study = selftune.create_study(
        "pg", storage=pg_url, direction="maximize", scheduler=pbt(), sampler=selftune.RandomSampler(seed=0),
        artifacts=tmp_path / "ckpt",
    )
    study.optimize(objective, trials=8, progress=False)
    memory = run_toy()
    assert [(t.value, t.schedule) for t in study.trials] == [(t.value, t.schedule) for t in memory.trials]
    assert pbt_toy.STEPS == STEPS


# -- a worker killed in the middle of an exploit ------------------------------------------------------------
def _kill_mid_exploit(tmp_path: Path, mode: str) -> tuple[str, selftune.Study]:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    selftune.create_study("k", storage=url, direction="maximize")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "pbt_kill_worker.py"), url, "k", mode],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    return url, selftune.load_study("k", storage=url)


def _own_weights(study: selftune.Study, number: int) -> dict[str, Any]:
    from selftune.storage.artifacts import ArtifactStore

    assert study.artifacts is not None
    store = ArtifactStore(study.artifacts, study._id)
    found = store.latest(number)
    assert found is not None
    return dict(json.loads(store.load(found)))


def _finish_and_check(url: str, **heartbeat: float) -> selftune.Study:
    # the reaper's grace period must be long enough that a live worker on a loaded machine is never reaped
    study = selftune.load_study("k", storage=url, scheduler=pbt(), sampler=selftune.RandomSampler(seed=0),
                                **heartbeat)
    study.optimize(objective, trials=8, progress=False)
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAILED) for t in study.trials)
    best = study.best
    replay = selftune.protocol.evaluate(objective, [best], seeds=[10**6], direction="maximize")
    assert replay[0].values[0] == pytest.approx(best.value, abs=1e-9)  # its schedule matches its weights
    assert study.artifacts is not None
    return study


def test_killed_after_copying_leaves_the_trial_paused_and_intact(tmp_path: Path) -> None:
    url, study = _kill_mid_exploit(tmp_path, "stage")
    (victim,) = [t for t in study.trials if t.state is TrialState.PAUSED and list(
        (study.artifacts / f"study-{study._id}" / f"trial-{t.number}").glob(".stage-*"))]  # type: ignore[operator]
    assert victim.lineage == [] and victim.schedule == selftune.Schedule.constant(victim.params)
    own = _own_weights(study, victim.number)
    assert own["owner"] == victim.number and own["step"] == victim.last_step  # the staged copy is invisible
    study.close()
    done = _finish_and_check(url)
    assert [t.state for t in done.trials] == [TrialState.COMPLETE] * 8
    assert not list(done.artifacts.glob("*/*/.stage-*"))  # type: ignore[union-attr]


def test_killed_after_recording_the_exploit_fails_the_trial_cleanly(tmp_path: Path) -> None:
    url, study = _kill_mid_exploit(tmp_path, "commit")
    (victim,) = [t for t in study.trials if t.state is TrialState.RUNNING]
    (entry,) = victim.lineage  # recorded with its new parameters in one transaction
    assert victim.params == entry.params
    own = _own_weights(study, victim.number)
    assert own["owner"] == victim.number  # the copy was never renamed into place: no mixed-up checkpoint
    deadline = time.monotonic() + 60
    while study.get_trial(victim.number).state is TrialState.RUNNING and time.monotonic() < deadline:
        study.storage.reap(study._id, 2.0)  # what the reaper does, with a 2 s grace period
        time.sleep(0.2)
    study.close()
    done = _finish_and_check(url)
    failed = done.get_trial(victim.number)
    assert failed.state is TrialState.FAILED and "heartbeat" in (failed.reason or "")
    assert failed.lineage == victim.lineage
    assert sum(t.state is TrialState.COMPLETE for t in done.trials) == 7
