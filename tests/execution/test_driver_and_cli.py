"""The driver killed and rerun; `selftune run --workers` and `selftune worker` joining from elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import selftune
from selftune.trial import TrialState

HERE = Path(__file__).parent

DRIVER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {here!r})
    import selftune, exec_objectives
    study = selftune.create_study("driven", storage={url!r}, sampler=selftune.RandomSampler(seed=0))
    study.optimize(exec_objectives.slow, trials=30, workers=2, progress=False)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_killed_driver_rerun_resumes_to_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(here=str(HERE), url=url))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.monotonic() + 120
    done = 0
    while done < 8:
        assert time.monotonic() < deadline and proc.poll() is None, "the driver ended before it was killed"
        time.sleep(0.2)
        try:
            done = sum(t.state is TrialState.COMPLETE for t in selftune.load_study("driven", storage=url).trials)
        except selftune.exceptions.StudyNotFoundError:
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its workers notice (their stdin closes), finish the trial in hand and exit: nothing is left RUNNING
    study = selftune.load_study("driven", storage=url)
    pids = {int(t.worker.split(":")[1]) for t in study.trials if t.worker}
    while any(_alive(p) for p in pids) or any(t.state is TrialState.RUNNING for t in study.trials):
        assert time.monotonic() < deadline, "orphaned workers kept running"
        time.sleep(0.1)
    before = study.trials
    assert 8 <= len(before) < 30 and all(t.state is TrialState.COMPLETE for t in before)
    # the same command again resumes the study to its budget, redoing nothing
    rerun = subprocess.run([sys.executable, str(script)], env=env, timeout=120)
    assert rerun.returncode == 0
    after = selftune.load_study("driven", storage=url).trials
    assert [t.number for t in after] == list(range(30)) and all(t.state is TrialState.COMPLETE for t in after)
    assert [(t.params, t.value) for t in after[: len(before)]] == [(t.params, t.value) for t in before]


OBJECTIVE = textwrap.dedent(
    """
    import os, time

    def objective(trial):
        x = trial.float("x", -3.0, 3.0)
        trial.set_attr("pid", os.getpid())
        time.sleep(0.02)
        return (x - 1.0) ** 2
    """
)

SPEC = textwrap.dedent(
    """
    study: joined
    storage: {url}
    trials: 6
    sampler: {{name: random, seed: 0}}
    objective: obj_mod:objective
    test_seeds: 0
    workers: 2
    retries: 1
    """
)


def _selftune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "selftune", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
def test_run_with_workers_then_a_worker_joins_from_elsewhere(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "obj_mod.py").write_text(OBJECTIVE)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    (project / "spec.yaml").write_text(SPEC.format(url=url))
    first = _selftune("run", "spec.yaml", "--no-progress", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "2 workers" in first.stdout
    study = selftune.load_study("joined", storage=url)
    trials = study.trials
    assert len(trials) == 6 and all(t.state is TrialState.COMPLETE for t in trials)
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials}  # run in worker processes
    # another directory, as on another machine: the stored run says what to import and from where
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    joined = _selftune("worker", "joined", "--storage", url, "--trials", "10", "--no-progress", cwd=elsewhere)
    assert joined.returncode == 0, joined.stderr
    trials = selftune.load_study("joined", storage=url).trials
    assert len(trials) == 10 and all(t.state is TrialState.COMPLETE for t in trials)
    assert "selftune:run" not in study.user_attrs  # selftune's own study attributes are not the user's


@pytest.mark.slow
def test_worker_needs_an_objective_for_a_study_not_started_by_run(tmp_path: Path) -> None:
    (tmp_path / "obj_mod.py").write_text(OBJECTIVE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    selftune.create_study("plain", storage=url).close()
    missing = _selftune("worker", "plain", "--storage", url, "--no-progress", cwd=tmp_path)
    assert missing.returncode == 1 and "pass --objective module:function" in missing.stderr
    no_budget = _selftune("worker", "plain", "--storage", url, "--objective", "obj_mod:objective", cwd=tmp_path)
    assert no_budget.returncode == 1 and "--trials" in no_budget.stderr
    ok = _selftune(
        "worker", "plain", "--storage", url, "--objective", "obj_mod:objective", "--trials", "3", "--no-progress",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(selftune.load_study("plain", storage=url).trials) == 3


SLOW_OBJECTIVE = OBJECTIVE + textwrap.dedent(
    """
    def slow(trial):
        x = trial.float("x", -3.0, 3.0)
        time.sleep(2.5)
        return x * x
    """
)

BEAT_SPEC = textwrap.dedent(
    """
    study: beating
    storage: {url}
    trials: 1
    sampler: {{name: random, seed: 0}}
    objective: obj_mod:objective
    test_seeds: 0
    heartbeat_interval: 0.2
    grace_period: 1.0
    """
)


@pytest.mark.slow
def test_worker_beats_as_the_run_stored(tmp_path: Path) -> None:
    """`selftune worker` takes the heartbeat interval and grace period `selftune run` stored: its 2.5 s trial
    beats every 0.2 s, so a process reaping with the study's 1 s grace leaves it alone (with the library's
    10 s interval it would be reaped as lost after 1 s)."""
    import threading

    (tmp_path / "obj_mod.py").write_text(SLOW_OBJECTIVE)
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    (tmp_path / "spec.yaml").write_text(BEAT_SPEC.format(url=url))
    first = _selftune("run", "spec.yaml", "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    other = selftune.load_study("beating", storage=url, heartbeat_interval=0.2, grace_period=1.0)
    reaped: list[int] = []
    done = threading.Event()

    def reap() -> None:
        while not done.is_set():
            reaped.extend(other.storage.reap(other._id, 1.0))
            time.sleep(0.1)

    reaper = threading.Thread(target=reap)
    reaper.start()
    try:
        joined = _selftune(
            "worker", "beating", "--storage", url, "--objective", "obj_mod:slow", "--trials", "2", "--no-progress",
            cwd=tmp_path,
        )
    finally:
        done.set()
        reaper.join()
        other.close()
    assert joined.returncode == 0, joined.stderr
    assert reaped == []
    trials = selftune.load_study("beating", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    # a bad pair on the command line is refused before anything runs
    bad = _selftune("worker", "beating", "--storage", url, "--heartbeat-interval", "5", "--trials", "3", cwd=tmp_path)
    assert bad.returncode != 0 and "--grace-period must be at least twice" in bad.stderr
    assert len(selftune.load_study("beating", storage=url).trials) == 2
