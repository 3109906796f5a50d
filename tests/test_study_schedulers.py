"""Schedulers inside studies: stopping, reasons, reports, resume, several workers, and the sampler's view."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import selftune
from selftune.benchmarks.curves import StepCounter, SyntheticCurves
from selftune.exceptions import InvalidParameterError, InvalidValueError
from selftune.history import History
from selftune.schedulers import ASHAScheduler, Decision, HyperbandScheduler, MedianStopping, Scheduler
from selftune.space import Space
from selftune.trial import TrialRecord, TrialState

PROBLEM = SyntheticCurves(max_steps=27)


def _study(storage: Any = "memory", name: str | None = None, seed: int = 0, scheduler: Scheduler | None = None):
    return selftune.create_study(
        name,
        storage=storage,
        space=PROBLEM.space,
        sampler=selftune.TPESampler(seed=seed),
        scheduler=scheduler if scheduler is not None else ASHAScheduler(max_resource=27),
    )


def _facts(study: selftune.Study) -> list[tuple]:
    return [(t.number, t.state, dict(t.params), dict(t.intermediate), t.value, t.reason) for t in study.trials]


def test_without_a_scheduler_nothing_stops() -> None:
    study = selftune.create_study(storage="memory")
    trial = study.ask()
    trial.report(1.0, 1)
    assert trial.should_stop() is False and trial.decision is None


def test_stopped_trials_keep_curve_value_and_reason() -> None:
    study = _study()
    counter = StepCounter()
    study.optimize(PROBLEM.objective(seed=0, counter=counter), trials=40, progress=False)
    trials = study.trials
    stopped = [t for t in trials if t.state is TrialState.STOPPED]
    assert stopped and len(stopped) < len(trials)
    for t in stopped:
        assert t.value == t.intermediate[t.last_step]  # the value is the last one reported
        assert list(t.intermediate) == list(range(1, t.last_step + 1))
        assert t.reason is not None and t.reason.startswith("ASHA") and f"rung {t.last_step}" in t.reason
    assert counter.steps == sum(len(t.intermediate) for t in trials)
    assert counter.steps < 40 * 27 / 2  # early stopping saved most of the compute
    assert study.best.state is TrialState.COMPLETE and study.best.last_step == 27


def test_ask_tell_stop() -> None:
    data = [[5.0, 4.0, 3.0], [1.0, 0.5, 0.2], [1.1, 0.6, 0.3], [9.0, 9.0, 9.0]]
    study = selftune.create_study(storage="memory", scheduler=ASHAScheduler(max_resource=10))
    for curve in data:
        trial = study.ask()
        for step, v in enumerate(curve, start=1):
            trial.report(v, step)
            if trial.should_stop():
                study.tell(trial, state="STOPPED")
                break
        else:
            study.tell(trial, curve[-1])
    last = study.trials[-1]
    assert last.state is TrialState.STOPPED and last.value == 9.0 and last.reason.startswith("ASHA")
    assert last.intermediate == {1: 9.0}


def test_decision_is_made_once_per_report() -> None:
    calls: list[int] = []

    class Counting(Scheduler):
        def on_report(self, trial: TrialRecord, history: History) -> Decision:
            calls.append(trial.last_step or -1)
            return Decision.stop("always") if trial.last_step == 2 else selftune.schedulers.CONTINUE

    study = selftune.create_study(storage="memory", scheduler=Counting())
    trial = study.ask()
    assert trial.should_stop() is False  # nothing reported yet: nothing to decide
    trial.report(1.0, 1)
    assert not trial.should_stop() and not trial.should_stop()
    trial.report(1.0, 2)
    assert trial.should_stop() and trial.should_stop()
    assert calls == [1, 2]
    assert trial.decision.reason == "always"


@pytest.mark.parametrize(
    ("value", "step", "match"),
    [
        (float("nan"), 1, "NaN"),
        ("0.5", 1, "must be a float"),
        (None, 1, "must be a float"),
        (0.5, -1, "integer >= 0"),
        (0.5, 1.5, "integer >= 0"),
        (0.5, True, "integer >= 0"),
        (0.5, "3", "integer >= 0"),
    ],
)
def test_report_validates(value: Any, step: Any, match: str) -> None:
    study = selftune.create_study(storage="memory", scheduler=MedianStopping())
    trial = study.ask()
    trial.report(1.0, 0)
    with pytest.raises(InvalidValueError, match=match):
        trial.report(value, step)
    assert study.get_trial(trial.number).intermediate == {0: 1.0}  # nothing stored by the bad call


def test_report_steps_must_increase_and_are_never_rewritten() -> None:
    study = selftune.create_study(storage="memory")
    trial = study.ask()
    trial.report(1.0, 3)
    for step in (3, 2):
        with pytest.raises(InvalidValueError, match=f"steps must increase, got step {step} after step 3"):
            trial.report(0.0, step)
    trial.report(math.inf, 4)  # a diverged run may report inf
    assert study.get_trial(trial.number).intermediate == {3: 1.0, 4: math.inf}


def test_scheduler_type_checked() -> None:
    with pytest.raises(InvalidParameterError, match="`scheduler` must be"):
        selftune.create_study(storage="memory", scheduler="asha")  # type: ignore[arg-type]


def test_deterministic_under_a_seed() -> None:
    runs = []
    for _ in range(2):
        study = _study(scheduler=HyperbandScheduler(max_resource=27))
        study.optimize(PROBLEM.objective(seed=1), trials=30, progress=False)
        runs.append(_facts(study))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_resume_rebuilds_rungs_from_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Stopping halfway and resuming with a fresh scheduler and sampler gives exactly the uninterrupted run."""
    url = f"sqlite:///{tmp_path / 'mf.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    straight = _study("memory", seed=3)
    straight.optimize(PROBLEM.objective(seed=0), trials=36, progress=False)

    first = _study(url, "resume", seed=3)
    first.optimize(PROBLEM.objective(seed=0), trials=18, progress=False)
    first.close()
    again = selftune.load_study(
        "resume", storage=url, sampler=selftune.TPESampler(seed=3), scheduler=ASHAScheduler(max_resource=27)
    )
    again.optimize(PROBLEM.objective(seed=0), trials=36, progress=False)
    assert [f[1:] for f in _facts(again)] == [f[1:] for f in _facts(straight)]


def test_sampler_sees_the_fidelity_view() -> None:
    seen: list[History] = []

    class Recording(selftune.RandomSampler):
        def propose(self, history: History, space: Space, n: int = 1, *, rng: Any) -> list[dict]:
            seen.append(history)
            return super().propose(history, space, n, rng=rng)

    study = selftune.create_study(
        storage="memory", space=PROBLEM.space, sampler=Recording(seed=0), scheduler=ASHAScheduler(max_resource=27)
    )
    study.optimize(PROBLEM.objective(seed=0), trials=25, progress=False)
    last = seen[-1]
    # no trial completed yet in most of the run, but the sampler saw values: those at the best rung
    n_complete = sum(1 for t in study.trials[:24] if t.state is TrialState.COMPLETE)
    assert len(last.complete) > n_complete


@pytest.mark.slow
def test_two_worker_processes_share_the_rungs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mf.db'}"
    selftune.create_study("mf", storage=url, space=PROBLEM.space).close()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).parent / "schedulers" / "mf_worker.py"
    start_at = str(time.time() + 3.0)
    procs = [
        subprocess.Popen([sys.executable, str(worker), url, "mf", "80", start_at], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    study = selftune.load_study("mf", storage=url)
    trials = study.trials
    # the budget is checked in the transaction that starts a trial: two workers stop at exactly 80
    assert len(trials) == 80 and all(t.state.finished for t in trials)
    assert len({t.worker for t in trials}) == 2
    stopped = [t for t in trials if t.state is TrialState.STOPPED]
    assert {t.last_step for t in stopped} <= {1, 3, 9}
    assert all(list(t.intermediate) == list(range(1, t.last_step + 1)) for t in trials)
    reached = [sum(1 for t in trials if t.last_step >= r) for r in (1, 3, 9, 27)]
    assert reached[0] == len(trials) and reached[1] < 0.6 * len(trials) and reached[3] >= 1
    assert study.best.state is TrialState.COMPLETE
