"""Studies through the public API, on every backend (memory, SQLite, the real PostgreSQL)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import selftune
from selftune import (
    Choice,
    Float,
    InvalidParameterError,
    InvalidValueError,
    ParameterConflictError,
    Space,
    StopTrial,
    StudyExistsError,
    TrialState,
    TrialStateError,
)


def quadratic(trial: selftune.Trial) -> float:
    x = trial.float("x", -5.0, 5.0)
    kind = trial.choice("kind", ["plain", "shifted"])
    if kind == "shifted":
        x += trial.int("shift", 1, 4)
    return (x - 1.0) ** 2


def _same_storage(study: selftune.Study, url: str):  # type: ignore[no-untyped-def]
    """What another process would pass to reach the same study."""
    return study.storage if url == "memory" else url


def test_define_by_run_and_best(storage_url: str) -> None:
    study = selftune.create_study("q", storage=storage_url, sampler=selftune.SobolSampler(seed=0))
    study.optimize(quadratic, trials=40, progress=False)
    trials = study.trials
    assert [t.number for t in trials] == list(range(40))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    values = [t.value for t in trials]
    assert study.best_value == min(values)
    assert study.best.number == values.index(min(values))
    for t in trials:  # conditional parameter present exactly when its condition held
        assert ("shift" in t.params) == (t.params["kind"] == "shifted")
        assert -5.0 <= t.params["x"] <= 5.0


def test_budget_is_study_wide_and_resumes(storage_url: str) -> None:
    study = selftune.create_study("budget", storage=storage_url)
    study.optimize(quadratic, trials=7, progress=False)
    again = selftune.create_study("budget", storage=_same_storage(study, storage_url))
    again.optimize(quadratic, trials=7, progress=False)  # nothing left to do
    assert len(again.trials) == 7
    again.optimize(quadratic, trials=10, progress=False)
    assert [t.number for t in study.trials] == list(range(10))


def test_seeded_study_is_reproducible(storage_url: str, tmp_path: Path) -> None:
    def run(url: str) -> list[dict]:
        s = selftune.create_study(storage=url, sampler=selftune.RandomSampler(seed=7))
        s.optimize(quadratic, trials=12, progress=False)
        return [dict(t.params) for t in s.trials]

    other = "memory" if storage_url != "memory" else f"sqlite:///{tmp_path / 'other.db'}"
    assert run(storage_url) == run(other)


def test_ask_tell_with_declared_space(storage_url: str) -> None:
    space = Space(
        {
            "opt": Choice(["adam", "sgd"]),
            "lr": Float(1e-4, 1.0, log=True),
            "momentum": Float(0.0, 0.9, when={"opt": "sgd"}),
        }
    )
    study = selftune.create_study("asktell", storage=storage_url, space=space, direction="maximize")
    for _ in range(6):
        trial = study.ask()
        p = trial.params
        assert space.validate(p) == p
        study.tell(trial, -p["lr"])
    # tell by number, through another handle on the same storage (as another process would)
    trial = study.ask()
    other = selftune.load_study("asktell", storage=_same_storage(study, storage_url))
    record = other.tell(trial.number, 123.0)
    assert record.state is TrialState.COMPLETE and study.best.number == trial.number
    with pytest.raises(TrialStateError, match=f"trial {trial.number} is already COMPLETE"):
        study.tell(trial, 1.0)
    with pytest.raises(selftune.TrialNotFoundError, match="999"):
        study.tell(999, 1.0)
    assert study.get_trial(trial.number).value == 123.0


def test_enqueue(storage_url: str) -> None:
    study = selftune.create_study("enq", storage=storage_url)
    first = study.enqueue({"x": 0.25, "kind": "shifted", "shift": 2})
    study.optimize(quadratic, trials=3, progress=False)
    rec = study.get_trial(first)
    assert dict(rec.params) == {"x": 0.25, "kind": "shifted", "shift": 2}
    assert rec.value == (0.25 + 2 - 1.0) ** 2
    with pytest.raises(InvalidParameterError, match=r"expected a value in \[-5.0, 5.0\], got 9.0 for parameter 'x'"):
        study.enqueue({"x": 9.0})  # validated against the domain the study knows
    # a value for a parameter not defined yet is checked when the objective defines it
    n = study.enqueue({"fresh": 3.0})
    with pytest.raises(InvalidParameterError, match="'fresh'"):
        study.optimize(lambda t: t.float("fresh", 0.0, 1.0), trials=5, progress=False)
    assert study.get_trial(n).state is TrialState.FAILED


def test_enqueue_with_declared_space() -> None:
    space = Space({"opt": Choice(["adam", "sgd"]), "momentum": Float(0.0, 0.9, when={"opt": "sgd"})})
    study = selftune.create_study(storage="memory", space=space)
    with pytest.raises(InvalidParameterError, match="'momentum' is inactive"):
        study.enqueue({"opt": "adam", "momentum": 0.5})
    with pytest.raises(InvalidParameterError, match="unknown parameter 'lr'"):
        study.enqueue({"lr": 0.5})
    study.enqueue({"opt": "sgd"})
    trial = study.ask()
    assert trial.params["opt"] == "sgd" and 0.0 <= trial.params["momentum"] <= 0.9
    assert study.get_trial(trial.number).params == trial.params


def test_parameter_redefined_with_other_domain(storage_url: str) -> None:
    study = selftune.create_study("conflict", storage=storage_url)
    study.optimize(lambda t: t.float("lr", 1e-4, 1e-1, log=True), trials=2, progress=False)
    with pytest.raises(ParameterConflictError, match=r"parameter 'lr' is defined as Float\(low=0.0001, high=1.0"):
        study.optimize(lambda t: t.float("lr", 1e-4, 1.0, log=True), trials=3, progress=False)
    with pytest.raises(ParameterConflictError, match="Int"):
        study.optimize(lambda t: t.int("lr", 1, 3), trials=4, progress=False)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAILED, TrialState.FAILED]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("0.5", r"must be a float, got str '0.5'"),
        (None, "must be a float, got None"),
        ((0.1, 0.2), "return a single float"),
        ([0.1], "return a single float"),
        (True, "must be a float, got True"),
    ],
)
def test_objective_returning_a_non_float(storage_url: str, returned: object, message: str) -> None:
    study = selftune.create_study("badret", storage=storage_url)
    study.optimize(quadratic, trials=2, progress=False)
    with pytest.raises(InvalidValueError, match=message):
        study.optimize(lambda t: returned if t.float("x", -5.0, 5.0) is not None else 0.0, trials=5, progress=False)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAILED]
    assert "trial 2" in trials[2].reason and "must be a float" in trials[2].reason  # type: ignore[operator]


def test_tensor_like_return_names_item() -> None:
    class Tensor:  # stands in for torch.Tensor without importing torch
        __module__ = "torch"

    study = selftune.create_study(storage="memory")
    with pytest.raises(InvalidValueError, match=r"tensor.item\(\)"):
        study.optimize(lambda t: Tensor(), trials=1, progress=False)


def test_nan_fails_the_trial_and_the_study_goes_on(storage_url: str) -> None:
    study = selftune.create_study("nan", storage=storage_url)
    with pytest.warns(UserWarning, match="NaN"):
        study.optimize(lambda t: math.nan if t.number == 1 else t.float("x", 0, 1), trials=4, progress=False)
    trials = study.trials
    assert trials[1].state is TrialState.FAILED and "NaN" in trials[1].reason  # type: ignore[operator]
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3


def test_infinite_values_are_kept(storage_url: str) -> None:
    study = selftune.create_study("inf", storage=storage_url, direction="maximize")
    values = [1.0, math.inf, -math.inf, 2.0]
    study.optimize(lambda t: values[t.number], trials=4, progress=False)
    assert [t.value for t in study.trials] == values
    assert study.best.number == 1 and study.best_value == math.inf


def test_exceptions_catch_and_traceback(storage_url: str) -> None:
    study = selftune.create_study("exc", storage=storage_url)

    def flaky(trial: selftune.Trial) -> float:
        x = trial.float("x", 0, 1)
        if trial.number % 2:
            raise ZeroDivisionError("odd trial")
        return x

    study.optimize(flaky, trials=6, catch=(ZeroDivisionError,), progress=False)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert [t.number for t in failed] == [1, 3, 5]
    assert failed[0].reason == "ZeroDivisionError: odd trial"
    assert "Traceback" in failed[0].traceback and "flaky" in failed[0].traceback  # type: ignore[operator]
    with pytest.raises(ZeroDivisionError):
        study.optimize(flaky, trials=10, progress=False)  # not caught: recorded, then raised
    assert study.trials[-1].state is TrialState.FAILED and len(study.trials) == 8


def test_stop_trial_and_reports(storage_url: str) -> None:
    study = selftune.create_study("stop", storage=storage_url)

    def curve(trial: selftune.Trial) -> float:
        lr = trial.float("lr", 0.1, 1.0)
        for step in range(5):
            trial.report(lr / (step + 1), step)
            if trial.number == 0 and step == 2:
                raise StopTrial()
        return lr / 5

    study.optimize(curve, trials=2, progress=False)
    first, second = study.trials
    assert first.state is TrialState.STOPPED and sorted(first.intermediate) == [0, 1, 2]
    assert first.value == first.intermediate[2]
    assert second.state is TrialState.COMPLETE and len(second.intermediate) == 5


def test_report_validation() -> None:
    study = selftune.create_study(storage="memory")
    trial = study.ask()
    trial.report(1.0, 3)
    for value, step, msg in [
        (0.5, 3, "steps must increase, got step 3 after step 3"),
        (0.5, 2, "steps must increase"),
        (math.nan, 4, "NaN"),
        ("x", 4, "must be a float"),
        (0.5, -1, "integer >= 0"),
        (0.5, 1.5, "integer >= 0"),
        (0.5, True, "integer >= 0"),
    ]:
        with pytest.raises(InvalidValueError, match=msg):
            trial.report(value, step)  # type: ignore[arg-type]
    trial.report(-math.inf, 4)
    assert study.get_trial(trial.number).intermediate == {3: 1.0, 4: -math.inf}


def test_callbacks_and_stop() -> None:
    study = selftune.create_study(storage="memory")
    seen: list[int] = []

    def cb(s: selftune.Study, record: selftune.TrialRecord) -> None:
        seen.append(record.number)
        if record.number == 2:
            s.stop()

    study.optimize(quadratic, trials=100, callbacks=[cb], progress=False)
    assert seen == [0, 1, 2] and len(study.trials) == 3


def test_timeout() -> None:
    study = selftune.create_study(storage="memory")
    start = time.monotonic()
    study.optimize(lambda t: time.sleep(0.05) or t.float("x", 0, 1), timeout=0.4, progress=False)
    assert 0.35 < time.monotonic() - start < 3.0
    assert 3 <= len(study.trials) <= 12


def test_progress_bar_renders(capsys: pytest.CaptureFixture[str]) -> None:
    study = selftune.create_study(storage="memory")
    study.optimize(quadratic, trials=5, progress=True)
    err = capsys.readouterr()
    shown = err.out + err.err
    assert "trials" in shown and "5/5" in shown and "best" in shown and "trials/s" in shown


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trials": -1}, "`trials` must be an integer >= 0"),
        ({"trials": 2.5}, "`trials`"),
        ({"trials": None}, "needs `trials`, `timeout` or both"),
        ({"trials": 3, "timeout": -1}, "`timeout` must be"),
        ({"trials": 3, "catch": "ValueError"}, "`catch` must hold exception classes"),
    ],
)
def test_optimize_arguments(kwargs: dict, message: str) -> None:
    study = selftune.create_study(storage="memory")
    with pytest.raises(InvalidParameterError, match=message):
        study.optimize(quadratic, progress=False, **kwargs)
    assert study.trials == []


def test_resume_rules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    selftune.create_study("r", storage=url).optimize(quadratic, trials=3, progress=False)
    with pytest.raises(StudyExistsError, match="exists"):
        selftune.create_study("r", storage=url, resume=False)
    with pytest.raises(StudyExistsError, match="direction 'minimize', not 'maximize'"):
        selftune.create_study("r", storage=url, direction="maximize")
    with pytest.raises(selftune.StudyNotFoundError, match="'nope'"):
        selftune.load_study("nope", storage=url)
    with pytest.raises(InvalidParameterError, match="direction"):
        selftune.create_study("r2", storage=url, direction="up")
    assert len(selftune.load_study("r", storage=url).trials) == 3
    summaries = selftune.list_studies(url)
    assert [(s.info.name, s.n_trials, s.best_value) for s in summaries] == [
        ("r", 3, min(t.value for t in selftune.load_study("r", storage=url).trials))
    ]
    selftune.delete_study("r", storage=url)
    assert selftune.list_studies(url) == []


@pytest.mark.parametrize("name", ["", " ", "x" * 10_000, "tab\tname", "nul\x00"])
def test_bad_study_names(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="study name"):
        selftune.create_study(name, storage="memory")


def test_odd_unicode_study_name(storage_url: str) -> None:
    name = "学习率 🚀 'quote' \"dq\" \u202e"
    selftune.create_study(name, storage=storage_url).optimize(quadratic, trials=2, progress=False)
    if storage_url != "memory":
        assert [s.info.name for s in selftune.list_studies(storage_url)] == [name]
        assert len(selftune.load_study(name, storage=storage_url).trials) == 2


def test_export_and_dataframe(tmp_path: Path) -> None:
    study = selftune.create_study(storage="memory")
    study.optimize(quadratic, trials=5, progress=False)
    csv_path = study.export(tmp_path / "t.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("number,state,value,params_x,params_kind") and len(lines) == 6
    doc = json.loads(study.export(tmp_path / "t.json").read_text())
    assert [t["number"] for t in doc["trials"]] == list(range(5))
    assert doc["trials"][0]["params"] == dict(study.trials[0].params)
    with pytest.raises(InvalidParameterError, match="'csv' or 'json'"):
        study.export(tmp_path / "t.xlsx")
    df = study.dataframe()
    assert list(df["number"]) == list(range(5)) and "params_x" in df.columns


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    study = selftune.create_study(storage="memory")
    with pytest.raises(selftune.MissingDependencyError, match=r"pip install 'selftune\[pandas\]'"):
        study.dataframe()


def test_import_is_light() -> None:
    code = "import sys, selftune; print(sorted(m for m in ('sqlalchemy', 'pandas', 'torch', 'scipy.stats', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ctrl_c_records_interrupted(tmp_path: Path) -> None:
    """Ctrl-C in a terminal: the child gets Python's own SIGINT handler whatever the test runner's (a shell
    starts background jobs with SIGINT ignored, and a child inherits that: Python then installs no handler)."""
    url = f"sqlite:///{tmp_path / 'int.db'}"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import signal, time, selftune
            signal.signal(signal.SIGINT, signal.default_int_handler)
            def objective(trial):
                x = trial.float("x", 0, 1)
                if trial.number == 3:
                    print("sleeping", flush=True)
                    time.sleep(60)
                return x
            selftune.create_study("c", storage={url!r}).optimize(objective, trials=10, progress=False)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sleeping"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    trials = selftune.load_study("c", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAILED]
    assert trials[3].reason == "interrupted"


def test_heartbeat_settings_validated() -> None:
    with pytest.raises(InvalidParameterError, match="grace_period >= 2 \\* heartbeat_interval"):
        selftune.create_study(storage="memory", heartbeat_interval=5, grace_period=6)


def test_reaper_runs_on_a_timer_without_new_trials(storage_url: str) -> None:
    """A dead worker's trial is marked FAILED by any live handle's timer, even while no trial starts."""
    dead = selftune.create_study("reap", storage=storage_url, heartbeat_interval=0.1, grace_period=0.5)
    trial = dead.ask()
    dead.close()  # its heartbeats stop, as if the process died
    watcher = selftune.load_study("reap", storage=_same_storage(dead, storage_url), heartbeat_interval=0.1, grace_period=0.5)
    live = watcher.ask()  # keeps the watcher's timer going
    deadline = time.monotonic() + 5
    while watcher.get_trial(trial.number).state is TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    rec = watcher.get_trial(trial.number)
    assert rec.state is TrialState.FAILED and "heartbeat lost" in rec.reason  # type: ignore[operator]
    assert watcher.get_trial(live.number).state is TrialState.RUNNING  # the live one is never reaped
    watcher.tell(live, 1.0)
    watcher.close()
    if os.environ.get("SELFTUNE_DEBUG"):
        print(rec)


def test_rerun_with_budget_met_still_reaps_an_orphan(storage_url: str) -> None:
    """A crashed worker's RUNNING trial is reaped by a rerun even though the budget leaves nothing to run."""
    study = selftune.create_study("orphan", storage=storage_url, heartbeat_interval=0.1, grace_period=0.5)
    study.optimize(lambda t: t.float("x", 0, 1), trials=3, progress=False)
    orphan = study.storage.start_trial(study.storage.get_study("orphan").id, "crashed-worker").number
    study.close()
    rerun = selftune.load_study("orphan", storage=_same_storage(study, storage_url), heartbeat_interval=0.1, grace_period=0.5)
    rerun.optimize(lambda t: t.float("x", 0, 1), trials=4, progress=False)  # budget met: nothing to run
    deadline = time.monotonic() + 5
    while rerun.get_trial(orphan).state is TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    rec = rerun.get_trial(orphan)
    assert rec.state is TrialState.FAILED and "heartbeat lost" in rec.reason  # type: ignore[operator]
    assert rec.finished_at is not None and rec.finished_at >= rec.started_at  # type: ignore[operator]
    rerun.close()
