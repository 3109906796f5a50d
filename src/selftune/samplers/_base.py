"""The Sampler contract: decide *what* to try next from a read-only :class:`History`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from selftune.history import History
from selftune.space import Param, Space, param_from_json

__all__ = ["Sampler", "alone", "DEFAULT_STARTUP"]

#: start-up (Sobol) trials before a model-based sampler (the GP, or the default before it) uses its model,
#: whatever the dimension
DEFAULT_STARTUP = 10


def alone(name: str, param: Param) -> Space:
    """A one-parameter space of ``param`` without its condition (its parents are not in the space)."""
    if not param.when:
        return Space({name: param})
    return Space({name: param_from_json({k: v for k, v in param.to_json().items() if k != "when"}, name)})


class Sampler(ABC):
    """Proposes parameter values. Samplers never see the storage, only a :class:`History`.

    A sampler is a pure function of (history, space, rng): the study derives ``rng`` from ``seed`` and
    the position of the ask, so a seeded study proposes the same sequence on every run.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    @abstractmethod
    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        """``n`` joint proposals over ``space`` (conditions respected), each a dict name → value."""

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        """A value for one parameter first seen inside the objective (define-by-run)."""
        return self.propose(history, alone(name, param), 1, rng=rng)[0][name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed!r})"
