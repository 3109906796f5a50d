"""optimize(workers=k): local worker processes sharing the study through SQLite or PostgreSQL."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import exec_objectives as obj
import pytest

import selftune
from selftune.exceptions import InvalidParameterError
from selftune.execution import ProcessExecutor, WorkerError, explain
from selftune.storage._base import RETRIED_AS_KEY, RETRY_KEY, TRIAL_TIMEOUT, WORKER_DIED
from selftune.trial import TrialState


@pytest.fixture(autouse=True)
def _markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("EXEC_MARKERS", str(markers))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return str(request.getfixturevalue("pg_url"))


def _study(url: str, tmp_path: Path, **kw: object) -> selftune.Study:
    return selftune.create_study(
        f"exec-{time.time_ns()}", storage=url, artifacts=tmp_path / "artifacts",
        sampler=kw.pop("sampler", selftune.RandomSampler(seed=0)), **kw,  # type: ignore[arg-type]
    )


def test_workers_share_the_study_to_its_budget(url: str, tmp_path: Path) -> None:
    study = _study(url, tmp_path)
    seen: list[int] = []
    study.optimize(obj.seeds_and_workers, trials=40, workers=4, progress=False, callbacks=[lambda s, r: seen.append(r.number)])
    trials = study.trials
    assert len(trials) == 40 and all(t.state is TrialState.COMPLETE for t in trials)
    assert sorted(seen) == list(range(40))  # callbacks run in the driver, once per trial
    pids = {t.user_attrs["pid"] for t in trials}
    assert os.getpid() not in pids  # trials ran in worker processes, not here
    assert {t.worker.rsplit(":", 2)[1] for t in trials} == {str(p) for p in pids}
    xs = [t.params["x"] for t in trials]
    assert len(set(xs)) == 40  # under one seed, parallel workers still propose distinct points
    assert study.best_value == min(xs)
    # rerunning the same call with the budget met starts nothing
    study.optimize(obj.seeds_and_workers, trials=40, workers=4, progress=False)
    assert len(study.trials) == 40


def test_every_proposal_is_explained_by_what_its_worker_saw(url: str, tmp_path: Path) -> None:
    space = selftune.Space({"x": selftune.Float(0.0, 1.0)})
    study = _study(url, tmp_path, space=space, sampler=obj.SumOfSeenSampler())
    study.optimize(obj.noisy_value, trials=40, workers=4, progress=False)
    overlapped = 0
    for trial in study.trials:
        p = explain(study, trial.number)
        assert p.worker == trial.worker and all(r.number != trial.number for r in p.complete + p.pending)
        # the sampler's proposal is a function of exactly which results and pending trials it saw
        expected = (sum(float(r.value) for r in p.complete) + 0.5 * len(p.pending)) % 1.0
        gap = abs(expected - trial.params["x"])
        assert min(gap, 1.0 - gap) < 1e-9, f"trial {trial.number}: its explanation does not reproduce its proposal"
        assert all(r.finished_at <= p.at for r in p.complete)
        overlapped += bool(p.pending)
    assert overlapped >= 10  # workers really proposed while others ran (each trial takes 0.1-0.2 s)


def test_lambda_and_closure_objectives_travel(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    offset = 0.25
    study.optimize(lambda t: (t.float("x", 0, 1) - offset) ** 2, trials=6, workers=2, progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6


def test_dead_worker_fails_its_trial_at_once_and_the_retry_resumes_from_its_checkpoint(url: str, tmp_path: Path) -> None:
    # grace period 60 s: only the driver's own check (not the reaper) can fail the trial this fast
    study = _study(url, tmp_path, heartbeat_interval=5.0, grace_period=60.0)
    start = time.monotonic()
    study.optimize(obj.crash_in_trial_3, trials=8, workers=2, retries=1, progress=False)
    assert time.monotonic() - start < 50
    trials = study.trials
    dead = trials[3]
    assert dead.state is TrialState.FAILED and dead.reason.startswith(WORKER_DIED) and "SIGKILL" in dead.reason
    retry = trials[dead.system_attrs[RETRIED_AS_KEY]]
    assert retry.fixed[RETRY_KEY] == {"of": 3, "previous": 3, "attempt": 2}
    assert retry.state is TrialState.COMPLETE and retry.params == dead.params and retry.seed == dead.seed
    assert retry.user_attrs["resumed_from"] == 2  # it went on from the checkpoint of step 2
    assert sorted(retry.intermediate) == [0, 1, 2, 3, 4] and retry.intermediate[2] == dead.intermediate[2]
    # the retried failure does not count against the budget: 8 trials plus the one that died
    assert len(trials) == 9 and sum(t.state is TrialState.COMPLETE for t in trials) == 8


def test_hung_trial_is_killed_after_trial_timeout_and_retried(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    start = time.monotonic()
    study.optimize(obj.hang_once, trials=6, workers=2, retries=1, trial_timeout=2.0, progress=False)
    assert time.monotonic() - start < 60  # not the 300 s the hang would take
    hung = study.trials[2]
    assert hung.state is TrialState.FAILED and hung.reason.startswith(TRIAL_TIMEOUT) and "2 s" in hung.reason
    retry = study.trials[hung.system_attrs[RETRIED_AS_KEY]]
    assert retry.state is TrialState.COMPLETE and retry.params == hung.params
    assert sum(t.state is TrialState.COMPLETE for t in study.trials) == 6


def test_trial_timeout_in_one_process(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)

    def sometimes_slow(trial: selftune.Trial) -> float:
        x = trial.float("x", 0, 1)
        if trial.number == 1:
            time.sleep(30)
        return x

    study.optimize(sometimes_slow, trials=3, trial_timeout=0.5, progress=False)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE]
    assert study.trials[1].reason.startswith(TRIAL_TIMEOUT)


def test_objective_error_stops_the_run_and_names_the_trial(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    with pytest.raises(WorkerError, match=r"KeyError in trial 2 .*no such column") as info:
        study.optimize(obj.raise_in_trial_2, trials=50, workers=2, progress=False)
    assert "raise_in_trial_2" in str(info.value)  # the worker's traceback comes along
    trials = study.trials
    assert trials[2].state is TrialState.FAILED and "KeyError" in trials[2].reason
    assert len(trials) < 50 and not any(t.state is TrialState.RUNNING for t in trials)


def test_caught_errors_fail_the_trial_and_the_workers_go_on(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    study.optimize(obj.value_error_sometimes, trials=12, workers=2, catch=ValueError, retries=3, progress=False)
    trials = study.trials
    assert len(trials) == 12
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert {t.number for t in failed} == {0, 3, 6, 9}
    assert all("ValueError: diverged" in t.reason and RETRIED_AS_KEY not in t.system_attrs for t in failed)


def test_memory_limit_fails_the_trial_not_the_worker(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    executor = ProcessExecutor(2, memory_limit=2 * 2**30)
    study.optimize(obj.eat_memory_in_trial_1, trials=6, executor=executor, progress=False)
    trials = study.trials
    assert trials[1].state is TrialState.FAILED and "MemoryError" in trials[1].reason
    assert [t.state for t in trials if t.number != 1] == [TrialState.COMPLETE] * 5


def test_bad_setups_are_clear_errors(tmp_path: Path) -> None:
    mem = selftune.create_study("m", storage="memory")
    with pytest.raises(InvalidParameterError, match="share the study through its storage"):
        mem.optimize(obj.quadratic, trials=2, workers=2, progress=False)
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    lock = threading.Lock()

    def holds_a_lock(trial: selftune.Trial) -> float:
        with lock:
            return trial.float("x", 0, 1)

    with pytest.raises(InvalidParameterError, match="holds_a_lock.*cannot be pickled"):
        study.optimize(holds_a_lock, trials=2, workers=2, progress=False)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidParameterError, match="`workers`"):
            study.optimize(obj.quadratic, trials=2, workers=bad, progress=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="`retries`"):
        study.optimize(obj.quadratic, trials=2, retries=-1, progress=False)
    with pytest.raises(InvalidParameterError, match="`trial_timeout`"):
        study.optimize(obj.quadratic, trials=2, trial_timeout=float("inf"), progress=False)
    with pytest.raises(InvalidParameterError, match="`executor`"):
        study.optimize(obj.quadratic, trials=2, executor="threads", progress=False)  # type: ignore[arg-type]
    assert study.trials == []  # nothing started


def test_study_stop_from_a_callback_stops_the_workers(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 's.db'}", tmp_path)

    def stop_after_5(s: selftune.Study, record: object) -> None:
        if len([t for t in s.trials if t.state.finished]) >= 5:
            s.stop()

    study.optimize(obj.slow, trials=500, workers=2, callbacks=[stop_after_5], progress=False)
    trials = study.trials  # each trial takes 0.3 s: all 500 would take over a minute
    assert 5 <= len(trials) < 100 and all(t.state is TrialState.COMPLETE for t in trials)


@pytest.mark.parametrize("sent", [b"", b"\x00\x00\x00"])
def test_a_worker_whose_driver_died_before_sending_its_spec_exits_quietly(sent: bytes) -> None:
    """A driver killed between starting a worker process and writing its spec leaves it end of input: the
    worker says so in one line and exits 0, with no traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "selftune.execution._child"], input=sent, capture_output=True, timeout=60
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "before sending the worker spec" in err
