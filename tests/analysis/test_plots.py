"""Every figure builds from real studies and holds the data it should; empty studies, big studies, errors."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import selftune
from selftune.analysis import (
    plot_contour,
    plot_history,
    plot_importance,
    plot_intermediate,
    plot_parallel_coordinates,
    plot_slice,
    plot_timeline,
)
from selftune.exceptions import InvalidParameterError, MissingDependencyError
from selftune.history import History
from selftune.space import Float
from selftune.trial import TrialRecord, TrialState

go = pytest.importorskip("plotly.graph_objects")


def trace(fig: Any, name: str) -> Any:
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def complete(study: selftune.Study) -> list[TrialRecord]:
    return [t for t in study.trials if t.state is TrialState.COMPLETE]


def is_empty_with_note(fig: Any, note: str) -> bool:
    return len(fig.data) == 0 and any(note in a.text for a in fig.layout.annotations)


# -- history ----------------------------------------------------------------------------------------------
def test_history_values_and_best_so_far(mixed_study: selftune.Study) -> None:
    fig = plot_history(mixed_study)
    assert isinstance(fig, go.Figure)
    values, best = trace(fig, "value"), trace(fig, "best so far")
    done = complete(mixed_study)
    assert list(values.x) == [t.number for t in done]
    assert list(values.y) == [t.value for t in done]
    assert np.all(np.diff(best.y) <= 0)  # minimising: never goes up
    assert best.y[-1] == mixed_study.best_value and best.x[-1] == done[-1].number
    assert best.line.shape == "hv"
    assert "3 FAILED, 1 RUNNING" in fig.layout.title.text


def test_history_maximize(maximize_study: selftune.Study) -> None:
    fig = plot_history(maximize_study)
    best = trace(fig, "best so far")
    assert np.all(np.diff(best.y) >= 0)
    assert best.y[-1] == maximize_study.best_value
    assert "maximize" in fig.layout.title.text
    assert plot_history(maximize_study, log_y=True).layout.yaxis.type == "log"


def test_history_shows_stopped_trials_apart(asha_study: selftune.Study) -> None:
    fig = plot_history(asha_study)
    stopped = [t for t in asha_study.trials if t.state is TrialState.STOPPED]
    assert list(trace(fig, "STOPPED (last report)").x) == [t.number for t in stopped]
    assert trace(fig, "best so far").y[-1] == asha_study.best_value  # STOPPED values never count


def test_history_downsamples_values_but_keeps_the_best_line_exact() -> None:
    rng = np.random.default_rng(0)
    vals = rng.normal(size=12_000) + np.linspace(0, -3, 12_000)
    records = [TrialRecord(number=i, state=TrialState.COMPLETE, params={}, value=float(v)) for i, v in enumerate(vals)]
    fig = plot_history(History(records), max_points=2000)
    shown, best = trace(fig, "value"), trace(fig, "best so far")
    exact = np.minimum.accumulate(vals)
    assert len(shown.x) <= 2000 + len(best.x) and "downsampled" in fig.layout.title.text
    assert set(best.x[:-1]) <= set(shown.x)  # every improvement is shown
    # the step line read at each trial number equals the exact best so far
    at = np.searchsorted(np.asarray(best.x), np.arange(12_000), side="right") - 1
    assert np.array_equal(np.asarray(best.y)[at], exact)


# -- parallel coordinates ---------------------------------------------------------------------------------
def test_parallel_coordinates(mixed_study: selftune.Study) -> None:
    fig = plot_parallel_coordinates(mixed_study)
    (pc,) = fig.data
    dims = {d.label: d for d in pc.dimensions}
    assert list(dims) == ["value", "x", "lr (log)", "opt", "momentum"]
    done = complete(mixed_study)
    assert len(dims["value"].values) == len(done)
    assert np.allclose(dims["lr (log)"].values, [math.log10(t.params["lr"]) for t in done])
    assert list(dims["lr (log)"].ticktext) == ["0.0001", "0.001", "0.01", "0.1", "1"]
    assert list(dims["opt"].ticktext) == ["adam", "sgd"]
    assert dims["momentum"].ticktext[0] == "inactive"  # a conditional parameter
    n_inactive = sum(1 for t in done if "momentum" not in t.params)
    assert sum(v == dims["momentum"].tickvals[0] for v in dims["momentum"].values) == n_inactive
    only = plot_parallel_coordinates(mixed_study, params=["lr"])
    assert [d.label for d in only.data[0].dimensions] == ["value", "lr (log)"]


# -- slices -----------------------------------------------------------------------------------------------
def test_slice(mixed_study: selftune.Study) -> None:
    fig = plot_slice(mixed_study)
    assert [t.name for t in fig.data] == ["x", "lr", "opt", "momentum"]
    assert fig.layout.xaxis2.type == "log"  # lr
    assert fig.layout.xaxis3.type == "category" and list(fig.layout.xaxis3.categoryarray) == ["adam", "sgd"]
    done = complete(mixed_study)
    assert len(trace(fig, "momentum").x) == sum(1 for t in done if "momentum" in t.params)
    assert set(trace(fig, "opt").x) <= {"adam", "sgd"}
    assert "momentum: inactive in" in fig.layout.title.text


# -- contour ----------------------------------------------------------------------------------------------
def test_contour_numeric_and_log(mixed_study: selftune.Study) -> None:
    fig = plot_contour(mixed_study, "x", "lr", n_grid=40)
    surface, points = trace(fig, "interpolated"), trace(fig, "trials")
    assert np.asarray(surface.z).shape == (40, 40)
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "linear"
    done = [t.value for t in complete(mixed_study)]
    z = np.asarray(surface.z)
    assert min(done) - 1e-9 <= z.min() and z.max() <= max(done) + 1e-9  # a weighted mean of trials
    assert len(points.x) == len(done)


def test_contour_categorical_and_conditional(mixed_study: selftune.Study) -> None:
    fig = plot_contour(mixed_study, "opt", "momentum", n_grid=30)
    surface = trace(fig, "interpolated")
    assert list(surface.x) == ["adam", "sgd"] and np.asarray(surface.z).shape == (30, 2)
    assert fig.layout.xaxis.type == "category"
    # momentum exists only with sgd: the trials without it are left out and counted
    assert set(trace(fig, "trials").x) == {"sgd"} and "without both left out" in fig.layout.title.text


def test_contour_errors(mixed_study: selftune.Study) -> None:
    with pytest.raises(InvalidParameterError, match="two different parameters"):
        plot_contour(mixed_study, "x", "x")
    with pytest.raises(InvalidParameterError, match="unknown parameter 'nope'"):
        plot_contour(mixed_study, "x", "nope")


# -- importance -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fanova", "ped-anova"])
def test_importance_bars(mixed_study: selftune.Study, method: str) -> None:
    fig = plot_importance(mixed_study, method=method)
    (bars,) = fig.data
    assert set(bars.y) == {"x", "lr", "opt", "momentum"}
    assert math.isclose(sum(bars.x), 1.0) and list(bars.x) == sorted(bars.x)  # the most important on top
    assert method in fig.layout.title.text


# -- learning curves --------------------------------------------------------------------------------------
def test_intermediate_with_asha(asha_study: selftune.Study) -> None:
    trials = asha_study.trials
    stopped = {t.number for t in trials if t.state is TrialState.STOPPED}
    finished = {t.number for t in trials if t.state is TrialState.COMPLETE}
    assert stopped and finished
    fig = plot_intermediate(asha_study)
    curves_stopped, curves_done = trace(fig, "STOPPED"), trace(fig, "COMPLETE")
    assert {n for n in curves_stopped.customdata if n is not None} == stopped
    assert {n for n in curves_done.customdata if n is not None} == finished
    assert curves_stopped.line.dash != curves_done.line.dash
    assert curves_stopped.line.color != curves_done.line.color
    ends = trace(fig, "stopped here")  # where ASHA stopped each one
    assert sorted(ends.customdata[i][0] for i in range(len(ends.x))) == sorted(stopped)
    by_number = {t.number: t for t in trials}
    for (number, _reason), step in zip(ends.customdata, ends.x, strict=True):
        assert step == by_number[number].last_step
    assert sum(y is None for y in curves_stopped.y) == len(stopped)  # one gap after each curve


def test_intermediate_thins_long_curves() -> None:
    curve = {s: 1.0 / (s + 1) for s in range(3000)}
    records = [TrialRecord(number=0, state=TrialState.COMPLETE, params={}, value=curve[2999], intermediate=curve)]
    fig = plot_intermediate(History(records), max_steps=100)
    line = trace(fig, "COMPLETE")
    steps = [x for x in line.x if x is not None]
    assert len(steps) <= 103 and steps[0] == 0 and steps[-1] == 2999
    assert "thinned" in fig.layout.title.text


def test_intermediate_without_reports(mixed_study: selftune.Study) -> None:
    assert is_empty_with_note(plot_intermediate(mixed_study), "no trial reported")


# -- timeline ---------------------------------------------------------------------------------------------
def test_timeline_one_row_per_worker(two_worker_study: tuple[selftune.Study, selftune.Study]) -> None:
    a, b = two_worker_study
    fig = plot_timeline(a)
    rows = {y for t in fig.data for y in t.y}
    assert rows == {a.worker, b.worker}
    assert list(fig.layout.yaxis.categoryarray) == [a.worker, b.worker]  # in order of first start
    assert sum(len(t.y) for t in fig.data) == len(a.trials)  # one bar per trial
    assert len(trace(fig, "FAILED").y) == 1 and trace(fig, "FAILED").marker.color != trace(fig, "COMPLETE").marker.color
    assert fig.layout.xaxis.type == "date"
    for bar in fig.data:
        assert all(x >= 0 for x in bar.x)


def test_timeline_running_trial_reaches_now(mixed_study: selftune.Study) -> None:
    fig = plot_timeline(mixed_study)
    running = trace(fig, "RUNNING")
    assert len(running.y) == 1 and running.x[0] > 0
    assert {t.name for t in fig.data} == {"COMPLETE", "FAILED", "RUNNING"}


# -- every figure -----------------------------------------------------------------------------------------
ALL = [
    lambda s: plot_history(s),
    lambda s: plot_parallel_coordinates(s),
    lambda s: plot_slice(s),
    lambda s: plot_contour(s, "x", "y"),
    lambda s: plot_importance(s),
    lambda s: plot_importance(s, method="ped-anova"),
    lambda s: plot_intermediate(s),
    lambda s: plot_timeline(s),
]


@pytest.mark.parametrize("plot", ALL)
def test_empty_study_gives_a_note(empty_study: selftune.Study, plot: Any) -> None:
    fig = plot(empty_study)
    assert isinstance(fig, go.Figure) and len(fig.data) == 0 and fig.layout.annotations


@pytest.mark.parametrize("plot", ALL)
def test_only_failed_and_running_trials(empty_study: selftune.Study, plot: Any) -> None:
    first = empty_study.ask()
    first.float("x", 0, 1)
    first.float("y", 0, 1)
    empty_study.tell(first, state="FAILED")
    empty_study.ask()
    fig = plot(empty_study)
    assert isinstance(fig, go.Figure)
    if fig.data:  # only the timeline has something to draw
        assert {t.name for t in fig.data} == {"FAILED", "RUNNING"}


def test_a_missing_plotly_names_the_extra(mixed_study: selftune.Study, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(MissingDependencyError, match=r"selftune\[dashboard\]"):
        plot_history(mixed_study)


def test_imports_stay_lazy() -> None:
    code = (
        "import sys, selftune, selftune.analysis\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'plotly', 'sklearn'})\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_big_studies_keep_the_best_and_an_even_sample() -> None:
    rng = np.random.default_rng(0)
    xs = rng.random((6000, 2))
    records = [
        TrialRecord(number=i, state=TrialState.COMPLETE, params={"x": float(a), "y": float(b)}, value=float(a + b))
        for i, (a, b) in enumerate(xs)
    ]
    history = History(records, params={"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})
    best = set(np.argsort(xs.sum(axis=1))[:100].tolist())  # the best tenth of max_points
    figs = {
        "slice": plot_slice(history, max_points=1000),
        "contour": plot_contour(history, "x", "y", max_points=1000, n_grid=20),
        "parallel": plot_parallel_coordinates(history, max_points=1000),
    }
    for fig in figs.values():
        assert "1000 of 6000 trials shown (downsampled)" in fig.layout.title.text
    for t in (trace(figs["slice"], "x"), trace(figs["contour"], "trials")):
        numbers = [c if np.isscalar(c) else c[0] for c in t.customdata]
        assert len(numbers) == 1000 and best <= set(numbers)
    assert len(figs["parallel"].data[0].dimensions[0].values) == 1000


def test_timeline_keeps_the_latest_trials_above_max_bars(two_worker_study: tuple[selftune.Study, selftune.Study]) -> None:
    a, _ = two_worker_study
    fig = plot_timeline(a, max_bars=4)
    shown = sorted(n for t in fig.data for n, _ in t.customdata)
    latest = sorted(a.trials, key=lambda r: (r.started_at, r.number))[-4:]
    assert shown == sorted(r.number for r in latest)
    assert "the last 4 of 10 started trials shown" in fig.layout.title.text
    with pytest.raises(InvalidParameterError, match="max_bars"):
        plot_timeline(a, max_bars=0)
