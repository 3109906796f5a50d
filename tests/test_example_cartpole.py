"""The CartPole population based training example: it runs as a user runs it, and its agent is reproducible."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import selftune
from selftune.schedule import Schedule
from selftune.schedulers import CONTINUE, Decision, ScheduleReplay

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pbt_cartpole.py"
SMALL = {
    "OMP_NUM_THREADS": "1",
    "SELFTUNE_EXAMPLE_POPULATION": "4",
    "SELFTUNE_EXAMPLE_STEPS": "6",
    "SELFTUNE_EXAMPLE_INTERVAL": "2",
    "SELFTUNE_EXAMPLE_TEST_SEEDS": "2",
}
PARAMS = {"lr": 3e-3, "entropy": 1e-3, "gamma": 0.99}


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pbt_cartpole_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small(example: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example's objective at a few iterations of a few episodes."""
    monkeypatch.setattr(example, "STEPS", 5)
    monkeypatch.setattr(example, "EPISODES", 4)
    monkeypatch.setattr(example, "EVAL_EPISODES", 3)
    return example


class PauseAt(ScheduleReplay):
    """Pause the trial once after ``step`` and resume it from its own checkpoint with the same parameters."""

    def __init__(self, params: dict[str, Any], step: int) -> None:
        super().__init__(Schedule.constant(params))
        self.step = step

    def on_report(self, trial: selftune.TrialRecord, history: Any) -> Decision:
        return Decision.pause("test pause") if trial.last_step == self.step else CONTINUE


def run(module: ModuleType, seed: int, params: dict[str, Any] = PARAMS,
        scheduler: Any = None) -> selftune.TrialRecord:
    study = selftune.create_study(storage="memory", direction="maximize", scheduler=scheduler)
    try:
        study.enqueue(params, seed=seed)
        study.optimize(module.objective, trials=1, progress=False)
        record = study.trials[0]
    finally:
        study.close()
    assert record.state is selftune.TrialState.COMPLETE, record.reason
    return record


def test_objective_is_deterministic_under_its_seed(small: ModuleType) -> None:
    a, b, other = run(small, 7), run(small, 7), run(small, 8)
    assert sorted(a.intermediate) == list(range(1, 6))
    assert dict(a.intermediate) == dict(b.intermediate) and a.value == b.value
    assert dict(a.intermediate) != dict(other.intermediate)  # the seed matters
    assert all(0 < v <= 500 for v in a.intermediate.values()) and 0 < a.value <= 500


def test_pausing_and_resuming_from_a_checkpoint_changes_nothing(small: ModuleType) -> None:
    straight = run(small, 3)
    paused = run(small, 3, scheduler=PauseAt(PARAMS, 2))
    assert len(paused.lineage) == 1 and paused.lineage[0].source_step == 2  # it did pause and resume
    assert dict(paused.intermediate) == dict(straight.intermediate)
    assert paused.value == straight.value


def test_a_replayed_schedule_changes_the_run_where_it_says(small: ModuleType) -> None:
    straight = run(small, 5)
    faster = {**PARAMS, "lr": 2e-2}
    replay = Schedule(((0, PARAMS), (3, faster)))
    replayed = run(small, 5, scheduler=ScheduleReplay(replay))
    assert replayed.schedule == replay
    same = [s for s in straight.intermediate if s <= 3]  # step 3's batch is played before its update
    assert {s: replayed.intermediate[s] for s in same} == {s: straight.intermediate[s] for s in same}
    assert replayed.intermediate[5] != straight.intermediate[5]


def test_pbt_members_schedules_and_ancestry_agree(small: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(small, "STEPS", 6)
    study = selftune.create_study(
        storage="memory", direction="maximize", sampler=selftune.RandomSampler(seed=0),
        scheduler=selftune.PopulationBasedTraining(4, 2, small.MUTABLE, max_step=6, seed=0),
    )
    study.optimize(small.objective, trials=4, progress=False)
    trials = study.trials
    assert all(r.state is selftune.TrialState.COMPLETE for r in trials)
    assert any(r.lineage for r in trials)  # the bottom quarter exploited at some ready step
    for r in trials:
        chain = small.ancestry(study, r)
        assert chain[0][1] == 1 and chain[-1] == (r.number, chain[-1][1], 6)
        assert all(a[2] + 1 == b[1] for a, b in zip(chain, chain[1:], strict=False))  # contiguous steps
        assert set(r.schedule.changes) <= {first for _, first, _ in chain[1:]}  # parameters change at exploits
        if not r.lineage:  # paused and resumed at every ready step, but never exploited: as if never paused
            alone = run(small, r.seed, dict(r.params))
            assert dict(alone.intermediate) == dict(r.intermediate) and alone.value == r.value
            assert chain == [(r.number, 1, 6)]


@pytest.mark.slow
def test_example_runs_small_and_reports_on_test_seeds(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=tmp_path, env={**os.environ, **SMALL}, capture_output=True,
        text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "PBT: 4 members x 6 iterations" in text
    assert re.search(r"^schedule of trial \d+'s final weights \(\d+ segments?, inherited ones included\):\n"
                     r"  steps +1-", text, re.M), text
    assert re.search(r"^trained by: trial \d+ steps 1-", text, re.M), text
    assert re.search(r"^lineage of trial \d+ \(\d+ exploits?\):\n  ", text, re.M), text
    assert "test seeds [1000000, 1000001]" in text
    # "mean ± half-width (95% CI, 2 test seeds)" for PBT's schedule and for the best fixed configuration
    line = r"trial \d+: [\d.]+ ± \S+ \(95% CI, 2 test seeds\)"
    assert re.search(r"PBT schedule +" + line, text), text
    assert re.search(r"fixed \(no PBT\) +" + line, text), text
    assert "difference in mean return (PBT - fixed)" in text
    assert not list(tmp_path.iterdir())  # in-memory studies: nothing left behind in the working directory
