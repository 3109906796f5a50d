"""The standard set of figures of a study, shared by the dashboard and the HTML report.

Each panel is one of the figures of :mod:`selftune.analysis.plots`, drawn with limits that keep it small
whatever the size of the study (a bounded number of points, lines or bars, importance fitted on at most
``importance_trials`` complete trials), so a study of 100,000 trials costs no more to ship and draw than one
of a few thousand.

A study tuned by population based training (some trial carries ``selftune:pbt``) has two more panels,
:data:`PBT_PANELS`: the population's lineage and the best member's schedule; :func:`panels_of` gives the
panels of a study.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from selftune.analysis._common import domains, finite_complete, thin
from selftune.analysis.lineage import best_member, has_lineage, plot_lineage, plot_schedule
from selftune.analysis.plots import (
    _empty,
    _go,
    plot_history,
    plot_importance,
    plot_intermediate,
    plot_parallel_coordinates,
    plot_slice,
    plot_timeline,
)
from selftune.exceptions import InvalidParameterError
from selftune.history import History

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

__all__ = ["PANELS", "PBT_PANELS", "ALL_PANELS", "panels_of", "panel_figure", "importance_method",
           "importance_sample"]

#: panel key → title, in the order they are shown
PANELS: dict[str, str] = {
    "history": "Optimization history",
    "importance": "Parameter importance",
    "parallel": "Parallel coordinates",
    "slice": "Slice",
    "intermediate": "Learning curves",
    "timeline": "Timeline",
}
#: the panels of a study with population based training's lineage, shown after :data:`PANELS`
PBT_PANELS: dict[str, str] = {
    "lineage": "Population lineage",
    "schedule": "Schedule of the best member",
}
#: every panel a study may have
ALL_PANELS: dict[str, str] = {**PANELS, **PBT_PANELS}


def panels_of(history: History, *, pbt: bool | None = None) -> dict[str, str]:
    """The panels of ``history``: :data:`PANELS`, plus :data:`PBT_PANELS` when it has PBT lineage
    (``pbt``: whether it has, when the caller knows already)."""
    return ALL_PANELS if (has_lineage(history) if pbt is None else pbt) else PANELS


def importance_method() -> str:
    """fANOVA when scikit-learn is installed, else PED-ANOVA (which needs nothing more)."""
    return "fanova" if importlib.util.find_spec("sklearn") is not None else "ped-anova"


def importance_sample(history: History, max_trials: int) -> History:
    """``history`` with at most ``max_trials`` of its complete trials (evenly spaced by trial number,
    deterministic), for importance measures whose cost grows faster than the number of trials."""
    complete = finite_complete(history)
    if len(complete) <= max_trials:
        return history
    idx = thin(len(complete), max_trials)
    return History([complete[i] for i in idx], direction=history.direction, params=history.params)


def panel_figure(
    history: History, kind: str, *, max_points: int = 2000, importance_trials: int = 1000
) -> Figure:
    """The figure of panel ``kind`` (a key of :data:`ALL_PANELS`) for ``history``, downsampled to at most
    ``max_points`` points, lines or bars per figure (slices: ``4 * max_points`` markers over all the
    parameters' panels; learning curves: ``max_points // 10`` curves of at most ``max_points // 20`` reports;
    lineage: ``max_points // 20`` members' curves of at most ``max_points // 20`` reports)."""
    if kind == "history":
        return plot_history(history, max_points=max_points)
    if kind == "importance":
        sample = importance_sample(history, importance_trials)
        fig = plot_importance(sample, importance_method())
        n_complete = len(finite_complete(history))
        if sample is not history:
            fig.update_layout(title=f"{fig.layout.title.text}<br><sup>fitted on {importance_trials} of "
                                    f"{n_complete} complete trials (evenly spaced)</sup>")
        return fig
    if kind == "parallel":
        return plot_parallel_coordinates(history, max_points=max_points)
    if kind == "slice":  # one panel per parameter: at most 4 * max_points markers in all
        n_params = max(1, len(domains(history)))
        return plot_slice(history, max_points=max(100, min(max_points, 4 * max_points // n_params)))
    if kind == "intermediate":
        # at most max_points // 10 curves of max_points // 20 reports: max_points**2 / 200 points at worst
        return plot_intermediate(history, max_curves=max(2, max_points // 10), max_steps=max(3, max_points // 20))
    if kind == "timeline":
        return plot_timeline(history, max_bars=max_points)
    if kind == "lineage":  # like the learning curves: max_points**2 / 400 curve points, max_points exploits
        return plot_lineage(history, max_members=max(2, max_points // 20), max_steps=max(3, max_points // 20),
                            max_exploits=max(2, max_points))
    if kind == "schedule":
        best = best_member(history)
        if best is None:
            return _empty(_go(), PBT_PANELS["schedule"], "no member reported a value yet")
        fig = plot_schedule(best, max_segments=max(2, max_points))
        label = f"trial {best.number}"
        fig.update_layout(title=fig.layout.title.text.replace(label, f"{label} (the best member)", 1))
        return fig
    raise InvalidParameterError(f"unknown panel {kind!r}; expected one of {list(ALL_PANELS)}")
