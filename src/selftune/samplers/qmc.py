"""Quasi-random search: a scrambled Sobol sequence (scipy.stats.qmc) over the unit-cube encoding."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from selftune.history import History
from selftune.samplers._base import Sampler
from selftune.space import Param, Space

__all__ = ["SobolSampler"]


class SobolSampler(Sampler):
    """Scrambled Sobol points; the k-th ask of a study takes the k-th point of the sequence.

    Covers the space more evenly than random search for the same number of trials. The sequence is fixed
    by ``seed`` and the space's dimension, so a resumed study continues where it stopped. Parameters first
    seen inside the objective (before any trial defined them) are drawn at random.
    """

    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        d = len(space)
        if d == 0:
            return [{} for _ in range(n)]
        from scipy.stats import qmc

        seed = self.seed if self.seed is not None else int(rng.integers(2**31))
        engine = qmc.Sobol(d, scramble=True, seed=np.random.default_rng([seed, d]))
        start = len(history)
        if start:
            engine.fast_forward(start)
        with warnings.catch_warnings():  # balance warnings for n not a power of two do not apply here
            warnings.simplefilter("ignore", UserWarning)
            u = engine.random(n)
        return [space.decode(row) for row in u]

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        return param.from_unit(rng.random())
