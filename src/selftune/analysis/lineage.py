"""Population based training at a glance: who copied whom, and the schedule the winner trained with.

>>> from selftune.analysis.lineage import plot_lineage, plot_schedule  # doctest: +SKIP
>>> plot_lineage(study).show()     # every member's curve, an arrow for each exploit
>>> plot_schedule(study.best).show()   # its hyperparameters by step, inherited segments included

Both take limits (``max_members``, ``max_steps``, ``max_exploits``, ``max_segments``) so a figure stays small
whatever the size of the population and the length of training: the best member and the members it copied
are always kept, the others thinned evenly, and the title says what was left out.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selftune.analysis._common import as_history, thin
from selftune.analysis.plots import _check_max, _empty, _go, _title
from selftune.history import History
from selftune.schedule import PBT_ATTR
from selftune.trial import TrialRecord

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from selftune.study import Study

__all__ = ["plot_lineage", "plot_schedule", "has_lineage", "best_member"]


def has_lineage(history: History) -> bool:
    """True when some trial carries population based training's schedule and lineage (``selftune:pbt``)."""
    return any(PBT_ATTR in r.system_attrs for r in history.trials)


def _last(r: TrialRecord) -> float:
    return r.intermediate[max(r.intermediate)]


def best_member(history: History) -> TrialRecord | None:
    """The best COMPLETE trial; while there is none (a population still training), the member whose latest
    report is best. None when no trial reported anything."""
    best = history.best()
    if best is not None:
        return best
    reported = [r for r in history.trials if r.intermediate and not math.isnan(_last(r))]
    return min(reported, key=lambda r: (history.sign * _last(r), r.number), default=None)


def _ancestors(r: TrialRecord, by_number: dict[int, TrialRecord], limit: int) -> list[int]:
    """The members ``r`` copied from, and the ones they copied from, breadth first (at most ``limit``)."""
    seen: list[int] = []
    todo = [r]
    while todo and len(seen) < limit:
        cur = todo.pop(0)
        for e in cur.lineage:
            if e.source != cur.number and e.source not in seen and e.source != r.number and e.source in by_number:
                seen.append(e.source)
                todo.append(by_number[e.source])
    return seen[:limit]


def plot_lineage(
    study: Study | History, *, max_members: int = 200, max_steps: int | None = None,
    max_exploits: int | None = None,
) -> Figure:
    """Each member's reported curve, with a dashed segment from ``(source_step, source value)`` of the member
    it copied to ``(step, own value)`` where it exploited; the best member's curve is drawn thicker.

    At most ``max_members`` curves (the best member and its ancestors first, the others evenly spaced), each
    thinned to ``max_steps`` reports (None: all), and ``max_exploits`` dashed segments (None: all).
    """
    _check_max("max_members", max_members)
    for label, limit in (("max_steps", max_steps), ("max_exploits", max_exploits)):
        if limit is not None:
            _check_max(label, limit)
    go = _go()
    history = as_history(study)
    title = "Population lineage"
    members = [r for r in history.trials if r.intermediate]
    if not members:
        return _empty(go, title, "no member reported a value yet")
    by_number = {r.number: r for r in history.trials}
    best = best_member(history)
    if best is None or not best.intermediate:
        best = members[0]
    notes: list[str] = []
    if len(members) > max_members:
        drawn = {r.number: r for r in members}
        keep = {best.number, *_ancestors(best, drawn, max_members - 1)}
        rest = [r for r in members if r.number not in keep]
        if len(keep) < max_members:
            keep |= {rest[i].number for i in thin(len(rest), max_members - len(keep))}
        notes.append(f"{len(keep)} of {len(members)} members shown (the best, its sources, others evenly spaced)")
        members = [r for r in members if r.number in keep]
    fig = go.Figure()
    thinned = 0
    for r in members:
        steps = sorted(r.intermediate)
        if max_steps is not None and len(steps) > max_steps:
            marks = {e.step for e in r.lineage}
            idx = thin(len(steps), max_steps, keep=[0, len(steps) - 1,
                                                    *[i for i, s in enumerate(steps) if s in marks]][:max_steps])
            steps = [steps[i] for i in idx]
            thinned += 1
        fig.add_trace(go.Scatter(
            x=steps, y=[r.intermediate[s] for s in steps], mode="lines", name=f"trial {r.number}",
            line={"width": 3 if r.number == best.number else 1}, legendgroup=str(r.number),
            hovertemplate=f"trial {r.number}<br>step %{{x}}<br>value %{{y}}<extra></extra>",
        ))
    if thinned:
        notes.append(f"{thinned} curve(s) thinned to {max_steps} reports")
    segments: list[tuple[int, float, int, float, str]] = []
    sorted_steps: dict[int, list[int]] = {}
    for r in members:
        for e in r.lineage:
            src = by_number.get(e.source)
            if src is None or e.source == r.number:
                continue
            src_value = _at(src, e.source_step, sorted_steps)
            own_value = r.intermediate.get(e.step)
            if src_value is None or own_value is None:
                continue
            label = f"trial {r.number} took over trial {e.source} (step {e.source_step}) at step {e.step}"
            segments.append((e.source_step, src_value, e.step, own_value, label))
    if max_exploits is not None and len(segments) > max_exploits:
        notes.append(f"{max_exploits} of {len(segments)} exploits shown (evenly spaced)")
        segments = [segments[i] for i in thin(len(segments), max_exploits)]
    if segments:
        xs: list[Any] = []
        ys: list[Any] = []
        text: list[Any] = []
        for x0, y0, x1, y1, label in segments:
            xs += [x0, x1, None]
            ys += [y0, y1, None]
            text += [label, label, None]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name="exploits", text=text, line={"dash": "dash", "color": "#555"},
            marker={"size": 5}, hovertemplate="%{text}<extra></extra>",
        ))
    fig.update_layout(title=_title(title, notes), xaxis_title="step", yaxis_title="value", template="plotly_white")
    return fig


def plot_schedule(
    trial: TrialRecord | Study, params: Sequence[str] | None = None, *, max_segments: int | None = None
) -> Figure:
    """The hyperparameters ``trial`` (a record, or a study's best trial) trained with, by step: one step line
    per numeric parameter (each on its own row), changes marked. ``max_segments``: the most segments drawn
    (the first and last kept, the others evenly spaced; None: all)."""
    from selftune.study import Study

    if max_segments is not None:
        _check_max("max_segments", max_segments)
    go = _go()
    from plotly.subplots import make_subplots

    record = trial.best if isinstance(trial, Study) else trial
    schedule = record.schedule
    last = record.last_step if record.last_step is not None else max(schedule.changes, default=0)
    names = list(params) if params is not None else [
        k for k, v in schedule.at(0).items() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    segments = list(schedule)
    notes: list[str] = []
    if max_segments is not None and len(segments) > max_segments:
        notes.append(f"{max_segments} of {len(segments)} segments shown (evenly spaced)")
        segments = [segments[i] for i in thin(len(segments), max_segments, keep=[0, len(segments) - 1])]
    title = _title(f"Schedule of trial {record.number}", notes)
    if not names:
        return _empty(go, title, "no numeric hyperparameter to show")
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names)
    for i, name in enumerate(names, start=1):
        xs, ys = [], []
        for start, p in segments:
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


def _at(record: TrialRecord, step: int, cache: dict[int, list[int]] | None = None) -> float | None:
    """The value ``record`` reported at ``step``, or at the latest step before it."""
    steps = None if cache is None else cache.get(record.number)
    if steps is None:
        steps = sorted(record.intermediate)
        if cache is not None:
            cache[record.number] = steps
    i = bisect.bisect_right(steps, step)
    return record.intermediate[steps[i - 1]] if i else None
