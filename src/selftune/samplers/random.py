"""Uniform random search in the unit-cube encoding (log-uniform for log parameters)."""

from __future__ import annotations

from typing import Any

import numpy as np

from selftune.history import History
from selftune.samplers._base import Sampler
from selftune.space import Param, Space

__all__ = ["RandomSampler"]


class RandomSampler(Sampler):
    """Independent uniform sampling of every parameter.

    >>> import selftune
    >>> study = selftune.create_study(storage="memory", sampler=selftune.RandomSampler(seed=0))
    >>> study.optimize(lambda t: t.float("x", -1, 1) ** 2, trials=5, progress=False)
    >>> len(study.trials)
    5
    """

    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        u = rng.random((n, len(space)))
        return [space.decode(row) for row in u]

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        return param.from_unit(rng.random())
