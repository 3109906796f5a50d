"""Small builders for scheduler tests."""

from __future__ import annotations

import selftune
from selftune.history import History
from selftune.trial import TrialRecord, TrialState


def rec(number: int, curve: dict[int, float], state: TrialState = TrialState.STOPPED, **kw: object) -> TrialRecord:
    value = curve[max(curve)] if curve and state in (TrialState.COMPLETE, TrialState.STOPPED) else None
    return TrialRecord(number=number, state=state, intermediate=dict(curve), value=value, **kw)  # type: ignore[arg-type]


def running(number: int, curve: dict[int, float]) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.RUNNING, intermediate=dict(curve))


def hist(records: list[TrialRecord], direction: str = "minimize") -> History:
    return History(sorted(records, key=lambda r: r.number), direction=direction)


def checkpointing_level(trial: selftune.Trial) -> float:
    """A flat curve at ``x`` over 27 steps that, like a checkpointing objective, goes on from where it paused."""
    level = trial.float("x", 0.0, 1.0)
    for step in range((trial.resume_step or 0) + 1, 28):
        trial.report(level, step)
        if trial.should_stop():
            raise selftune.StopTrial()
    return level


def two_worker_processes(url: str, study: str, trials: int, *mode: str) -> list[TrialRecord]:
    """Run ``mf_worker.py`` in two processes on ``study`` (started together, OMP_NUM_THREADS=1) until the study
    holds ``trials`` trials; every process must exit cleanly. Returns the study's trials."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    worker = Path(__file__).parent / "mf_worker.py"
    start_at = str(time.time() + 3.0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(worker), url, study, str(trials), start_at, *mode], env=env,
                         stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    return list(selftune.load_study(study, storage=url).trials)
