"""Median and percentile stopping."""

from __future__ import annotations

import numpy as np
import pytest
from scheduler_helpers import hist, rec, running

from selftune.exceptions import InvalidParameterError
from selftune.schedulers import MedianStopping, PercentileStopping
from selftune.trial import TrialState


def _finished(levels: list[float]) -> list:
    return [rec(i, {s: lv + 1.0 / s for s in range(1, 11)}, TrialState.COMPLETE) for i, lv in enumerate(levels)]


def test_median_rule_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    levels = list(rng.uniform(0, 1, 9))
    done = _finished(levels)
    for mine in np.linspace(-0.2, 1.2, 15):
        me = running(20, {1: mine + 1.0, 2: mine + 0.5})
        d = MedianStopping().on_report(me, hist([*done, me]))
        median = np.median([lv + 0.5 for lv in levels])
        assert d.stops == (mine + 0.5 > median)


def test_best_so_far_counts() -> None:
    """The trial's best value so far, not its latest, is compared (a noisy dip does not stop it)."""
    done = _finished([0.0] * 6)
    me = running(10, {1: 0.5, 2: 9.0})  # step 2 is bad, but step 1 was better than the median at step 2
    assert not MedianStopping().on_report(me, hist([*done, me])).stops


def test_startup_warmup_interval_min_trials() -> None:
    done = _finished([0.0] * 4)
    bad = running(10, {s: 50.0 for s in range(1, 6)})
    h = hist([*done, bad])
    assert not MedianStopping(startup_trials=5).on_report(bad, h).stops
    assert MedianStopping(startup_trials=4).on_report(bad, h).stops
    assert not MedianStopping(startup_trials=1, warmup_steps=6).on_report(bad, h).stops
    assert not MedianStopping(startup_trials=1, interval_steps=2).on_report(bad, h).stops  # step 5 off the grid
    assert MedianStopping(startup_trials=1, interval_steps=5).on_report(bad, h).stops
    assert not MedianStopping(startup_trials=1, min_trials=5).on_report(bad, h).stops


def test_percentile_is_stricter_than_median() -> None:
    done = _finished(list(np.linspace(0, 1, 11)))
    me = running(20, {3: 0.4 + 1 / 3})  # between the 25th and 50th percentile
    h = hist([*done, me])
    assert not MedianStopping().on_report(me, h).stops
    assert PercentileStopping(25.0).on_report(me, h).stops


def test_stopped_trials_are_not_the_reference() -> None:
    """Only COMPLETE trials set the bar (stopped ones are the bad ones)."""
    stopped = [rec(i, {1: 100.0}, TrialState.STOPPED) for i in range(10)]
    done = _finished([0.0] * 5)
    me = running(20, {1: 10.0})
    assert MedianStopping().on_report(me, hist([*stopped, *done, me])).stops


@pytest.mark.parametrize("p", [-1, 101, float("nan"), "50", True])
def test_bad_percentile(p: object) -> None:
    with pytest.raises(InvalidParameterError, match="percentile"):
        PercentileStopping(p)  # type: ignore[arg-type]


def test_bad_counts() -> None:
    with pytest.raises(InvalidParameterError, match="interval_steps"):
        MedianStopping(interval_steps=0)
    with pytest.raises(InvalidParameterError, match="startup_trials"):
        MedianStopping(startup_trials=-1)
