"""The tuning/test seed protocol: disjoint seeds, mean and Student-t interval, replayed schedules."""

from __future__ import annotations

import math

import pytest
from scipy import stats

import selftune
from selftune import Float, Space
from selftune.exceptions import InvalidParameterError, SelftuneError
from selftune.protocol import TEST_SEED_BASE, evaluate


def noisy(trial: selftune.Trial) -> float:
    return trial.float("x", -2.0, 2.0) ** 2 + (trial.seed % 10) / 10


def test_interval_is_the_student_t_interval_of_the_test_runs() -> None:
    (res,) = evaluate(noisy, {"x": 1.0}, seeds=[3, 14, 25, 36])
    values = [1.0 + s % 10 / 10 for s in (3, 14, 25, 36)]
    assert res.values == pytest.approx(values)
    sd = stats.tstd(values)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert res.mean == pytest.approx(sum(values) / 4) and res.half_width == pytest.approx(half)
    assert res.interval == pytest.approx((res.mean - half, res.mean + half))
    assert "± " in str(res) and "(95% CI, 4 test seeds)" in str(res)
    (one,) = evaluate(noisy, {"x": 1.0}, seeds=[3])
    assert math.isinf(one.half_width) and one.to_json()["interval"] == [None, None]


def test_default_test_seeds_never_overlap_the_tuning_seeds() -> None:
    study = selftune.create_study(storage="memory", sampler=selftune.RandomSampler(seed=0))
    study.optimize(noisy, trials=5, progress=False)
    (res,) = evaluate(noisy, study, seeds=3)
    assert res.seeds == (TEST_SEED_BASE, TEST_SEED_BASE + 1, TEST_SEED_BASE + 2)
    assert res.label == f"trial {study.best.number}"
    assert res.values[0] == pytest.approx(study.best.params["x"] ** 2 + TEST_SEED_BASE % 10 / 10)
    with pytest.raises(InvalidParameterError, match=r"test seeds \[2, 4\] were used while tuning"):
        evaluate(noisy, study, seeds=[2, 4, 99])
    with pytest.raises(InvalidParameterError, match=r"test seeds \[7\] were used while tuning"):
        evaluate(noisy, {"x": 0.0}, seeds=[7], tuning_seeds=range(10))


def test_enqueued_seed_sets_trial_seed() -> None:
    study = selftune.create_study(storage="memory")
    study.enqueue({"x": 0.5}, seed=42)
    trial = study.ask()
    assert trial.seed == 42 and trial.params == {} and study.ask().seed == 1
    with pytest.raises(InvalidParameterError, match="`seed` must be an integer >= 0"):
        study.enqueue({"x": 0.5}, seed=-1)


@pytest.mark.parametrize(("seeds", "match"), [(0, "`seeds` must be"), ([], "at least one"), ([1, 1], "distinct"),
                                              (True, "`seeds` must be"), (["a"], "integers >= 0")])
def test_bad_seeds_are_named(seeds: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        evaluate(noisy, {"x": 0.0}, seeds=seeds)  # type: ignore[arg-type]


def test_a_failing_test_run_names_the_candidate_and_seed() -> None:
    def fragile(trial: selftune.Trial) -> float:
        if trial.seed == TEST_SEED_BASE + 1:
            return math.nan
        return 1.0

    with pytest.raises(SelftuneError, match=r"config 0 with test seed 1000001 ended FAILED"):
        evaluate(fragile, {"x": 0.0}, seeds=2)


def test_declared_space_objectives_get_their_params() -> None:
    space = Space({"x": Float(-2.0, 2.0)})

    def reads_params(trial: selftune.Trial) -> float:
        return float(trial.params["x"]) ** 2

    study = selftune.create_study(storage="memory", space=space, sampler=selftune.RandomSampler(seed=1))
    study.optimize(reads_params, trials=4, progress=False)
    (res,) = evaluate(reads_params, study, seeds=2)
    assert res.values == pytest.approx([study.best_value] * 2)
    (other,) = evaluate(reads_params, [{"x": 1.5}], seeds=1, space=space)
    assert other.values == pytest.approx((2.25,))
