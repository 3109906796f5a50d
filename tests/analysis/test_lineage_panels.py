"""PBT's lineage and schedule panels: present only for a study with lineage, and bounded for big ones."""

from __future__ import annotations

from typing import Any

import pytest

from selftune.analysis.lineage import best_member, has_lineage, plot_lineage, plot_schedule
from selftune.analysis.panels import ALL_PANELS, PANELS, PBT_PANELS, panel_figure, panels_of
from selftune.history import History
from selftune.schedule import PBT_ATTR
from selftune.trial import TrialRecord, TrialState

pytest.importorskip("plotly")


def member(number: int, steps: int, sources: list[tuple[int, int, int]], *, slope: float = 1.0,
           state: TrialState = TrialState.COMPLETE) -> TrialRecord:
    """A member reporting ``slope * step`` at every step, exploiting ``(step, source, source_step)`` each."""
    curve = {s: slope * s + number * 1e-3 for s in range(steps)}
    h = [0.1 * (number % 7)]
    schedule: list[list[Any]] = [[0, {"h": h[0]}]]
    lineage = []
    for step, source, source_step in sources:
        lineage.append({"step": step, "source": source, "source_step": source_step, "params": {"h": step / steps}})
        schedule.append([step, {"h": step / steps}])
    return TrialRecord(number=number, state=state, params={"h": schedule[-1][1]["h"]},
                       value=curve[steps - 1] if state is TrialState.COMPLETE else None, intermediate=curve,
                       system_attrs={PBT_ATTR: {"schedule": schedule, "lineage": lineage}} if sources else {})


def population(n: int, steps: int, exploits: int, direction: str = "maximize") -> History:
    """``n`` members of ``steps`` reports; each (but the first) exploits ``exploits`` times, from older members;
    the last member climbs fastest (the best when maximising)."""
    records = []
    for i in range(n):
        sources = [((k + 1) * steps // (exploits + 1), (i + k) % max(i, 1), (k + 1) * steps // (exploits + 1) - 1)
                   for k in range(exploits)] if i else []
        records.append(member(i, steps, sources, slope=2.0 if i == n - 1 else 1.0))
    return History(records, direction=direction)


def traces(fig: Any) -> tuple[list[Any], list[Any]]:
    curves = [t for t in fig.data if t.name.startswith("trial ")]
    exploits = [t for t in fig.data if t.name == "exploits"]
    return curves, exploits


def test_pbt_panels_only_with_lineage() -> None:
    plain = History([TrialRecord(number=0, state=TrialState.COMPLETE, params={"h": 0.5}, value=1.0,
                                 intermediate={0: 1.0})])
    assert not has_lineage(plain) and panels_of(plain) == PANELS
    pbt = population(4, 10, 1)
    assert has_lineage(pbt) and list(panels_of(pbt)) == [*PANELS, *PBT_PANELS] == list(ALL_PANELS)
    assert panels_of(plain, pbt=True) == ALL_PANELS  # the caller may know better (the dashboard tracks it)


def test_lineage_panel_draws_every_member_and_exploit_of_a_small_population() -> None:
    history = population(6, 12, 2)
    fig = panel_figure(history, "lineage")
    curves, (exploits,) = traces(fig)
    assert sorted(t.name for t in curves) == [f"trial {i}" for i in range(6)]
    assert list(exploits.x).count(None) == 5 * 2  # one dashed segment per exploit
    widths = {t.name: t.line.width for t in curves}
    assert widths["trial 5"] == 3 and {w for n, w in widths.items() if n != "trial 5"} == {1}  # the best
    assert "shown" not in fig.layout.title.text  # nothing left out


def test_lineage_of_a_big_population_is_bounded_and_keeps_the_best_and_its_sources() -> None:
    history = population(400, 300, 3)
    best = history.trials[-1]
    sources = {e.source for e in best.lineage}
    fig = plot_lineage(history, max_members=20, max_steps=50, max_exploits=30)
    curves, (exploits,) = traces(fig)
    shown = {int(t.name.split()[1]) for t in curves}
    assert len(curves) == 20 and {best.number} | sources <= shown
    assert all(len(t.x) <= 50 for t in curves)
    assert max(max(t.x) for t in curves) == 299 and min(min(t.x) for t in curves) == 0  # ends kept
    assert list(exploits.x).count(None) == 30
    title = fig.layout.title.text
    assert "20 of 400 members shown" in title and "30 of" in title and "thinned to 50 reports" in title


def test_schedule_panel_is_the_best_members_schedule() -> None:
    history = population(5, 20, 3)
    best = history.best()
    assert best is not None and best.number == 4
    fig = panel_figure(history, "schedule")
    (line,) = fig.data
    assert list(line.x) == [s for s, _ in best.schedule] + [19]
    assert list(line.y)[:-1] == [p["h"] for _, p in best.schedule]
    assert "trial 4 (the best member)" in fig.layout.title.text


def test_schedule_while_the_population_is_still_training() -> None:
    running = [member(i, 6, [(3, 0, 2)] if i else [], slope=float(i + 1), state=TrialState.PAUSED)
               for i in range(3)]
    history = History(running, direction="minimize")
    assert best_member(history) is running[0]  # no COMPLETE trial yet: the best latest report
    assert "trial 0" in panel_figure(history, "schedule").layout.title.text


def test_schedule_with_many_changes_is_thinned() -> None:
    record = member(0, 5000, [(s, 0, s - 1) for s in range(1, 5000)])
    fig = plot_schedule(record, max_segments=100)
    (line,) = fig.data
    assert len(line.x) == 101 and line.x[0] == 0 and line.x[-2] == 4999
    assert "100 of 5000 segments shown" in fig.layout.title.text

