"""The tree-structured Parzen estimator (TPE), joint (multivariate) by default.

Complete trials are split by loss into the best ``gamma(n)`` ("good") and the rest ("bad"); a Parzen mixture
is fitted to each, candidates are drawn from the good density l(x), and the one maximising l(x)/g(x) is
proposed. Pending (RUNNING/WAITING), failed and stopped trials join the bad set: a constant liar, so parallel
workers are steered away from points that are being evaluated.

Conditional (tree-shaped) spaces are decomposed into groups of parameters that appear together in the same
complete trials; each group is modelled on the trials where it is active, so conditional parameters are
modelled instead of being sent to random search.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from selftune.history import History
from selftune.samplers._base import Sampler, alone
from selftune.samplers.qmc import SobolSampler
from selftune.samplers.random import RandomSampler
from selftune.space import Choice, Param, Space
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.samplers import _parzen

__all__ = ["TPESampler", "default_gamma"]


def default_gamma(n: int) -> int:
    """How many of ``n`` complete trials count as good: 10%, at least 1, at most 25."""
    return max(1, min(math.ceil(0.1 * n), 25))


class TPESampler(Sampler):
    """Tree-structured Parzen estimator.

    ``n_startup``: complete trials (per group) before the model is used (Sobol under a seed, else random);
    ``n_candidates``: draws from l(x) scored by l(x)/g(x); ``multivariate``: joint densities (default) or one
    per parameter; ``gamma``: number of good trials out of n; ``prior_weight``: weight of the wide prior
    component in both densities.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup: int = 10,
        n_candidates: int = 24,
        multivariate: bool = True,
        gamma: Callable[[int], int] = default_gamma,
        prior_weight: float = 1.0,
    ) -> None:
        super().__init__(seed=seed)
        self.n_startup = n_startup
        self.n_candidates = n_candidates
        self.multivariate = multivariate
        self.gamma = gamma
        self.prior_weight = prior_weight
        self._rows: dict[tuple[int, int], np.ndarray] = {}  # (space hash, trial number) -> encoded finished trial

    def __repr__(self) -> str:
        return f"TPESampler(seed={self.seed!r}, multivariate={self.multivariate!r})"

    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        if len(space) == 0:
            return [{} for _ in range(n)]
        complete = [r for r in history.complete if r.value is not None]
        if len(complete) < self.n_startup:
            start = SobolSampler(seed=self.seed) if self.seed is not None else RandomSampler()
            return start.propose(history, space, n, rng=rng)
        names = list(space)
        params = [space[k] for k in names]
        losses = history.losses(complete)
        others = [r for r in history.trials if r.state is not TrialState.COMPLETE and r.params]
        Xc = self._encode(space, complete)
        Xo = self._encode(space, others)
        present = ~np.isnan(Xc)
        out: list[dict[str, Any]] = [{} for _ in range(n)]
        liars: list[np.ndarray] = []
        for cols in _groups(present):
            rows = np.all(present[:, cols], axis=1)
            group = [params[j] for j in cols]
            if rows.sum() < self.n_startup:
                for p in out:
                    for j, param in zip(cols, group, strict=True):
                        p[names[j]] = param.from_unit(rng.random())
                continue
            bad_extra = Xo[:, cols][np.all(~np.isnan(Xo[:, cols]), axis=1)]
            picks = self._propose_group(Xc[rows][:, cols], losses[rows], bad_extra, group, n, rng, liars)
            for p, u in zip(out, picks, strict=True):
                for j, param, uj in zip(cols, group, u, strict=True):
                    p[names[j]] = param.from_unit(uj)
        return [_active(space, p) for p in out]

    def _encode(self, space: Space, records: list[TrialRecord]) -> np.ndarray:
        """``(n, d)`` unit-cube rows; finished trials are cached (they never change)."""
        key = hash(json.dumps(space.to_json(), sort_keys=True))  # by content: a study builds new Space objects
        rows = []
        for r in records:
            done = r.state is not TrialState.RUNNING and r.state is not TrialState.WAITING
            cached = self._rows.get((key, r.number)) if done else None
            if cached is None:
                cached = space.encode({k: v for k, v in r.params.items() if k in space})
                if done:
                    self._rows[(key, r.number)] = cached
            rows.append(cached)
        if len(self._rows) > 200_000:
            self._rows.clear()
        return np.stack(rows) if rows else np.empty((0, len(space)))

    def _propose_group(
        self,
        X: np.ndarray,
        losses: np.ndarray,
        bad_extra: np.ndarray,
        group: list[Param],
        n: int,
        rng: np.random.Generator,
        liars: list[np.ndarray],
    ) -> list[np.ndarray]:
        """``n`` unit-cube points for one group; each pick joins the bad set before the next (constant liar)."""
        from selftune.samplers._parzen import Dims, Parzen  # SciPy's special functions, on first use

        is_cat = np.array([isinstance(p, Choice) for p in group])
        dims = Dims(
            cells=np.array([p.cells for p, c in zip(group, is_cat, strict=True) if not c], dtype=int),
            sizes=np.array([len(p.choices) for p in group if isinstance(p, Choice)], dtype=int),
        )
        order = np.lexsort((np.arange(len(losses)), losses))
        n_good = self.gamma(len(losses))
        good, bad = X[order[:n_good]], X[order[n_good:]]
        bad = np.vstack([bad, bad_extra])
        below = Parzen(*_split(good, is_cat, dims), dims, prior_weight=self.prior_weight)
        picks: list[np.ndarray] = []
        for _ in range(n):
            above = Parzen(*_split(bad, is_cat, dims), dims, prior_weight=self.prior_weight)
            cn, cc = below.sample(rng, self.n_candidates)
            if self.multivariate:
                score = below.logpdf(cn, cc) - above.logpdf(cn, cc)
                best = int(np.argmax(score))
                un, uc = cn[best], cc[best]
            else:  # each parameter on its own: the best candidate value per column
                s = below.logpdf_marginal(cn, cc) - above.logpdf_marginal(cn, cc)
                k = np.argmax(s, axis=0)
                dn = cn.shape[1]
                un = cn[k[:dn], np.arange(dn)]
                uc = cc[k[dn:], np.arange(cc.shape[1])]
            u = _join(un, uc, is_cat, dims)
            picks.append(u)
            bad = np.vstack([bad, u[None]])
        return picks

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        return self.propose(history, alone(name, param), 1, rng=rng)[0][name]


def _groups(present: np.ndarray) -> list[list[int]]:
    """Columns that are present in exactly the same complete trials, in column order."""
    groups: dict[bytes, list[int]] = {}
    for j in range(present.shape[1]):
        groups.setdefault(present[:, j].tobytes(), []).append(j)
    return list(groups.values())


def _split(X: np.ndarray, is_cat: np.ndarray, dims: _parzen.Dims) -> tuple[np.ndarray, np.ndarray]:
    """Unit-cube rows → (numeric columns, category indices)."""
    Xn = X[:, ~is_cat]
    U = X[:, is_cat]
    Xc = np.minimum(np.floor(U * dims.sizes[None]), dims.sizes[None] - 1).astype(int) if U.size else U.astype(int)
    return Xn, Xc.reshape(X.shape[0], int(is_cat.sum()))


def _join(un: np.ndarray, uc: np.ndarray, is_cat: np.ndarray, dims: _parzen.Dims) -> np.ndarray:
    """(numeric, category indices) → one unit-cube row."""
    u = np.empty(is_cat.shape[0])
    u[~is_cat] = un
    u[is_cat] = (uc + 0.5) / dims.sizes
    return u


def _active(space: Space, proposal: dict[str, Any]) -> dict[str, Any]:
    """Keep the parameters active under the proposal's own values, in declaration order."""
    out: dict[str, Any] = {}
    for name in space:
        if name in proposal and space.is_active(name, out):
            out[name] = proposal[name]
    return out
