"""The sampler conformance suite: subclass :class:`SamplerConformance` and provide ``make_sampler``.

``make_sampler(seed)`` must return a new sampler seeded with ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from selftune.history import History
from selftune.samplers import Sampler
from selftune.space import Choice, Float, Int, Space
from selftune.trial import TrialRecord, TrialState

__all__ = ["SamplerConformance", "MIXED_SPACE"]

MIXED_SPACE = Space(
    {
        "lr": Float(1e-5, 1e-1, log=True),
        "dropout": Float(0.0, 0.5, step=0.1),
        "width": Int(16, 512, log=True),
        "depth": Int(1, 9, step=2),
        "opt": Choice(["adam", "sgd", None]),
        "momentum": Float(0.0, 0.99, when={"opt": "sgd"}),
        "nesterov": Choice([True, False], when={"opt": "sgd"}),
        "cfg": Choice([[1, 2], {"a": 1}], when={"opt": ["adam", None]}),
    }
)


def _history(space: Space, n: int, rng: np.random.Generator, **kw: Any) -> History:
    records = []
    for i in range(n):
        params = space.decode(rng.random(len(space)))
        state = TrialState.COMPLETE
        value: float | None = float(rng.normal())
        if i % 7 == 3:
            state, value = TrialState.FAILED, None
        elif i % 11 == 5:
            value = math.inf
        elif i % 13 == 6:
            value = -math.inf
        elif i % 5 == 4:
            state, value = TrialState.RUNNING, None
        records.append(TrialRecord(number=i, state=state, params=params, value=value))
    return History(records, params=dict(space), **kw)


class SamplerConformance:
    """Behaviour every sampler must have. Needs a ``make_sampler`` fixture returning ``seed -> Sampler``."""

    make_sampler: Callable[[int | None], Sampler]

    def _propose(self, sampler: Sampler, history: History, space: Space, n: int = 1, seed: int = 0) -> list[dict]:
        return sampler.propose(history, space, n, rng=np.random.default_rng(seed))

    def test_deterministic_under_seed(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        rng = np.random.default_rng(0)
        history = _history(MIXED_SPACE, 30, rng)
        a = self._propose(make_sampler(3), history, MIXED_SPACE, n=4)
        b = self._propose(make_sampler(3), history, MIXED_SPACE, n=4)
        assert a == b

    @pytest.mark.parametrize("n_trials", [0, 1, 5, 40])
    def test_proposals_are_valid(self, make_sampler: Callable[[int | None], Sampler], n_trials: int) -> None:
        """Bounds, log, steps, choices and conditions hold, with failed, running and ±inf trials around."""
        history = _history(MIXED_SPACE, n_trials, np.random.default_rng(n_trials))
        for seed in range(5):
            for p in self._propose(make_sampler(seed), history, MIXED_SPACE, n=3, seed=seed):
                assert MIXED_SPACE.validate(p) == p
                assert list(p) == MIXED_SPACE.active_names(p)

    def test_propose_param_valid(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        history = _history(MIXED_SPACE, 10, np.random.default_rng(1))
        sampler = make_sampler(0)
        for name, param in MIXED_SPACE.items():
            for seed in range(10):
                v = sampler.propose_param(history, name, param, rng=np.random.default_rng(seed))
                assert param.validate(v, name) == v

    def test_one_point_spaces(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        space = Space({"a": Float(2.5, 2.5), "b": Int(3, 3), "c": Choice(["only"]), "d": Float(1.0, 1.0, log=True)})
        history = _history(space, 6, np.random.default_rng(0))
        for p in self._propose(make_sampler(0), history, space, n=2):
            assert p == {"a": 2.5, "b": 3, "c": "only", "d": 1.0}

    def test_empty_space(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        assert self._propose(make_sampler(0), History([]), Space({}), n=2) == [{}, {}]

    def test_maximize_direction(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        history = _history(MIXED_SPACE, 20, np.random.default_rng(2), direction="maximize")
        for p in self._propose(make_sampler(0), history, MIXED_SPACE, n=2):
            assert MIXED_SPACE.validate(p) == p

    def test_pending_only(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        space = Space({"x": Float(0, 1)})
        pending = [TrialRecord(number=i, state=TrialState.RUNNING, params={"x": 0.5}) for i in range(4)]
        for p in self._propose(make_sampler(0), History(pending, params=dict(space)), space, n=2):
            assert 0.0 <= p["x"] <= 1.0

    def test_batch_proposals_differ(self, make_sampler: Callable[[int | None], Sampler]) -> None:
        space = Space({"x": Float(0, 1), "y": Float(-3, 3)})
        batch = self._propose(make_sampler(0), History([]), space, n=4)
        assert len(batch) == 4 and len({(p["x"], p["y"]) for p in batch}) == 4
