"""The GP's view of a :class:`~selftune.space.Space`: numeric columns, categorical indices, grids, conditions.

Proposals live in the space's unit cube (one column per parameter, ``(B, d)`` arrays ``U``). The model sees

* ``numeric`` columns (floats, integers, stepped floats) as their unit value, inactive ones imputed to
  ``-1``: outside the cube, so points where a parameter is off never pose as data at some value of it;
* ``categorical`` columns as the choice index, inactive ones as the extra index ``-1`` (their own category);
* one-point parameters not at all (they cannot change anything).

:meth:`ModelSpace.snap` moves every discrete coordinate to the centre of its grid cell, so that a snapped
point is exactly what :meth:`Space.decode` will return; :meth:`ModelSpace.canonical` also marks inactive
parameters (NaN), evaluating the space's conditions on whole arrays at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from selftune.space import Choice, Float, Int, Param, Space
from selftune.trial import TrialRecord

__all__ = ["ModelSpace", "infer_conditions"]

IMPUTE = 0.5  # what an inactive coordinate decodes from (any value would do)
MODEL_IMPUTE = -1.0  # what the kernel sees for an inactive numeric coordinate


def _column_kind(param: Param) -> str:
    if param.size == 1:
        return "fixed"
    if isinstance(param, Choice):
        return "cat"
    if isinstance(param, Float) and param.step is None:
        return "cont"
    return "disc"


class ModelSpace:
    """Index bookkeeping and vectorised grid/condition handling for one :class:`Space`."""

    def __init__(self, space: Space, inferred: dict[str, tuple[str, tuple[Any, ...]]] | None = None) -> None:
        self.space = space
        self.inferred = dict(inferred or {})
        self.names = list(space)
        self.params = [space[n] for n in self.names]
        self.d = len(self.params)
        kinds = [_column_kind(p) for p in self.params]
        self.kinds = kinds
        self.num_idx = np.array([i for i, k in enumerate(kinds) if k in ("cont", "disc")], dtype=int)
        self.cat_idx = np.array([i for i, k in enumerate(kinds) if k == "cat"], dtype=int)
        self.disc_idx = np.array([i for i, k in enumerate(kinds) if k == "disc"], dtype=int)
        self.fixed_idx = np.array([i for i, k in enumerate(kinds) if k == "fixed"], dtype=int)
        #: number of grid cells of every parameter (inf for continuous ones)
        self.sizes = np.array([float(p.size) for p in self.params])
        self.cat_sizes = self.sizes[self.cat_idx].astype(int)
        self.d_model = len(self.num_idx) + len(self.cat_idx)
        self._log_int = [
            i for i in self.disc_idx if isinstance(self.params[i], Int) and self.params[i].log
        ]
        self._conditions = self._build_conditions()

    @property
    def conditional(self) -> bool:
        return bool(self._conditions)

    # -- grids ---------------------------------------------------------------------------------------------
    def snap(self, U: np.ndarray) -> np.ndarray:
        """A copy of ``U`` (clipped to the cube) with discrete and categorical coordinates on cell centres."""
        U = np.clip(np.asarray(U, dtype=float), 0.0, 1.0)
        grid = [i for i in self.disc_idx if i not in self._log_int] + list(self.cat_idx)
        if grid:
            g = np.array(grid, dtype=int)
            n = self.sizes[g]
            k = np.minimum(np.floor(U[:, g] * n), n - 1)
            U[:, g] = (k + 0.5) / n
        for i in self._log_int:
            p = self.params[i]
            lo, hi = math.log(p.low - 0.5), math.log(p.high + 0.5)
            v = np.clip(np.round(np.exp(lo + U[:, i] * (hi - lo))), p.low, p.high)
            U[:, i] = np.clip((np.log(v) - lo) / (hi - lo), 0.0, 1.0)
        if len(self.fixed_idx):
            U[:, self.fixed_idx] = IMPUTE
        return U

    def grid_step(self) -> np.ndarray:
        """``(len(num_idx),)`` width of one grid cell in unit coordinates (0 for continuous columns)."""
        s = self.sizes[self.num_idx]
        return np.where(np.isfinite(s), 1.0 / np.where(np.isfinite(s), s, 1.0), 0.0)

    # -- conditions ----------------------------------------------------------------------------------------
    def _build_conditions(self) -> list[tuple[int, list[tuple[int, Callable[[np.ndarray], np.ndarray]]]]]:
        out = []
        index = {n: i for i, n in enumerate(self.names)}
        for i, p in enumerate(self.params):
            when = p.when
            if not when and self.names[i] in self.inferred:
                parent, allowed = self.inferred[self.names[i]]
                when = {parent: allowed}
            if not when:
                continue
            tests = []
            for parent, allowed in when.items():
                j = index[parent]
                tests.append((j, self._membership(self.params[j], tuple(allowed))))
            out.append((i, tests))
        return out

    @staticmethod
    def _membership(parent: Param, allowed: tuple) -> Callable[[np.ndarray], np.ndarray]:
        """A vectorised ``decode(u) in allowed`` for one parent column."""
        if isinstance(parent, Choice):
            n = len(parent.choices)
            ok = np.zeros(n, dtype=bool)
            for v in allowed:
                idx = Choice._index(v, parent.choices)
                if idx is not None:
                    ok[idx] = True

            def test(u: np.ndarray) -> np.ndarray:
                k = np.minimum(np.floor(np.clip(u, 0.0, 1.0) * n), n - 1).astype(int)
                return ok[k]

            return test

        def slow(u: np.ndarray) -> np.ndarray:
            return np.array([Choice._index(parent.from_unit(x), allowed) is not None for x in u], dtype=bool)

        return slow

    def active(self, U: np.ndarray) -> np.ndarray:
        """``(B, d)`` mask of the parameters active at each (snapped) point."""
        act = np.ones(U.shape, dtype=bool)
        for i, tests in self._conditions:  # parents come first, so their activity is final here
            a = np.ones(U.shape[0], dtype=bool)
            for j, test in tests:
                a &= act[:, j]
                if a.any():
                    a[a] &= test(U[a, j])
            act[:, i] = a
        return act

    def canonical(self, U: np.ndarray) -> np.ndarray:
        """Snapped copy of ``U`` with inactive coordinates set to NaN (what ``encode(decode(u))`` gives)."""
        U = self.snap(U)
        if self._conditions:
            U[~self.active(U)] = np.nan
        return U

    # -- model features ------------------------------------------------------------------------------------
    def features(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(numeric (B, d_num) floats, categorical (B, d_cat) ints)`` with inactive entries imputed."""
        U = np.atleast_2d(U)
        Xn = U[:, self.num_idx]
        Xn = np.where(np.isnan(Xn), MODEL_IMPUTE, Xn)
        raw = U[:, self.cat_idx]
        nan = np.isnan(raw)
        n = self.cat_sizes.astype(float)
        k = np.minimum(np.floor(np.clip(np.where(nan, 0.0, raw), 0.0, 1.0) * n), n - 1)
        Xc = np.where(nan, -1, k).astype(int)
        return Xn, Xc

    def fill(self, U: np.ndarray) -> np.ndarray:
        """``U`` with NaNs imputed, for decoding and for perturbation (a NaN stays inactive anyway)."""
        return np.where(np.isnan(U), IMPUTE, U)


def infer_conditions(space: Space, records: Sequence[TrialRecord]) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Conditions a define-by-run objective revealed: ``{child: (parent, values where it is used)}``.

    When the objective asks for a parameter only under some choices, the space it builds has no
    conditions, and the model would keep proposing "new" values of the child where it is never read. A
    child missing from some complete records is taken as conditional on the first unconditional
    categorical parameter whose values separate the records with the child from those without; it is
    active for every other value, seen or not.
    """
    out: dict[str, tuple[str, tuple[Any, ...]]] = {}
    if not records:
        return out
    parents = [n for n, p in space.items() if isinstance(p, Choice) and not p.when and p.size > 1]
    for name, param in space.items():
        if param.when:
            continue
        has = [name in r.params for r in records]
        if all(has) or not any(has):
            continue
        for parent in parents:
            if parent == name:
                continue
            choice = space[parent]
            assert isinstance(choice, Choice)
            on: set[int] = set()
            off: set[int] = set()
            for r, present in zip(records, has, strict=True):
                if parent in r.params:
                    idx = Choice._index(r.params[parent], choice.choices)
                    if idx is not None:
                        (on if present else off).add(idx)
            if on and off and not on & off:
                out[name] = (parent, tuple(c for i, c in enumerate(choice.choices) if i not in off))
                break
    return out
