"""CMA-ES through the ``cmaes`` package, for larger budgets on continuous and integer parameters.

The sampler stays a pure function of the history: the evolution state is rebuilt by telling the complete
trials, in order of their numbers, in generations of ``popsize`` (cached, so each ask only tells what is new).
Integers and stepped floats use CMA-ES with margin (``CMAwM``); when a run converges it restarts with a
doubled population (IPOP). Parameters CMA-ES cannot model (categorical, conditional, or a lone numeric one)
are proposed by ``fallback`` (TPE by default). Needs ``pip install 'selftune[cmaes]'``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from selftune._imports import require
from selftune.history import History
from selftune.samplers._base import Sampler
from selftune.samplers.tpe import TPESampler, _active
from selftune.space import Choice, Param, Space, param_from_json

__all__ = ["CMAESSampler"]


class CMAESSampler(Sampler):
    """CMA-ES on the unit-cube encoding of the numeric, unconditional parameters.

    ``sigma0``: initial step size in the unit cube; ``popsize``: initial population (default
    ``4 + 3 ln d``); ``restarts``: restart with a doubled population when a run converges (IPOP);
    ``fallback``: proposes the parameters CMA-ES does not handle.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        sigma0: float = 1.0 / 6.0,
        popsize: int | None = None,
        restarts: bool = True,
        fallback: Sampler | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.sigma0 = sigma0
        self.popsize = popsize
        self.restarts = restarts
        self.fallback = fallback if fallback is not None else TPESampler(seed=seed)
        self._cache: tuple[tuple[Any, ...], Any, int] | None = None  # (key of told trials, optimizer, told)

    def __repr__(self) -> str:
        return f"CMAESSampler(seed={self.seed!r}, sigma0={self.sigma0!r}, popsize={self.popsize!r})"

    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        dims = [k for k, p in space.items() if not isinstance(p, Choice) and not p.when and p.size > 1]
        if len(dims) < 2:  # CMA-ES needs two or more dimensions
            return self.fallback.propose(history, space, n, rng=rng)
        cma = self._state(history, space, dims)
        # fresh, reproducible draws per ask (CMAwM keeps its generator on an inner CMA); the conformance
        # suite's determinism tests guard this use of the package's internals
        getattr(cma, "_cma", cma)._rng = np.random.RandomState(int(rng.integers(2**31)))
        xs = [cma.ask()[0] if _is_wm(cma) else cma.ask() for _ in range(n)]
        rest = _rest_space(space, set(dims))
        others = self.fallback.propose(history, rest, n, rng=rng) if len(rest) else [{} for _ in range(n)]
        out = []
        for x, other in zip(xs, others, strict=True):
            p = {k: space[k].from_unit(float(np.clip(v, 0.0, 1.0))) for k, v in zip(dims, x, strict=True)}
            p.update(other)
            for k, param in space.items():  # one-point numeric domains
                if k not in p and not isinstance(param, Choice) and param.size == 1:
                    p[k] = param.from_unit(0.5)
            out.append(_active(space, p))
        return out

    def _new(self, space: Space, dims: list[str], popsize: int | None, seed: int) -> Any:
        cmaes = require("cmaes", "cmaes")
        d = len(dims)
        cells = np.array([space[k].cells for k in dims])
        mean = np.full(d, 0.5)
        if (cells > 0).any():
            half = np.where(cells > 0, 0.5 / np.maximum(cells, 1), 0.0)
            bounds = np.stack([half, 1.0 - half], axis=1)
            steps = np.where(cells > 0, 1.0 / np.maximum(cells, 1), 0.0)
            return cmaes.CMAwM(mean=mean, sigma=self.sigma0, bounds=bounds, steps=steps, seed=seed,
                               population_size=popsize)
        bounds = np.stack([np.zeros(d), np.ones(d)], axis=1)
        return cmaes.CMA(mean=mean, sigma=self.sigma0, bounds=bounds, seed=seed, population_size=popsize)

    def _state(self, history: History, space: Space, dims: list[str]) -> Any:
        """The evolution state after telling every full generation of complete trials (cached)."""
        told = [r for r in history.complete if r.value is not None and all(k in r.params for k in dims)]
        X = np.array([[space[k].to_unit(r.params[k]) for k in dims] for r in told]).reshape(len(told), len(dims))
        losses = history.losses(told)
        finite = losses[np.isfinite(losses)]
        worst = (finite.max() + 1.0 + abs(finite.max())) if finite.size else 1e10
        losses = np.clip(np.nan_to_num(losses, posinf=worst, neginf=-1e300), -1e300, worst)
        key_base = (tuple(dims), tuple(str(space[k].to_json()) for k in dims), self.sigma0, self.popsize)
        numbers = tuple(r.number for r in told)
        start, cma = 0, None
        if self._cache is not None:
            key, cached, count = self._cache
            if key[0] == key_base and numbers[:count] == key[1][:count]:
                start, cma = count, copy.deepcopy(cached)
        if cma is None:
            cma = self._new(space, dims, self.popsize, seed=0)
        i = start
        while i + cma.population_size <= len(told):
            pop = cma.population_size
            cma.tell([(X[j], float(losses[j])) for j in range(i, i + pop)])
            i += pop
            if self.restarts and cma.should_stop():
                cma = self._new(space, dims, pop * 2, seed=0)
        self._cache = ((key_base, numbers), copy.deepcopy(cma), i)
        return cma


def _is_wm(cma: Any) -> bool:
    return type(cma).__name__ == "CMAwM"


def _rest_space(space: Space, taken: set[str]) -> Space:
    """The parameters CMA-ES does not handle, with conditions on taken parents removed."""
    rest: dict[str, Param] = {}
    for k, p in space.items():
        if k in taken or (not isinstance(p, Choice) and not p.when and p.size == 1):
            continue
        if p.when and any(parent not in rest for parent in p.when):
            p = param_from_json({key: v for key, v in p.to_json().items() if key != "when"}, k)
        rest[k] = p
    return Space(rest)
