"""The standard panels shared by the dashboard and the report: every figure bounded, importance sampled."""

from __future__ import annotations

import pytest

from selftune.analysis.panels import PANELS, importance_sample, panel_figure
from selftune.exceptions import InvalidParameterError
from selftune.history import History
from selftune.space import Float
from selftune.trial import TrialRecord, TrialState

pytest.importorskip("plotly")


def big_history(n: int) -> History:
    records = [
        TrialRecord(
            number=i, state=TrialState.COMPLETE if i % 7 else TrialState.STOPPED, params={"x": (i * 0.37) % 1.0},
            value=float((i * 37) % 101), intermediate={s: float(s + i % 13) for s in range(40)},
            started_at=1000.0 + i, finished_at=1000.5 + i, worker=f"w{i % 4}",
        )
        for i in range(n)
    ]
    return History(records, params={"x": Float(0.0, 1.0)})


def count(fig: object) -> int:
    total = 0
    for t in fig.data:  # type: ignore[attr-defined]
        if t.type == "parcoords":
            total += len(t.dimensions[0].values)
        else:
            total += max(len(t.x if t.x is not None else []), len(t.y if t.y is not None else []))
    return total


@pytest.mark.parametrize("kind", [k for k in PANELS if k != "importance"])
def test_panels_are_bounded(kind: str) -> None:
    history = big_history(6000)
    fig = panel_figure(history, kind, max_points=200)
    assert 0 < count(fig) <= 4 * 200 + 20, (kind, count(fig))  # 6,000 trials, 40 reports each
    assert "shown" in fig.layout.title.text


def test_importance_is_fitted_on_a_sample() -> None:
    history = big_history(3000)
    sample = importance_sample(history, 500)
    assert len(sample) == 500 and sample.direction == history.direction and dict(sample.params) == dict(history.params)
    numbers = [r.number for r in sample.trials]
    assert numbers == sorted(numbers) and numbers[0] == 1 and numbers[-1] == 2999  # spread over the study
    assert importance_sample(history, 5000) is history
    fig = panel_figure(history, "importance", importance_trials=500)
    assert "fitted on 500 of" in fig.layout.title.text and list(fig.data[0].y) == ["x"]


def test_unknown_panel() -> None:
    with pytest.raises(InvalidParameterError, match="unknown panel 'contour'"):
        panel_figure(History([]), "contour")

