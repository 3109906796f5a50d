"""Helpers shared by the sampler tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selftune.space import Space
from selftune.trial import TrialRecord, TrialState


def random_records(space: Space, f: Callable[[dict], float], n: int, seed: int = 0) -> list[TrialRecord]:
    """``n`` COMPLETE trials at uniform random points of ``space``, valued by ``f``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = space.decode(rng.random(len(space)))
        out.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=p, value=f(p)))
    return out
