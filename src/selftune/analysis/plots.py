"""Plotly figures of a study: history, parallel coordinates, slices, contours, importances, learning curves,
and the timeline of the workers.

Every function takes a :class:`~selftune.study.Study` (or a :class:`~selftune.history.History`) and returns
a ``plotly.graph_objects.Figure`` (``pip install 'selftune[dashboard]'``). A study with nothing to show gives
an empty figure with a note in its middle, never an error. Log-scaled parameters get log axes (or, in
parallel coordinates, which have no log axes, log10 values with ticks labelled in the parameter's units);
categorical parameters get category axes in the declared order of their choices; a trial where a conditional
parameter is inactive is left out of that parameter's panel (parallel coordinates show it as "inactive").

What big studies lose (every figure says so in its title when it happens):

* :func:`plot_history`: the best-so-far line is always exact (it is drawn from its change points). Above
  ``max_points`` values, the value markers keep every trial that improved the best plus evenly spaced others.
* :func:`plot_parallel_coordinates`, :func:`plot_slice`, :func:`plot_contour`: above ``max_points`` complete
  trials, the best tenth of ``max_points`` are kept, plus evenly spaced others (by trial number). The contour
  surface itself is always interpolated from all the trials.
* :func:`plot_intermediate`: above ``max_curves`` curves, the best tenth (by the last reported value) plus
  evenly spaced others; a curve of more than ``max_steps`` reports keeps its first, last and best report plus
  evenly spaced others.
* :func:`plot_timeline`: above ``max_bars`` started trials, the ones that started last.
* :func:`plot_importance` is not downsampled (one bar per parameter).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from selftune._imports import require
from selftune.analysis._common import (
    as_history,
    choice_labels,
    domains,
    finite_complete,
    is_log,
    select_params,
    thin,
    value_of,
)
from selftune.analysis.importance import importance
from selftune.exceptions import InvalidParameterError, NoCompleteTrialError
from selftune.history import History
from selftune.space import Choice, Float, Int, Param
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from selftune.study import Study

__all__ = [
    "plot_history",
    "plot_parallel_coordinates",
    "plot_slice",
    "plot_contour",
    "plot_importance",
    "plot_intermediate",
    "plot_timeline",
]

#: colours of the trial states (by state name), shared by the figures; other states are grey
STATE_COLORS: dict[str, str] = {
    "COMPLETE": "#1f77b4",
    "STOPPED": "#ff7f0e",
    "RUNNING": "#2ca02c",
    "PAUSED": "#9467bd",
    "FAILED": "#d62728",
    "WAITING": "#7f7f7f",
}
_INACTIVE = "inactive"


def _color(state: TrialState) -> str:
    return STATE_COLORS.get(state.value, "#7f7f7f")


def _go() -> Any:
    require("plotly", "dashboard")
    import plotly.graph_objects as go

    return go


def _title(text: str, notes: Sequence[str]) -> str:
    return text if not notes else f"{text}<br><sup>{'; '.join(notes)}</sup>"


def _no_complete(go: Any, title: str, history: History) -> Figure:
    """The empty figure for a study without a complete trial (or without any trial)."""
    return _empty(go, title, "no COMPLETE trial yet" if history.trials else "no trials yet")


def _empty(go: Any, title: str, note: str) -> Figure:
    """A figure with no data and ``note`` in its middle."""
    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[{
            "text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "font": {"size": 16},
        }],
    )
    return fig


def _losses(history: History, records: Sequence[TrialRecord]) -> np.ndarray:
    return history.sign * np.array([value_of(r) for r in records], dtype=float)


def _keep_best(history: History, records: Sequence[TrialRecord], max_points: int) -> np.ndarray:
    """Indices into ``records`` to plot: all, or (above ``max_points``) the best tenth plus evenly spaced."""
    if len(records) <= max_points:
        return np.arange(len(records))
    best = np.argsort(_losses(history, records), kind="stable")[: max(1, max_points // 10)]
    return thin(len(records), max_points, keep=best)


def _downsampled(shown: int, total: int, what: str = "trials") -> list[str]:
    return [] if shown == total else [f"{shown} of {total} {what} shown (downsampled)"]


def _check_max(label: str, value: Any, low: int = 2) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidParameterError(f"`{label}` must be an integer >= {low}, got {value!r}")


def _axis_for(param: Param) -> dict[str, Any]:
    """Axis settings for a parameter's values: log, category (declared order) or linear."""
    if is_log(param):
        return {"type": "log"}
    if isinstance(param, Choice):
        return {"type": "category", "categoryorder": "array", "categoryarray": choice_labels(param)}
    return {"type": "linear"}


def _display(param: Param, value: Any) -> Any:
    """A value as plotted: categories by label, numbers as they are."""
    if isinstance(param, Choice):
        return choice_labels(param)[param.index(value)]
    return value


# -- history ---------------------------------------------------------------------------------------------
def plot_history(study: Study | History, *, log_y: bool = False, max_points: int = 5000) -> Figure:
    """Each complete trial's value by trial number, and the best value so far (in the study's direction).

    STOPPED trials show their last reported value in another style and do not count for the best. Trials
    without a finite value (FAILED, RUNNING, WAITING, ±inf) are counted in the title, not drawn.
    """
    _check_max("max_points", max_points)
    go = _go()
    history = as_history(study)
    title = "Optimization history"
    if not history.trials:
        return _empty(go, title, "no trials yet")
    complete = finite_complete(history)
    stopped = [
        r for r in history.trials
        if r.state is TrialState.STOPPED and r.value is not None and math.isfinite(r.value)
    ]
    notes: list[str] = []
    missing = len(history.trials) - len(complete) - len(stopped)
    if missing:
        counts: dict[str, int] = {}
        drawn = {r.number for r in complete} | {r.number for r in stopped}
        for r in history.trials:
            if r.number not in drawn:
                key = "non-finite" if r.state is TrialState.COMPLETE else r.state.value
                counts[key] = counts.get(key, 0) + 1
        notes.append(", ".join(f"{n} {k}" for k, n in counts.items()) + " not shown (no finite value)")
    if not complete and not stopped:
        return _empty(go, _title(title, notes), "no trial has a value yet")
    fig = go.Figure()
    if complete:
        nums = np.array([r.number for r in complete])
        vals = np.array([value_of(r) for r in complete])
        best = np.minimum.accumulate(vals) if history.sign > 0 else np.maximum.accumulate(vals)
        changes = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
        idx = thin(len(complete), max_points, keep=changes)
        notes += _downsampled(idx.size, len(complete), "values")
        fig.add_trace(go.Scatter(
            x=nums[idx], y=vals[idx], mode="markers", name="value",
            marker={"color": _color(TrialState.COMPLETE), "size": 6},
            hovertemplate="trial %{x}<br>value %{y}<extra></extra>",
        ))
        bx = np.r_[nums[changes], nums[-1]]  # the step line is exact from its change points
        by = np.r_[best[changes], best[-1]]
        fig.add_trace(go.Scatter(
            x=bx, y=by, mode="lines", name="best so far", line={"shape": "hv", "color": "#d62728", "width": 2},
            hovertemplate="trial %{x}<br>best %{y}<extra></extra>",
        ))
    if stopped:
        idx = thin(len(stopped), max_points)
        notes += _downsampled(idx.size, len(stopped), "STOPPED trials")
        fig.add_trace(go.Scatter(
            x=[stopped[i].number for i in idx], y=[stopped[i].value for i in idx], mode="markers",
            name="STOPPED (last report)",
            marker={"color": _color(TrialState.STOPPED), "symbol": "x", "size": 6, "opacity": 0.6},
            hovertemplate="trial %{x}<br>last report %{y}<extra></extra>",
        ))
    fig.update_layout(
        title=_title(f"{title} ({history.direction})", notes),
        xaxis_title="trial", yaxis_title="value",
        yaxis_type="log" if log_y else "linear",
    )
    return fig


# -- parallel coordinates --------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _pc_dimension(name: str, param: Param, records: Sequence[TrialRecord]) -> dict[str, Any]:
    present = [name in r.params for r in records]
    missing = not all(present)
    if isinstance(param, Choice):
        labels = choice_labels(param)
        values = [param.index(r.params[name]) if p else -1 for r, p in zip(records, present, strict=True)]
        tickvals = list(range(len(labels)))
        ticktext = list(labels)
        if missing:
            tickvals.insert(0, -1)
            ticktext.insert(0, _INACTIVE)
        lo, hi = float(tickvals[0]), float(tickvals[-1])
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return {"label": name, "values": values, "range": [lo, hi], "tickvals": tickvals, "ticktext": ticktext}
    assert isinstance(param, Float | Int)
    log = is_log(param)
    low, high = float(param.low), float(param.high)
    if log:
        low, high = math.log10(low), math.log10(high)
    if low == high:
        low, high = low - 0.5, high + 0.5
    sentinel = low - 0.1 * (high - low)
    values_f = [
        (math.log10(float(r.params[name])) if log else float(r.params[name])) if p else sentinel
        for r, p in zip(records, present, strict=True)
    ]
    dim: dict[str, Any] = {
        "label": f"{name} (log)" if log else name, "values": values_f, "range": [sentinel if missing else low, high],
    }
    if log or missing:
        ticks: list[float]
        if log:
            ticks = [float(e) for e in range(math.ceil(low), math.floor(high) + 1)]
            if len(ticks) < 2:
                ticks = np.linspace(low, high, 5).tolist()
            texts = [_fmt(10**t) for t in ticks]
        else:
            ticks = np.linspace(low, high, 5).tolist()
            texts = [_fmt(t) for t in ticks]
        if missing:
            ticks, texts = [sentinel, *ticks], [_INACTIVE, *texts]
        dim["tickvals"], dim["ticktext"] = ticks, texts
    return dim


def plot_parallel_coordinates(
    study: Study | History, params: Iterable[str] | None = None, *, max_points: int = 5000
) -> Figure:
    """The complete trials as lines through the objective value and each parameter (default: all).

    Lines are coloured by value; log-scaled axes show log10 values labelled in the parameter's units; a
    conditional parameter's axis has an "inactive" tick below its range for the trials it was not set in.
    """
    _check_max("max_points", max_points)
    go = _go()
    history = as_history(study)
    known = domains(history)
    records = finite_complete(history)
    title = "Parallel coordinates"
    if not records:
        return _no_complete(go, title, history)
    names = select_params(known, records, params)
    idx = _keep_best(history, records, max_points)
    shown = [records[i] for i in idx]
    values = [value_of(r) for r in shown]
    dims = [{"label": "value", "values": values}]
    dims += [_pc_dimension(n, known[n], shown) for n in names]
    fig = go.Figure(go.Parcoords(
        dimensions=dims,
        line={
            "color": values, "colorscale": "Viridis", "reversescale": history.sign > 0, "showscale": True,
            "colorbar": {"title": {"text": "value"}},
        },
    ))
    fig.update_layout(title=_title(title, _downsampled(len(shown), len(records))))
    return fig


# -- slices ----------------------------------------------------------------------------------------------
def plot_slice(
    study: Study | History, params: Iterable[str] | None = None, *, max_points: int = 5000, cols: int = 4
) -> Figure:
    """The value of each complete trial against each parameter (one panel per parameter, default: all),
    coloured by trial number. A panel leaves out the trials where its parameter was inactive."""
    _check_max("max_points", max_points)
    _check_max("cols", cols, 1)
    go = _go()
    from plotly.subplots import make_subplots

    history = as_history(study)
    known = domains(history)
    records = finite_complete(history)
    title = "Slice"
    if not records:
        return _no_complete(go, title, history)
    names = select_params(known, records, params)
    if not names:
        return _empty(go, title, "the trials set no parameters")
    idx = _keep_best(history, records, max_points)
    shown = [records[i] for i in idx]
    notes = _downsampled(len(shown), len(records))
    ncols = min(len(names), cols)
    nrows = math.ceil(len(names) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, shared_yaxes=True, horizontal_spacing=0.04,
                        vertical_spacing=0.3 / nrows)
    numbers = [r.number for r in records]
    for k, name in enumerate(names):
        row, col = k // ncols + 1, k % ncols + 1
        param = known[name]
        pts = [r for r in shown if name in r.params]
        inactive = sum(1 for r in records if name not in r.params)
        if inactive:
            notes.append(f"{name}: inactive in {inactive}")
        fig.add_trace(go.Scatter(
            x=[_display(param, r.params[name]) for r in pts], y=[r.value for r in pts],
            mode="markers", name=name, showlegend=False,
            customdata=[r.number for r in pts],
            marker={
                "color": [r.number for r in pts], "colorscale": "Blues", "cmin": min(numbers),
                "cmax": max(numbers), "showscale": k == 0, "colorbar": {"title": {"text": "trial"}},
                "line": {"width": 0.5, "color": "#444"},
            },
            hovertemplate=f"trial %{{customdata}}<br>{name} %{{x}}<br>value %{{y}}<extra></extra>",
        ), row=row, col=col)
        fig.update_xaxes(title_text=name, row=row, col=col, **_axis_for(param))
        if col == 1:
            fig.update_yaxes(title_text="value", row=row, col=col)
    fig.update_layout(title=_title(title, notes))
    return fig


# -- contour ---------------------------------------------------------------------------------------------
def _grid_and_coords(param: Param, n_grid: int) -> tuple[list[Any], Any]:
    """The grid along ``param``'s axis (as plotted) and a function from a value to its model coordinate.

    Numbers map to [0, 1] (in log space when log-scaled), categories to ``10 * index`` so that the
    interpolation takes its neighbours in the same category when it can.
    """
    if isinstance(param, Choice):
        return choice_labels(param), lambda v: 10.0 * param.index(v)
    assert isinstance(param, Float | Int)
    low, high = float(param.low), float(param.high)
    if is_log(param):
        lo, hi = math.log(low), math.log(high)
        return np.geomspace(low, high, n_grid).tolist(), lambda v: (math.log(float(v)) - lo) / (hi - lo)
    if low == high:
        return [low], lambda v: 0.0
    return np.linspace(low, high, n_grid).tolist(), lambda v: (float(v) - low) / (high - low)


def plot_contour(
    study: Study | History, x: str, y: str, *, n_grid: int = 100, max_points: int = 5000, neighbours: int = 8
) -> Figure:
    """The value over two parameters: a surface interpolated from the complete trials where both are
    active, with the trials on top.

    The surface is the inverse-distance-weighted mean of the ``neighbours`` nearest trials, on an
    ``n_grid`` by ``n_grid`` grid (one row per category on a categorical axis), in the unit coordinates the
    samplers use (log space on log axes).
    """
    _check_max("n_grid", n_grid)
    _check_max("max_points", max_points)
    _check_max("neighbours", neighbours, 1)
    go = _go()
    from scipy.spatial import cKDTree

    history = as_history(study)
    known = domains(history)
    if x == y:
        raise InvalidParameterError(f"a contour needs two different parameters, got {x!r} twice")
    title = f"Contour of {x} and {y}"
    records = finite_complete(history)
    if not records:
        return _no_complete(go, title, history)
    select_params(known, records, [x, y])  # both known
    both = [r for r in records if x in r.params and y in r.params]
    notes = [] if len(both) == len(records) else [f"{len(records) - len(both)} trials without both left out"]
    if not both:
        return _empty(go, _title(title, notes), f"no COMPLETE trial sets both {x!r} and {y!r}")
    px, y_of = known[x], known[y]
    gx, cx = _grid_and_coords(px, n_grid)
    gy, cy = _grid_and_coords(y_of, n_grid)
    pts = np.array([[cx(r.params[x]), cy(r.params[y])] for r in both])
    vals = np.array([value_of(r) for r in both])
    grid_x = np.array([cx(v) for v in px.choices]) if isinstance(px, Choice) else np.array([cx(v) for v in gx])
    grid_y = np.array([cy(v) for v in y_of.choices]) if isinstance(y_of, Choice) else np.array([cy(v) for v in gy])
    GX, GY = np.meshgrid(grid_x, grid_y)  # (ny, nx)
    k = min(neighbours, len(both))
    dist, nn = cKDTree(pts).query(np.column_stack([GX.ravel(), GY.ravel()]), k=k)
    dist, nn = dist.reshape(GX.size, k), nn.reshape(GX.size, k)
    w = 1.0 / (dist**2 + 1e-12)
    z = ((w * vals[nn]).sum(axis=1) / w.sum(axis=1)).reshape(GX.shape)
    idx = _keep_best(history, both, max_points)
    shown = [both[i] for i in idx]
    notes += _downsampled(len(shown), len(both))
    fig = go.Figure()
    fig.add_trace(go.Contour(
        x=gx, y=gy, z=z, colorscale="Viridis", reversescale=history.sign > 0, name="interpolated",
        contours={"coloring": "heatmap"}, colorbar={"title": {"text": "value"}},
        hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>value ≈ %{{z}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[_display(px, r.params[x]) for r in shown], y=[_display(y_of, r.params[y]) for r in shown],
        mode="markers", name="trials", customdata=[[r.number, r.value] for r in shown],
        marker={"color": "white", "size": 6, "line": {"width": 1, "color": "black"}},
        hovertemplate=f"trial %{{customdata[0]}}<br>{x} %{{x}}<br>{y} %{{y}}<br>value %{{customdata[1]}}<extra></extra>",
    ))
    fig.update_layout(title=_title(title, notes), showlegend=False)
    fig.update_xaxes(title_text=x, **_axis_for(px))
    fig.update_yaxes(title_text=y, **_axis_for(y_of))
    return fig


# -- importance ------------------------------------------------------------------------------------------
def plot_importance(
    study: Study | History, method: str = "fanova", *, params: Iterable[str] | None = None, **options: Any
) -> Figure:
    """Horizontal bars of :func:`~selftune.analysis.importance` (most important on top)."""
    go = _go()
    title = f"Parameter importance ({method})"
    try:
        scores = importance(study, method, params=params, **options)
    except NoCompleteTrialError as exc:
        return _empty(go, title, str(exc))
    if not scores:
        return _empty(go, title, "the trials set no parameters")
    names = list(scores)[::-1]
    values = [scores[n] for n in names]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", name="importance", text=[f"{v:.2f}" for v in values],
        textposition="auto", marker={"color": _color(TrialState.COMPLETE)},
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis={"title": {"text": "importance (sums to 1)"}, "range": [0, 1]},
                      yaxis={"type": "category"})
    return fig


# -- learning curves -------------------------------------------------------------------------------------
_CURVE_STYLE: dict[str, dict[str, Any]] = {
    "COMPLETE": {"dash": "solid", "width": 1.5},
    "STOPPED": {"dash": "dot", "width": 1.5},
    "RUNNING": {"dash": "dash", "width": 2},
    "PAUSED": {"dash": "longdash", "width": 1.5},
    "FAILED": {"dash": "dashdot", "width": 1},
}


def plot_intermediate(
    study: Study | History, *, log_y: bool = False, max_curves: int = 1000, max_steps: int = 1000
) -> Figure:
    """Each trial's reported values by step: one trace per state (the curves inside separated by gaps),
    STOPPED curves dotted in orange and ending in a cross where the scheduler stopped them."""
    _check_max("max_curves", max_curves)
    _check_max("max_steps", max_steps, 3)
    go = _go()
    history = as_history(study)
    title = "Learning curves"
    curves = [r for r in history.trials if r.intermediate]
    if not curves:
        return _empty(go, title, "no trials yet" if not history.trials else "no trial reported a value yet")
    last = np.array([history.sign * r.intermediate[max(r.intermediate)] for r in curves])
    if len(curves) > max_curves:
        best = np.argsort(last, kind="stable")[: max(1, max_curves // 10)]
        idx = thin(len(curves), max_curves, keep=best)
    else:
        idx = np.arange(len(curves))
    shown = [curves[i] for i in idx]
    notes = _downsampled(len(shown), len(curves), "curves")
    thinned = 0
    fig = go.Figure()
    for state in TrialState:
        group = [r for r in shown if r.state is state]
        if not group:
            continue
        xs: list[Any] = []
        ys: list[Any] = []
        cd: list[Any] = []
        for r in group:
            steps = sorted(r.intermediate)
            vals = np.array([r.intermediate[s] for s in steps], dtype=float)
            if len(steps) > max_steps:
                thinned += 1
                keep = [0, len(steps) - 1, int(np.argmin(history.sign * vals))]
                sel = thin(len(steps), max_steps, keep=keep)
                steps, vals = [steps[i] for i in sel], vals[sel]
            xs += [*steps, None]
            ys += [*vals.tolist(), None]
            cd += [r.number] * len(steps) + [None]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=state.value, customdata=cd, legendgroup=state.value,
            line={"color": _color(state), **_CURVE_STYLE.get(state.value, {"dash": "solid", "width": 1})},
            opacity=0.8 if state is TrialState.COMPLETE else 0.9,
            hovertemplate=f"trial %{{customdata}} ({state.value})<br>step %{{x}}<br>value %{{y}}<extra></extra>",
        ))
        if state is TrialState.STOPPED:
            ends = [(r.number, max(r.intermediate), r.intermediate[max(r.intermediate)], r.reason or "")
                    for r in group]
            fig.add_trace(go.Scatter(
                x=[e[1] for e in ends], y=[e[2] for e in ends], mode="markers", name="stopped here",
                legendgroup=state.value, customdata=[[e[0], e[3]] for e in ends],
                marker={"symbol": "x", "size": 8, "color": _color(state)},
                hovertemplate="trial %{customdata[0]} stopped at step %{x}<br>%{customdata[1]}<extra></extra>",
            ))
    if thinned:
        notes.append(f"{thinned} curves thinned to {max_steps} reports")
    fig.update_layout(
        title=_title(title, notes), xaxis_title="step", yaxis_title="value",
        yaxis_type="log" if log_y else "linear",
    )
    return fig


# -- timeline --------------------------------------------------------------------------------------------
def plot_timeline(study: Study | History, *, max_bars: int = 5000) -> Figure:
    """One bar per trial from its start to its end (now, for RUNNING trials), one row per worker,
    coloured by state. Trials that never started (WAITING) are counted in the title.

    Above ``max_bars`` started trials, only the ``max_bars`` that started last are drawn (an exact picture
    of the recent parallelism, rather than a thinned one with holes in it); the title says how many FAILED
    trials are left out.
    """
    _check_max("max_bars", max_bars, 1)
    go = _go()
    history = as_history(study)
    title = "Timeline"
    if not history.trials:
        return _empty(go, title, "no trials yet")
    now = time.time()
    started = [r for r in history.trials if r.started_at is not None]
    notes = []
    if len(started) < len(history.trials):
        notes.append(f"{len(history.trials) - len(started)} trials not started yet")
    if not started:
        return _empty(go, _title(title, notes), "no trial has started yet")
    if len(started) > max_bars:
        by_start = sorted(started, key=lambda r: (r.started_at, r.number))
        left_out = by_start[: len(by_start) - max_bars]
        started = by_start[len(left_out):]
        failed = sum(1 for r in left_out if r.state is TrialState.FAILED)
        notes.append(f"the last {max_bars} of {len(by_start)} started trials shown"
                     + (f" ({failed} earlier FAILED not shown)" if failed else ""))
    workers: list[str] = []
    for r in sorted(started, key=lambda r: (r.started_at, r.number)):
        w = r.worker or "(unknown)"
        if w not in workers:
            workers.append(w)
    fig = go.Figure()
    for state in TrialState:
        group = [r for r in started if r.state is state]
        if not group:
            continue
        starts = [float(r.started_at) for r in group]  # type: ignore[arg-type]
        ends = [
            float(r.finished_at) if r.finished_at is not None else (now if state is TrialState.RUNNING else s)
            for r, s in zip(group, starts, strict=True)
        ]
        fig.add_trace(go.Bar(
            y=[r.worker or "(unknown)" for r in group],
            base=[datetime.fromtimestamp(s) for s in starts],
            x=[max(e - s, 0.0) * 1000.0 for s, e in zip(starts, ends, strict=True)],  # ms on a date axis
            orientation="h", name=state.value, marker={"color": _color(state)}, opacity=0.85,
            customdata=[[r.number, e - s] for r, s, e in zip(group, starts, ends, strict=True)],
            hovertemplate=(
                f"trial %{{customdata[0]}} ({state.value})<br>%{{base|%H:%M:%S}}, %{{customdata[1]:.3g}} s"
                "<extra></extra>"
            ),
        ))
    fig.update_layout(
        title=_title(title, notes), barmode="overlay",
        xaxis={"type": "date", "title": {"text": "time (local)"}},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": workers, "title": {"text": "worker"}},
    )
    return fig
