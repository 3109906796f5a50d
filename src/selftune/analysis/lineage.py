"""Population based training at a glance: who copied whom, and the schedule the winner trained with.

>>> from selftune.analysis.lineage import plot_lineage, plot_schedule  # doctest: +SKIP
>>> plot_lineage(study).show()     # every member's curve, an arrow for each exploit
>>> plot_schedule(study.best).show()   # its hyperparameters by step, inherited segments included
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selftune.analysis._common import as_history
from selftune.analysis.plots import _check_max, _empty, _go
from selftune.history import History
from selftune.trial import TrialRecord

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from selftune.study import Study

__all__ = ["plot_lineage", "plot_schedule"]


def plot_lineage(study: Study | History, *, max_members: int = 200) -> Figure:
    """Each member's reported curve, with a dashed segment from ``(source_step, source value)`` of the member
    it copied to ``(step, own value)`` where it exploited; the best member's curve is drawn thicker."""
    _check_max("max_members", max_members)
    go = _go()
    history = as_history(study)
    title = "Population lineage"
    members = [r for r in history.trials if r.intermediate][:max_members]
    if not members:
        return _empty(go, title, "no member reported a value yet")
    by_number = {r.number: r for r in history.trials}
    best = min(members, key=lambda r: history.sign * r.intermediate[max(r.intermediate)])
    fig = go.Figure()
    for r in members:
        steps = sorted(r.intermediate)
        fig.add_trace(go.Scatter(
            x=steps, y=[r.intermediate[s] for s in steps], mode="lines", name=f"trial {r.number}",
            line={"width": 3 if r is best else 1}, legendgroup=str(r.number),
            hovertemplate=f"trial {r.number}<br>step %{{x}}<br>value %{{y}}<extra></extra>",
        ))
    xs: list[Any] = []
    ys: list[Any] = []
    text: list[Any] = []
    for r in members:
        for e in r.lineage:
            src = by_number.get(e.source)
            if src is None or e.source == r.number:
                continue
            src_value = _at(src, e.source_step)
            own_value = r.intermediate.get(e.step)
            if src_value is None or own_value is None:
                continue
            xs += [e.source_step, e.step, None]
            ys += [src_value, own_value, None]
            label = f"trial {r.number} took over trial {e.source} (step {e.source_step}) at step {e.step}"
            text += [label, label, None]
    if xs:
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name="exploits", text=text, line={"dash": "dash", "color": "#555"},
            marker={"size": 5}, hovertemplate="%{text}<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="value", template="plotly_white")
    return fig


def plot_schedule(trial: TrialRecord | Study, params: Sequence[str] | None = None) -> Figure:
    """The hyperparameters ``trial`` (a record, or a study's best trial) trained with, by step: one step line
    per numeric parameter (each on its own row), changes marked."""
    from selftune.study import Study

    go = _go()
    from plotly.subplots import make_subplots

    record = trial.best if isinstance(trial, Study) else trial
    schedule = record.schedule
    last = record.last_step if record.last_step is not None else max(schedule.changes, default=0)
    names = list(params) if params is not None else [
        k for k, v in schedule.at(0).items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    title = f"Schedule of trial {record.number}"
    if not names:
        return _empty(go, title, "no numeric hyperparameter to show")
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for i, name in enumerate(names, start=1):
        xs, ys = [], []
        for start, p in schedule:
            xs.append(start)
            ys.append(p.get(name))
        xs.append(max(last, xs[-1]))
        ys.append(ys[-1])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", line={"shape": "hv"}, name=name, showlegend=False,
            hovertemplate=f"{name} %{{y}} from step %{{x}}<extra></extra>",
        ), row=i, col=1)
    fig.update_layout(title=title, template="plotly_white", height=max(300, 220 * len(names)))
    fig.update_xaxes(title_text="step", row=len(names), col=1)
    return fig


def _at(record: TrialRecord, step: int) -> float | None:
    """The value ``record`` reported at ``step``, or at the latest step before it."""
    before = [s for s in record.intermediate if s <= step]
    return record.intermediate[max(before)] if before else None
