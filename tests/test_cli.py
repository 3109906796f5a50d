"""The ``selftune`` command line: run a spec, list/show/best/export/delete studies, and the error paths."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import selftune
from selftune.cli import cli, load_spec

REPO = Path(__file__).resolve().parents[1]

OBJECTIVE_MODULE = '''

def objective(trial):
    """Declared space: read trial.params; define-by-run: define x and kind here."""
    p = trial.params
    if p:
        x, kind, y = p["x"], p["kind"], p.get("y", 0.0)
    else:
        x = trial.float("x", -5.0, 5.0)
        kind = trial.choice("kind", ["a", "b"])
        y = trial.float("y", 0.0, 1.0) if kind == "b" else 0.0
    return (x - 1.5) ** 2 + (0.0 if kind == "a" else 1.0 + y)

def boom(trial):
    raise ZeroDivisionError("boom in the objective")

def interrupted(trial):
    raise KeyboardInterrupt

def returns_none(trial):
    return None

not_callable = 42

class Holder:
    @staticmethod
    def objective(trial):
        return trial.float("x", 0.0, 1.0)

def log_x(trial):
    return trial.float("x", 1e-3, 1.0, log=True)
'''

SPACE = {
    "x": {"kind": "float", "low": -5, "high": 5},
    "kind": {"kind": "choice", "choices": ["a", "b"]},
    "y": {"kind": "float", "low": 0, "high": 1, "when": {"kind": "b"}},
}


# -- fixtures and helpers -------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each test imports its objective modules afresh and leaves sys.path as it found it."""
    monkeypatch.delenv("SELFTUNE_STORAGE", raising=False)
    path = list(sys.path)
    yield
    roots = (str(tmp_path_factory.getbasetemp()), str(REPO / "examples"))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(roots):
            del sys.modules[name]
    sys.path[:] = path


@pytest.fixture
def runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False, env={"COLUMNS": "200"})  # type: ignore[call-arg]
    except TypeError:
        return CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture
def objdir(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    (d / "tinyobj.py").write_text(OBJECTIVE_MODULE)
    return d


_DROP = object()


def write_spec(directory: Path, name: str = "spec.yaml", **overrides: Any) -> Path:
    """A valid spec (declared space, 8 Sobol trials) with ``overrides``; ``key=_DROP`` removes a key."""
    spec: dict[str, Any] = {
        "study": "tiny",
        "direction": "minimize",
        "trials": 8,
        "sampler": {"name": "sobol", "seed": 0},
        "objective": "tinyobj:objective",
        "space": SPACE,
    }
    for key, value in overrides.items():
        if value is _DROP:
            spec.pop(key, None)
        else:
            spec[key] = value
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def invoke(runner: CliRunner, *args: Any, input: str | None = None) -> Any:
    return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def run_ok(runner: CliRunner, *args: Any) -> Any:
    result = invoke(runner, "run", *args, "--no-progress")
    assert result.exit_code == 0, result.output + result.stderr
    return result


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table as lists of stripped cells."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]


def objective_value(params: dict[str, Any]) -> float:
    return (params["x"] - 1.5) ** 2 + (0.0 if params["kind"] == "a" else 1.0 + params["y"])


# -- run ------------------------------------------------------------------------------------------------------
def test_run_declared_space_end_to_end(runner: CliRunner, db: str, objdir: Path) -> None:
    spec = write_spec(objdir)
    result = run_ok(runner, spec, "--storage", db)

    study = selftune.load_study("tiny", storage=db)
    trials = study.trials
    assert len(trials) == 8
    assert all(t.state is selftune.TrialState.COMPLETE for t in trials)
    for t in trials:  # the declared space with its condition, and the objective saw those values
        assert set(t.params) == ({"x", "kind", "y"} if t.params["kind"] == "b" else {"x", "kind"})
        assert -5 <= t.params["x"] <= 5
        assert t.value == pytest.approx(objective_value(dict(t.params)))
    assert study.space == selftune.Space.from_json(SPACE)
    assert study.direction == "minimize"
    best = study.best
    assert best.value == min(float(t.value or 0) for t in trials)

    out = result.output
    assert "study 'tiny' (minimize)" in out and "0 trial(s) so far; budget 8 trial(s)" in out
    assert "trials       8 (8 complete)" in out
    assert f"best value   {best.value!r} (trial {best.number})" in out
    assert f"  x: {json.dumps(best.params['x'])}" in out
    assert f"  kind: {best.params['kind']}" in out


CURVE_MODULE = """
import selftune


def objective(trial):
    level = trial.params["x"] ** 2
    for step in range(1, 10):
        trial.report(level + 1.0 / step, step)
        if trial.should_stop():
            raise selftune.StopTrial()
    return level + 1.0 / 9
"""


def test_run_with_a_scheduler(runner: CliRunner, db: str, objdir: Path) -> None:
    (objdir / "curveobj.py").write_text(CURVE_MODULE)
    spec = write_spec(
        objdir,
        objective="curveobj:objective",
        space={"x": {"kind": "float", "low": -3, "high": 3}},
        scheduler={"name": "asha", "max_resource": 9},
        trials=30,
    )
    result = run_ok(runner, spec, "--storage", db)
    trials = selftune.load_study("tiny", storage=db).trials
    stopped = [t for t in trials if t.state is selftune.TrialState.STOPPED]
    assert len(trials) == 30 and len(stopped) >= 10
    assert all(t.reason.startswith("ASHA") and t.last_step in (1, 3) for t in stopped)
    assert "stopped" in result.output


PBT_MODULE = """
import json
import selftune


def objective(trial):
    x, start = 0.0, 0
    state = trial.load_checkpoint()
    if state is not None:
        x, start = json.loads(state)["x"], trial.resume_step + 1
    for step in range(start, 12):
        x += trial.params["h"] if step < 6 else 1 - trial.params["h"]
        trial.report(x, step)
        if trial.should_stop():
            trial.save_checkpoint(json.dumps({"x": x}).encode(), step=step)
            raise selftune.StopTrial()
    return x
"""


def test_run_with_population_based_training(runner: CliRunner, db: str, objdir: Path) -> None:
    (objdir / "pbtobj.py").write_text(PBT_MODULE)
    spec = write_spec(
        objdir,
        objective="pbtobj:objective",
        direction="maximize",
        space={"h": {"kind": "float", "low": 0, "high": 1}},
        scheduler={"name": "pbt", "population_size": 6, "interval": 2, "hyperparams": ["h"], "max_step": 11},
        trials=6,
    )
    run_ok(runner, spec, "--storage", db)
    study = selftune.load_study("tiny", storage=db)
    assert [t.state for t in study.trials] == [selftune.TrialState.COMPLETE] * 6
    assert any(t.lineage for t in study.trials)  # members took over others' checkpoints
    assert all(0.0 <= p["h"] <= 1.0 for t in study.trials for _, p in t.schedule)


def test_run_reports_the_best_trial_on_test_seeds(runner: CliRunner, db: str, objdir: Path) -> None:
    (objdir / "seedobj.py").write_text(
        "def objective(trial):\n    return trial.params['x'] ** 2 + (trial.seed % 7) / 100\n"
    )
    spec = write_spec(objdir, objective="seedobj:objective", space={"x": {"kind": "float", "low": -1, "high": 1}},
                      trials=6, test_seeds=4)
    out = run_ok(runner, spec, "--storage", db).output
    study = selftune.load_study("tiny", storage=db)
    best = study.best
    kept = study.user_attrs["test_evaluation"]
    assert kept["seeds"] == [1_000_000, 1_000_001, 1_000_002, 1_000_003]  # never a tuning seed (0..5)
    assert kept["values"] == pytest.approx([best.params["x"] ** 2 + (s % 7) / 100 for s in kept["seeds"]])
    assert f"test seeds   {kept['mean']!r} ± " in out and "report this, not the best tuning value" in out
    assert len(study.trials) == 6  # test runs are not trials of the study
    out = run_ok(runner, spec, "--storage", db, "--test-seeds", "0").output
    assert "test seeds" not in out


def test_run_define_by_run_with_defaults(runner: CliRunner, db: str, objdir: Path) -> None:
    # no space, no sampler, no direction: the auto sampler, minimize
    spec = write_spec(objdir, space=_DROP, sampler=_DROP, direction=_DROP, trials=5)
    run_ok(runner, spec, "--storage", db)
    study = selftune.load_study("tiny", storage=db)
    assert study.space is None and study.direction == "minimize"
    assert len(study.trials) == 5
    for t in study.trials:
        assert t.state is selftune.TrialState.COMPLETE
        assert {"x", "kind"} <= set(t.params)
        assert t.value == pytest.approx(objective_value({"y": 0.0, **t.params}))


def test_run_objective_by_dotted_attribute_and_sampler_name_string(runner: CliRunner, db: str, objdir: Path) -> None:
    spec = write_spec(objdir, objective="tinyobj:Holder.objective", space=_DROP, sampler="random", trials=3,
                      direction="maximize")
    run_ok(runner, spec, "--storage", db)
    study = selftune.load_study("tiny", storage=db)
    assert [t.state for t in study.trials] == [selftune.TrialState.COMPLETE] * 3
    assert study.best_value == max(t.params["x"] for t in study.trials)


def test_run_is_reproducible_under_a_seed(runner: CliRunner, tmp_path: Path, objdir: Path) -> None:
    spec = write_spec(objdir, trials=4)
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    run_ok(runner, spec, "--storage", a)
    run_ok(runner, spec, "--storage", b)
    params = [[dict(t.params) for t in selftune.load_study("tiny", storage=u).trials] for u in (a, b)]
    assert params[0] == params[1]


def test_resume_to_the_same_budget_adds_no_trials(runner: CliRunner, db: str, objdir: Path) -> None:
    spec = write_spec(objdir, trials=6)
    run_ok(runner, spec, "--storage", db)
    first = [(t.number, dict(t.params), t.value) for t in selftune.load_study("tiny", storage=db).trials]
    assert len(first) == 6

    again = run_ok(runner, spec, "--storage", db)
    assert "6 trial(s) so far; budget 6 trial(s)" in again.output
    assert "trials       6 (6 complete)" in again.output
    assert [(t.number, dict(t.params), t.value) for t in selftune.load_study("tiny", storage=db).trials] == first

    # --trials raises the study-wide budget: only the difference runs
    more = run_ok(runner, spec, "--storage", db, "--trials", "9")
    assert "trials       9 (9 complete)" in more.output
    trials = selftune.load_study("tiny", storage=db).trials
    assert [t.number for t in trials] == list(range(9))
    assert [(t.number, dict(t.params), t.value) for t in trials[:6]] == first


def test_run_timeout_only(runner: CliRunner, db: str, objdir: Path) -> None:
    spec = write_spec(objdir, trials=_DROP, timeout=0.5)
    result = run_ok(runner, spec, "--storage", db)
    assert "no trial budget, timeout 0.5s" in result.output
    assert len(selftune.load_study("tiny", storage=db).trials) >= 1


def test_storage_precedence(runner: CliRunner, tmp_path: Path, objdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_spec, flag, env = tmp_path / "spec.db", tmp_path / "flag.db", tmp_path / "env.db"
    spec = write_spec(objdir, storage=f"sqlite:///{in_spec}", trials=2)

    run_ok(runner, spec, "--storage", f"sqlite:///{flag}")  # the flag beats the spec
    assert flag.exists() and not in_spec.exists()
    run_ok(runner, spec)  # the spec beats the environment
    assert in_spec.exists()
    assert len(selftune.load_study("tiny", storage=f"sqlite:///{in_spec}").trials) == 2

    monkeypatch.setenv("SELFTUNE_STORAGE", f"sqlite:///{env}")
    run_ok(runner, write_spec(objdir, "nostorage.yaml", trials=2))  # no flag, no spec storage: the env
    assert env.exists()
    listing = invoke(runner, "studies")  # read commands use the env too
    assert listing.exit_code == 0 and "tiny" in listing.output and str(env) in listing.output

    monkeypatch.delenv("SELFTUNE_STORAGE")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    run_ok(runner, write_spec(objdir, "nostorage.yaml", trials=1))  # default: ./selftune.db
    assert (work / "selftune.db").exists()


def test_yaml_exponent_floats_are_numbers(runner: CliRunner, db: str, objdir: Path) -> None:
    path = objdir / "exp.yaml"
    path.write_text(textwrap.dedent("""\
        study: expo
        trials: 3
        objective: tinyobj:log_x
        space:
          x: {kind: float, low: 1e-3, high: 1e0, log: true}
        """))
    assert load_spec(path).space == selftune.Space({"x": selftune.Float(1e-3, 1.0, log=True)})
    run_ok(runner, path, "--storage", db)
    assert all(1e-3 <= t.params["x"] <= 1.0 for t in selftune.load_study("expo", storage=db).trials)


# -- studies / show / best / export / delete ------------------------------------------------------------------
@pytest.fixture
def filled(runner: CliRunner, db: str, objdir: Path) -> str:
    """Storage with study 'tiny' (minimize, 8 trials) and 'upward' (maximize, 3 trials + 1 failed)."""
    run_ok(runner, write_spec(objdir), "--storage", db)
    study = selftune.create_study("upward", storage=db, direction="maximize")
    for v in (0.25, 0.75, 0.5):
        t = study.ask()
        t.float("lr", 0.0, 1.0)
        study.tell(t, v)
    study.tell(study.ask(), state="FAILED", reason="test")
    study.close()
    return db


def test_studies_lists_every_study(runner: CliRunner, filled: str) -> None:
    result = invoke(runner, "studies", "--storage", filled)
    assert result.exit_code == 0, result.stderr
    rows = {r[0]: r for r in table_rows(result.output)}
    best_tiny = selftune.load_study("tiny", storage=filled).best_value
    assert rows["tiny"][1:4] == ["minimize", "8 (8 complete)", f"{best_tiny:.6g}"]
    assert rows["upward"][1:4] == ["maximize", "4 (3 complete, 1 failed)", "0.75"]
    assert list(rows) == ["tiny", "upward"]  # oldest first
    assert rows["tiny"][4][:2] == "20"  # a created time


def test_studies_empty_and_missing(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    selftune.get_storage(f"sqlite:///{empty}").close()
    result = invoke(runner, "studies", "--storage", f"sqlite:///{empty}")
    assert result.exit_code == 0 and result.output.startswith("no studies in sqlite:///")

    missing = tmp_path / "typo.db"
    result = invoke(runner, "studies", "--storage", f"sqlite:///{missing}")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no SQLite database at") and str(missing) in result.stderr
    assert not missing.exists()  # a read command does not create a database


@pytest.mark.parametrize(("name", "direction"), [("tiny", "minimize"), ("upward", "maximize")])
def test_show_lists_best_trials_first(runner: CliRunner, filled: str, name: str, direction: str) -> None:
    result = invoke(runner, "show", name, "--top", "3", "--storage", filled)
    assert result.exit_code == 0, result.stderr
    study = selftune.load_study(name, storage=filled)
    complete = [t for t in study.trials if t.state is selftune.TrialState.COMPLETE]
    sign = 1.0 if direction == "minimize" else -1.0
    expected = sorted(complete, key=lambda t: (sign * float(t.value or 0), t.number))[:3]

    out = result.output
    assert f"direction  {direction}" in out
    assert f"best       {study.best_value:.6g} (trial {study.best.number})" in out
    assert f"best 3 of {len(complete)} complete trials" in out
    rows = table_rows(out)
    assert [int(r[0]) for r in rows] == [t.number for t in expected]
    assert [float(r[1]) for r in rows] == pytest.approx([t.value for t in expected], rel=1e-5)
    assert all(r[3].endswith("s") for r in rows)  # a duration
    if name == "tiny":
        assert "trials     8 (8 complete)" in out
        assert "space      x, kind, y (declared)" in out
        assert rows[0][2].startswith(f"x={expected[0].params['x']:.6g}, kind={expected[0].params['kind']}")
    else:
        assert "trials     4 (3 complete, 1 failed)" in out
        assert "space      lr (define-by-run)" in out


def test_show_default_top_and_no_complete(runner: CliRunner, filled: str) -> None:
    result = invoke(runner, "show", "tiny", "--storage", filled)
    assert "best 8 of 8 complete trials" in result.output and len(table_rows(result.output)) == 8

    study = selftune.create_study("empty", storage=filled)
    study.close()
    result = invoke(runner, "show", "empty", "--storage", filled)
    assert result.exit_code == 0
    assert "best       - (no COMPLETE trial)" in result.output and not table_rows(result.output)

    result = invoke(runner, "show", "tiny", "--top", "0", "--storage", filled)
    assert result.exit_code == 2 and "--top" in result.stderr


def test_best_text_and_json(runner: CliRunner, filled: str) -> None:
    study = selftune.load_study("tiny", storage=filled)
    best = study.best

    result = invoke(runner, "best", "tiny", "--json", "--storage", filled)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.output)
    assert doc == {
        "study": "tiny",
        "direction": "minimize",
        "number": best.number,
        "value": best.value,
        "params": dict(best.params),
    }
    assert list(doc["params"])[:2] == ["x", "kind"]  # in the declared order

    text = invoke(runner, "best", "upward", "--storage", filled).output
    up = selftune.load_study("upward", storage=filled).best
    assert text.splitlines() == [f"trial   {up.number}", "value   0.75", "params", f"  lr: {json.dumps(up.params['lr'])}"]


def test_best_without_complete_trial_is_an_error(runner: CliRunner, db: str) -> None:
    study = selftune.create_study("nothing", storage=db)
    study.tell(study.ask(), state="FAILED")
    study.close()
    result = invoke(runner, "best", "nothing", "--storage", db)
    assert result.exit_code == 1
    assert result.stderr == "error: study 'nothing' has no COMPLETE trial yet\n"


def test_export_csv(runner: CliRunner, filled: str, tmp_path: Path) -> None:
    out = tmp_path / "tiny.csv"
    result = invoke(runner, "export", "tiny", "-o", out, "--storage", filled)
    assert result.exit_code == 0, result.stderr
    assert f"wrote 8 trial(s) of study 'tiny' to {out}" in result.output
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    trials = selftune.load_study("tiny", storage=filled).trials
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    assert {"number", "state", "value", "params_x", "params_kind", "params_y", "duration"} <= set(rows[0])
    for row, t in zip(rows, trials, strict=True):
        assert row["state"] == "COMPLETE"
        assert float(row["value"]) == t.value
        assert float(row["params_x"]) == t.params["x"]
        assert row["params_kind"] == t.params["kind"]
        assert row["params_y"] == ("" if "y" not in t.params else repr(t.params["y"]))


def test_export_json_and_format_flag(runner: CliRunner, filled: str, tmp_path: Path) -> None:
    out = tmp_path / "upward.data"  # the suffix says nothing: --format decides
    result = invoke(runner, "export", "upward", "--output", out, "--format", "json", "--storage", filled)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert doc["study"] == "upward" and doc["direction"] == "maximize" and doc["space"] is None
    assert [t["state"] for t in doc["trials"]] == ["COMPLETE"] * 3 + ["FAILED"]
    assert [t["value"] for t in doc["trials"]] == [0.25, 0.75, 0.5, None]
    assert all(set(t["params"]) == {"lr"} for t in doc["trials"][:3])

    declared = tmp_path / "tiny.json"
    assert invoke(runner, "export", "tiny", "-o", declared, "--storage", filled).exit_code == 0
    assert json.loads(declared.read_text())["space"] == selftune.Space.from_json(SPACE).to_json()


def test_export_errors(runner: CliRunner, filled: str, tmp_path: Path) -> None:
    result = invoke(runner, "export", "tiny", "-o", tmp_path / "out.txt", "--storage", filled)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: export format must be 'csv' or 'json', got 'txt'")
    assert not (tmp_path / "out.txt").exists()

    result = invoke(runner, "export", "tiny", "-o", tmp_path / "no" / "dir.csv", "--storage", filled)
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot write")

    result = invoke(runner, "export", "tiny", "-o", tmp_path / "x.csv", "--format", "xml", "--storage", filled)
    assert result.exit_code == 2 and "xml" in result.stderr

    result = invoke(runner, "export", "tiny", "--storage", filled)
    assert result.exit_code == 2 and "-o" in result.stderr


def test_delete(runner: CliRunner, filled: str) -> None:
    names = lambda: [s.info.name for s in selftune.list_studies(filled)]  # noqa: E731

    result = invoke(runner, "delete", "tiny", "--storage", filled, input="n\n")
    assert result.exit_code == 1
    assert "Delete study 'tiny' and its 8 trial(s)" in result.output
    assert names() == ["tiny", "upward"]

    result = invoke(runner, "delete", "tiny", "--storage", filled, input="y\n")
    assert result.exit_code == 0 and "deleted study 'tiny' (8 trial(s))" in result.output
    assert names() == ["upward"]

    result = invoke(runner, "delete", "upward", "--yes", "--storage", filled)
    assert result.exit_code == 0 and "Delete study" not in result.output
    assert names() == []

    result = invoke(runner, "delete", "upward", "--yes", "--storage", filled)
    assert result.exit_code == 1 and result.stderr.startswith("error: no study named 'upward'")


@pytest.mark.parametrize("command", [["show", "ghost"], ["best", "ghost"], ["export", "ghost", "-o", "x.csv"],
                                     ["delete", "ghost", "--yes"]])
def test_missing_study_is_one_clean_line(runner: CliRunner, filled: str, command: list[str]) -> None:
    result = invoke(runner, *command, "--storage", filled)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no study named 'ghost'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_storage_url(runner: CliRunner, objdir: Path) -> None:
    result = invoke(runner, "studies", "--storage", "nonsense")
    assert result.exit_code == 1 and result.stderr.startswith("error: unrecognised storage 'nonsense'")
    result = invoke(runner, "run", write_spec(objdir), "--storage", "mysql://u@h/db", "--no-progress")
    assert result.exit_code == 1 and result.stderr.startswith("error: unsupported storage URL")


# -- spec errors: exit status 2, the message names the key and what was expected ------------------------------
SPEC_ERRORS = [
    ({"objective": _DROP}, "missing key `objective`"),
    ({"study": _DROP}, "missing key `study`"),
    ({"heartbeat_interval": 0}, "`heartbeat_interval` must be a number of seconds > 0, got 0"),
    ({"heartbeat_interval": 5, "grace_period": 6},
     "`grace_period` must be a number of seconds >= 2 * heartbeat_interval (10), got 6"),
    ({"study": 12}, "`study` must be a string"),
    ({"study": "  "}, "`study`: a study name must not be empty"),
    ({"objective": "tinyobj.objective"}, "`objective` must be 'module:function'"),
    ({"objective": "a:b:c"}, "`objective` must be 'module:function'"),
    ({"objective": "tinyobj:"}, "`objective` must be 'module:function'"),
    ({"objective": "tiny-obj:f"}, "`objective` must be 'module:function'"),
    ({"objective": ["tinyobj", "objective"]}, "`objective` must be 'module:function'"),
    ({"objective": "nosuchmodule:objective"}, "`objective`: cannot import module 'nosuchmodule'"),
    ({"objective": "tinyobj:nothere"}, "`objective`: module 'tinyobj' has no attribute 'nothere'"),
    ({"objective": "tinyobj:not_callable"}, "`objective`: 'tinyobj:not_callable' is a int, not a function"),
    ({"trails": 3}, "unknown key 'trails' (did you mean 'trials'?); expected keys: study, storage,"),
    ({"colour": "red"}, "unknown key 'colour'; expected keys:"),
    ({"direction": "up"}, "`direction` must be 'minimize' or 'maximize', got 'up'"),
    ({"sampler": {"name": "hyperband"}}, "`sampler.name` must be one of auto, tpe, gp, cmaes, random, sobol, got 'hyperband'"),
    ({"sampler": "grid"}, "`sampler.name` must be one of auto, tpe, gp, cmaes, random, sobol, got 'grid'"),
    ({"sampler": {"name": "sobol", "sead": 1}}, "`sampler`: unknown key 'sead'"),
    ({"sampler": {"name": "sobol", "seed": "zero"}}, "`sampler.seed` must be an integer, got 'zero'"),
    ({"sampler": 3}, "`sampler` must be a name"),
    ({"scheduler": "sha"}, "`scheduler.name` must be one of asha, successive-halving, hyperband, median, percentile, pbt, pb2, none, got 'sha'"),
    ({"scheduler": {"name": "asha", "reduction_factor": 1}}, "`scheduler` (asha): `reduction_factor` must be a number > 1"),
    ({"scheduler": {"name": "asha", "eta": 3}}, "`scheduler` (asha): ASHAScheduler.__init__() got an unexpected keyword"),
    ({"scheduler": {"name": "hyperband"}}, "`scheduler` (hyperband): HyperbandScheduler.__init__() missing 1 required"),
    ({"scheduler": [1]}, "`scheduler` must be a name"),
    ({"test_seeds": -1}, "`test_seeds` must be an integer >= 0"),
    ({"trials": -1}, "`trials` must be an integer >= 0"),
    ({"trials": "ten"}, "`trials` must be an integer >= 0"),
    ({"trials": True}, "`trials` must be an integer >= 0"),
    ({"timeout": 0}, "`timeout` must be a number of seconds > 0"),
    ({"trials": _DROP}, "set `trials` (the study-wide budget) or `timeout`"),
    ({"storage": 5}, "`storage` must be a storage URL"),
    ({"space": [1, 2]}, "`space` must map parameter names to domains"),
    # the domains are checked by Space.from_json, whose messages name the parameter (and the bad key)
    ({"space": {"x": 3}}, "`space`: a domain must be a mapping with a `kind`, got 3 for parameter 'x'"),
    ({"space": {"x": {"low": 0, "high": 1}}},
     "`space`: unknown parameter kind None; expected one of ['choice', 'float', 'int'] for parameter 'x'"),
    ({"space": {"x": {"kind": "real", "low": 0, "high": 1}}},
     "`space`: unknown parameter kind 'real'; expected one of ['choice', 'float', 'int'] for parameter 'x'"),
    ({"space": {"x": {"kind": "float", "lo": 0, "high": 1}}},
     "`space`: unknown key 'lo' for kind 'float'; expected some of ['high', 'log', 'low', 'step', 'when'] "
     "for parameter 'x'"),
    ({"space": {"x": {"kind": "float", "low": 0}}}, "`space`: missing key 'high' for kind 'float' for parameter 'x'"),
    ({"space": {"c": {"kind": "choice", "choices": ["a"], "low": 0}}},
     "`space`: unknown key 'low' for kind 'choice'; expected some of ['choices', 'when'] for parameter 'c'"),
    ({"space": {"c": {"kind": "choice", "choices": "abc"}}},
     "`space`: `choices` must be a list of values, got 'abc' for parameter 'c'"),
    ({"space": {"x": {"kind": "float", "low": 1, "high": 2, "log": "no"}}},
     "`space`: `log` must be True or False, got log='no' for parameter 'x'"),
    ({"space": {"a": {"kind": "float", "low": 0, "high": 1}, "x": {"kind": ["float"], "low": 1, "high": 2}}},
     "`space`: unknown parameter kind ['float']; expected one of ['choice', 'float', 'int'] for parameter 'x'"),
    ({"space": {"x": {"kind": "float", "low": 0, "high": 1, "when": "k"}}},
     "`space`: `when` must map parent names to values, got 'k' for parameter 'x'"),
    ({"space": {"x": {"kind": "float", "low": 2, "high": 1}}},
     "`space`: `low <= high` must hold, got low=2, high=1 for parameter 'x'"),
    ({"space": {"x": {"kind": "float", "low": 0, "high": 1, "log": True}}},
     "`space`: `low > 0` must hold for a log-scaled parameter, got low=0 for parameter 'x'"),
    ({"space": {"n": {"kind": "int", "low": 0, "high": 10, "step": 3}}}, "step=3 must divide high - low = 10"),
    ({"space": {"c": {"kind": "choice", "choices": []}}}, "`choices` must not be empty for parameter 'c'"),
    ({"space": {"y": {"kind": "float", "low": 0, "high": 1, "when": {"k": "a"}}}},
     "parameter 'y' is conditional on 'k', which must be declared before it"),
    ({"space": {"k": {"kind": "choice", "choices": ["a"]}, "y": {"kind": "float", "low": 0, "high": 1,
                                                                   "when": {"k": "z"}}}},
     "expected one of ['a'], got 'z' for parameter 'k'"),
]


@pytest.mark.parametrize(("overrides", "message"), SPEC_ERRORS, ids=[m[:40] for _, m in SPEC_ERRORS])
def test_spec_errors(runner: CliRunner, db: str, objdir: Path, overrides: dict[str, Any], message: str) -> None:
    spec = write_spec(objdir, **overrides)
    result = invoke(runner, "run", spec, "--storage", db, "--no-progress")
    assert result.exit_code == 2, result.output + result.stderr
    assert f"Error: {spec}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path(db.removeprefix("sqlite:///")).exists()  # nothing ran, no database was created


def test_spec_file_problems(runner: CliRunner, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("study: [unclosed\n")
    result = invoke(runner, "run", bad_yaml)
    assert result.exit_code == 2 and f"{bad_yaml}: not valid YAML" in result.stderr

    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    result = invoke(runner, "run", scalar)
    assert result.exit_code == 2 and "the spec must be a YAML mapping" in result.stderr

    result = invoke(runner, "run", tmp_path / "absent.yaml")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_objective_module_that_fails_to_import(runner: CliRunner, db: str, objdir: Path) -> None:
    (objdir / "broken.py").write_text("import nosuchdependency_xyz\n")
    (objdir / "raising.py").write_text("raise RuntimeError('bad config')\n")
    result = invoke(runner, "run", write_spec(objdir, objective="broken:objective"), "--storage", db)
    assert result.exit_code == 2
    assert "`objective`: importing 'broken' failed: ModuleNotFoundError: No module named 'nosuchdependency_xyz'" in (
        result.stderr
    )
    result = invoke(runner, "run", write_spec(objdir, objective="raising:objective"), "--storage", db)
    assert result.exit_code == 2
    assert "`objective`: importing 'raising' failed: RuntimeError: bad config" in result.stderr


def test_objective_found_through_the_working_directory(
    runner: CliRunner, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "proj" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "objectives.py").write_text(OBJECTIVE_MODULE)
    specs = tmp_path / "elsewhere"
    specs.mkdir()
    spec = write_spec(specs, objective="mypkg.objectives:objective", trials=2)
    monkeypatch.chdir(tmp_path / "proj")
    run_ok(runner, spec, "--storage", db)
    assert len(selftune.load_study("tiny", storage=db).trials) == 2
    assert str(tmp_path / "proj") not in sys.path and str(specs) not in sys.path  # put back afterwards


# -- runtime errors: exit status 1 ----------------------------------------------------------------------------
def test_objective_exception_fails_the_trial(runner: CliRunner, db: str, objdir: Path) -> None:
    result = invoke(runner, "run", write_spec(objdir, objective="tinyobj:boom"), "--storage", db, "--no-progress")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and 'raise ZeroDivisionError("boom in the objective")' in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: the objective raised ZeroDivisionError: boom in the objective "
        "(trial 0 is recorded as FAILED; rerun to resume)"
    )
    [trial] = selftune.load_study("tiny", storage=db).trials
    assert trial.state is selftune.TrialState.FAILED
    assert trial.reason == "ZeroDivisionError: boom in the objective"


def test_selftune_error_from_the_objective_is_one_line(runner: CliRunner, db: str, objdir: Path) -> None:
    result = invoke(runner, "run", write_spec(objdir, objective="tinyobj:returns_none"), "--storage", db,
                    "--no-progress")
    assert result.exit_code == 1
    assert result.stderr == "error: trial 0: the objective's return value must be a float, got None\n"


def test_ctrl_c_fails_the_running_trial(runner: CliRunner, db: str, objdir: Path) -> None:
    result = invoke(runner, "run", write_spec(objdir, objective="tinyobj:interrupted"), "--storage", db,
                    "--no-progress")
    assert result.exit_code == 130
    assert result.stderr == "interrupted: the running trial is recorded as FAILED; rerun to resume\n"
    [trial] = selftune.load_study("tiny", storage=db).trials
    assert trial.state is selftune.TrialState.FAILED and trial.reason == "interrupted"


def test_resume_with_another_direction_or_space(runner: CliRunner, db: str, objdir: Path) -> None:
    run_ok(runner, write_spec(objdir, trials=2), "--storage", db)
    result = invoke(runner, "run", write_spec(objdir, direction="maximize"), "--storage", db, "--no-progress")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: study 'tiny' exists in") and "not 'maximize'" in result.stderr

    other = {**SPACE, "x": {"kind": "float", "low": -1, "high": 1}}
    result = invoke(runner, "run", write_spec(objdir, space=other), "--storage", db, "--no-progress")
    assert result.exit_code == 1
    assert "another declared space" in result.stderr and result.stderr.count("\n") == 1
    assert len(selftune.load_study("tiny", storage=db).trials) == 2


# -- the installed command ------------------------------------------------------------------------------------
def _selftune_exe() -> str:
    exe = Path(sys.executable).parent / ("selftune.exe" if os.name == "nt" else "selftune")
    found = str(exe) if exe.exists() else shutil.which("selftune")
    if found is None:
        pytest.fail("the `selftune` console script is not installed (pip install -e .)")
    return found


def _sub(*args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SELFTUNE_STORAGE"}
    env["COLUMNS"] = "200"
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_installed_command_end_to_end(tmp_path: Path, objdir: Path) -> None:
    exe = _selftune_exe()
    spec = write_spec(objdir, trials=5, storage="sqlite:///sub.db")
    done = _sub(exe, "run", spec, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "trials       5 (5 complete)" in done.stdout
    db = tmp_path / "sub.db"  # the spec's relative SQLite path is relative to the working directory
    assert db.exists()

    best = _sub(exe, "best", "tiny", "--json", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    doc = json.loads(best.stdout)
    study = selftune.load_study("tiny", storage=f"sqlite:///{db}")
    assert doc["number"] == study.best.number and doc["value"] == study.best_value
    assert doc["params"] == study.best_params

    missing = _sub(exe, "show", "ghost", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == f"error: no study named 'ghost' in sqlite:///{db}\n"

    bad = _sub(exe, "run", write_spec(objdir, "bad.yaml", direction="sideways"), cwd=tmp_path)
    assert bad.returncode == 2 and "`direction` must be 'minimize' or 'maximize', got 'sideways'" in bad.stderr


def test_python_dash_m(tmp_path: Path) -> None:
    done = _sub(sys.executable, "-m", "selftune", "--version", cwd=tmp_path)
    assert done.returncode == 0 and f"selftune, version {selftune.__version__}" in done.stdout
    done = _sub(sys.executable, "-m", "selftune", "studies", "--storage", "memory", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("no studies in memory")
    done = _sub(sys.executable, "-m", "selftune.cli", "--version", cwd=tmp_path)  # as when cli was a module
    assert done.returncode == 0 and f"selftune, version {selftune.__version__}" in done.stdout


def test_progress_bar_runs(runner: CliRunner, db: str, objdir: Path) -> None:
    # the default shows the bar; it must not break a non-terminal output
    result = invoke(runner, "run", write_spec(objdir, trials=3), "--storage", db)
    assert result.exit_code == 0, result.stderr
    assert "trials       3 (3 complete)" in result.output


# -- the scikit-learn example ---------------------------------------------------------------------------------
def test_sklearn_example_spec(runner: CliRunner, db: str) -> None:
    pytest.importorskip("sklearn")
    spec = REPO / "examples" / "spec.yaml"
    loaded = load_spec(spec)
    assert loaded.trials == 20 and loaded.direction == "maximize" and loaded.sampler == "auto"
    result = run_ok(runner, spec, "--storage", db, "--trials", "3")
    study = selftune.load_study("digits-svm", storage=db)
    assert len(study.trials) == 3
    for t in study.trials:
        assert t.state is selftune.TrialState.COMPLETE
        assert t.value is not None and 0.0 <= t.value <= 1.0  # an accuracy
        assert set(t.params) == ({"C", "kernel", "gamma"} if t.params["kernel"] == "rbf" else {"C", "kernel"})
    assert study.best_value > 0.9  # a decent SVC on digits is far better than chance (0.1)
    assert f"best value   {study.best_value!r}" in result.output


def test_sklearn_example_define_by_run() -> None:
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(REPO / "examples"))
    import sklearn_objective

    study = selftune.create_study(storage="memory", direction="maximize", sampler=selftune.RandomSampler(seed=1))
    study.optimize(sklearn_objective.objective, trials=2, progress=False)
    for t in study.trials:
        assert t.state is selftune.TrialState.COMPLETE and t.value is not None and 0.0 <= t.value <= 1.0
        assert {"C", "kernel"} <= set(t.params)
        assert ("gamma" in t.params) == (t.params["kernel"] == "rbf")
        assert 1e-3 <= t.params["C"] <= 1e3
    study.close()
