"""Hyperband: brackets in the paper's proportions, each an ASHA over its own trials."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from scheduler_helpers import checkpointing_level, hist, rec, running

from selftune.exceptions import InvalidParameterError
from selftune.schedulers import HyperbandScheduler


def test_brackets_follow_the_paper() -> None:
    hb = HyperbandScheduler(min_resource=1, max_resource=81, reduction_factor=3)
    assert hb.n_brackets == 5
    # Li et al. 2018, Table 1 (R=81, eta=3): n = 81, 34, 15, 8, 5 configurations
    counts = Counter(hb.bracket(i) for i in range(143))
    assert [counts[b] for b in range(5)] == [81, 34, 15, 8, 5]
    assert hb._rung_lists == [[1, 3, 9, 27], [3, 9, 27], [9, 27], [27], []]
    # dealt evenly, not in blocks: every bracket appears in the first 30 trials
    assert set(hb.bracket(i) for i in range(30)) == set(range(5))
    assert hb.rungs(hist([])) == (1, 3, 9, 27)


def test_each_bracket_compares_only_its_own_trials() -> None:
    hb = HyperbandScheduler(min_resource=1, max_resource=27, reduction_factor=3)
    me_number = next(i for i in range(100) if hb.bracket(i) == 0)
    other_brackets = [i for i in range(100) if hb.bracket(i) != 0][:12]
    # much better trials, but in other brackets: they do not count
    others = [rec(i, {s: -100.0 for s in range(1, 28)}) for i in other_brackets]
    me = running(me_number, {1: 1.0})
    assert not hb.on_report(me, hist([*others, me])).stops
    same = [i for i in range(100) if hb.bracket(i) == 0 and i != me_number][:6]
    others += [rec(i, {1: -1.0}) for i in same]
    d = hb.on_report(me, hist([*others, me]))
    assert d.stops and d.reason.startswith("Hyperband bracket 0")


def test_last_bracket_runs_everything_to_the_end() -> None:
    hb = HyperbandScheduler(min_resource=1, max_resource=9, reduction_factor=3)
    last = hb.n_brackets - 1
    numbers = [i for i in range(100) if hb.bracket(i) == last]
    others = [rec(i, {s: -10.0 for s in range(1, 10)}) for i in numbers[:-1]]
    me = running(numbers[-1], {s: 10.0 for s in range(1, 10)})
    assert not hb.on_report(me, hist([*others, me])).stops


def test_bracket_count_is_robust_to_rounding() -> None:
    # log_3(243) = 5 exactly in theory, 4.999... in floating point
    assert HyperbandScheduler(max_resource=243).n_brackets == 6
    assert HyperbandScheduler(max_resource=1).n_brackets == 1
    assert math.isclose(HyperbandScheduler(max_resource=100, reduction_factor=2).n_brackets, 7)


@pytest.mark.parametrize("kwargs", [{"max_resource": 0}, {"max_resource": 4, "min_resource": 8}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(InvalidParameterError, match="resource"):
        HyperbandScheduler(**kwargs)


def test_max_resource_is_required() -> None:
    with pytest.raises(TypeError):
        HyperbandScheduler()  # type: ignore[call-arg]


def test_promotion_variant_in_a_study() -> None:
    """Asynchronous Hyperband with the paper's ASHA in each bracket: trials pause at their bracket's rungs, the
    best of each rung of each bracket is promoted, nothing is left paused, curves are whole."""
    import selftune
    from selftune.trial import TrialState

    hb = HyperbandScheduler(min_resource=1, max_resource=27, reduction_factor=3, variant="promotion")
    study = selftune.create_study(storage="memory", sampler=selftune.RandomSampler(seed=1), scheduler=hb)
    study.optimize(checkpointing_level, trials=60, progress=False)
    trials = study.trials
    assert all(t.state in (TrialState.COMPLETE, TrialState.STOPPED) for t in trials)
    assert all(list(t.intermediate) == list(range(1, (t.last_step or 0) + 1)) for t in trials)
    for b, rungs in enumerate(hb._rung_lists):
        mine = [t for t in trials if hb.bracket(t.number) == b]
        for k, rung in enumerate(rungs):
            at = sorted((t for t in mine if (t.last_step or 0) >= rung), key=lambda t: t.params["x"])
            nxt = rungs[k + 1] if k + 1 < len(rungs) else 27
            assert at and (at[0].last_step or 0) >= nxt  # the best of the rung went on
            assert all((t.last_step or 0) < nxt for t in at[max(1, len(at) // 3) + len(at) // 3 :])
        # the bracket's best configuration finished
        assert min(mine, key=lambda t: t.params["x"]).state is TrialState.COMPLETE
    with pytest.raises(InvalidParameterError, match="variant"):
        HyperbandScheduler(max_resource=27, variant="eager")  # type: ignore[arg-type]
