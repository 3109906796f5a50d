"""The lineage and schedule figures show what happened in a PBT study."""

from __future__ import annotations

import pytest
from pbt_toy import objective, pbt

import selftune
from selftune.analysis.lineage import plot_lineage, plot_schedule

pytest.importorskip("plotly")


def test_lineage_has_one_dashed_segment_per_exploit_and_schedule_steps() -> None:
    study = selftune.create_study(storage="memory", direction="maximize", scheduler=pbt(),
                                  sampler=selftune.RandomSampler(seed=0))
    study.optimize(objective, trials=8, progress=False)
    fig = plot_lineage(study)
    exploits = [t for t in fig.data if t.name == "exploits"]
    n = sum(1 for r in study.trials for e in r.lineage if e.source != r.number)
    assert len(exploits) == 1 and list(exploits[0].x).count(None) == n
    assert sum(1 for t in fig.data if t.name.startswith("trial ")) == 8
    best = study.best
    sched = plot_schedule(best)
    (line,) = sched.data
    assert list(line.x)[:-1] == [s for s, _ in best.schedule]
    assert list(line.y)[:-1] == [p["h"] for _, p in best.schedule]
    assert plot_schedule(study).data[0].y == line.y  # a study: its best trial


def test_empty_study_gives_an_empty_figure() -> None:
    fig = plot_lineage(selftune.create_study(storage="memory"))
    assert not fig.data and "no member" in fig.layout.annotations[0].text
