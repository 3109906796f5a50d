"""PB2: observations from stored curves, the GP bandit's proposals, and the toy problem."""

from __future__ import annotations

import numpy as np
import pytest
from pbt_toy import STEPS, objective

import selftune
from selftune import Float, TrialState
from selftune.history import History
from selftune.schedule import PBT_ATTR, Schedule
from selftune.schedulers.pb2 import pb2_data
from selftune.trial import TrialRecord


def test_observations_are_loss_decrease_per_step_within_one_set_of_weights() -> None:
    domains = {"h": Float(0.0, 1.0)}
    plain = TrialRecord(0, TrialState.RUNNING, {"h": 0.5}, intermediate={0: 10.0, 1: 9.5, 2: 9.0, 4: 7.0})
    own = Schedule(((0, {"h": 0.2}), (5, {"h": 0.8})))
    exploited = TrialRecord(
        1, TrialState.RUNNING, {"h": 0.8}, intermediate={0: 10.0, 2: 9.0, 5: 4.0, 6: 3.0, 8: 2.0},
        system_attrs={PBT_ATTR: {"own": own.to_json(), "schedule": own.to_json(), "lineage": []}},
    )
    x, y, ctx = pb2_data(History([plain, exploited], params=domains), ["h"], interval=2)
    rows = sorted(zip(x.tolist(), y.tolist(), strict=True))
    # trial 0: marks 0, 2, 4; trial 1: marks 0, 2 (h=0.2), then 5 (first after its exploit), 6, 8 (h=0.8)
    # never across the exploit: no observation from step 2 to step 5
    assert rows == sorted([
        ([2.0, 10.0, 0.5], 0.5), ([4.0, 9.0, 0.5], 1.0),
        ([2.0, 10.0, 0.2], 0.5),
        ([6.0, 4.0, 0.8], 1.0), ([8.0, 3.0, 0.8], 0.5),
    ])
    assert ctx.shape == (5, 2)


def test_maximised_studies_use_the_loss() -> None:
    r = TrialRecord(0, TrialState.RUNNING, {"h": 0.5}, intermediate={0: 1.0, 2: 3.0})
    _, y, _ = pb2_data(History([r], direction="maximize", params={"h": Float(0.0, 1.0)}), ["h"], 2)
    assert y.tolist() == [1.0]  # the value went up by 2 in 2 steps: the loss fell by 1 a step


@pytest.mark.parametrize("seed", [0, 1])
def test_pb2_beats_every_constant_with_a_small_population(seed: int) -> None:
    scheduler = selftune.PB2(4, 4, ["h"], max_step=STEPS - 1, seed=seed)
    study = selftune.create_study(storage="memory", direction="maximize", scheduler=scheduler,
                                  sampler=selftune.RandomSampler(seed=seed))
    study.optimize(objective, trials=4, progress=False)
    assert study.best_value > 0.55 * STEPS  # the best constant reaches STEPS / 2
    for t in study.trials:
        for _, params in t.schedule:
            assert 0.0 <= params["h"] <= 1.0
            assert np.isfinite(params["h"])
    again = selftune.create_study(storage="memory", direction="maximize",
                                  scheduler=selftune.PB2(4, 4, ["h"], max_step=STEPS - 1, seed=seed),
                                  sampler=selftune.RandomSampler(seed=seed))
    again.optimize(objective, trials=4, progress=False)
    assert [t.schedule for t in again.trials] == [t.schedule for t in study.trials]  # deterministic
