"""Hyperparameter importance: how much of the objective's variation each parameter accounts for.

Two measures, both on the complete trials (finite values only) in the unit-cube encoding of the study's
domains (log-scaled parameters in log space, categories and integer grids as their cells):

* :func:`fanova_importance`: functional ANOVA (Hutter, Hoos & Leyton-Brown, ICML 2014). A random forest is
  fitted to the losses; for each tree, the variance of its prediction under the uniform measure on the
  domain and the variance of each parameter's main effect are computed exactly over the tree's partition.
  A parameter's importance is its main-effect variance as a fraction of the tree's variance, averaged over
  the trees, then normalised so the parameters reported sum to 1.
* :func:`ped_anova_importance`: PED-ANOVA (Watanabe, Bansal & Hutter, IJCAI 2023). For each parameter, the
  Pearson divergence between its density among the top ``target_quantile`` trials and among all trials
  (1-D Parzen estimators on the unit interval), normalised to sum to 1. Fast, no scikit-learn needed.

A conditional parameter that is inactive in some trials gets one more state, "inactive", with the observed
share of the trials: in the forest as the sentinel -1 (outside the unit interval), in the measure as a
point mass; in PED-ANOVA as one more bin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtr

from selftune._imports import require
from selftune.analysis._common import as_history, domains, finite_complete, select_params, value_of
from selftune.exceptions import InvalidParameterError, NoCompleteTrialError
from selftune.history import History
from selftune.space import Choice, Param
from selftune.trial import TrialRecord

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["importance", "fanova_importance", "ped_anova_importance", "METHODS"]

#: the values :func:`importance` accepts for ``method``
METHODS = ("fanova", "ped-anova")

_INACTIVE = -1.0  # the forest's feature value for an inactive parameter
_MAX_ATOMS = 1024  # grids with more cells than this are treated as continuous


# -- shared preparation ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Data:
    names: list[str]  # every parameter in the encoding (the model's features)
    report: list[str]  # the ones to report
    params: list[Param]
    X: np.ndarray  # (n, d) unit-cube encoding, NaN where inactive
    y: np.ndarray  # (n,) losses


def _prepare(study: Study | History, params: Iterable[str] | None) -> _Data:
    history = as_history(study)
    known = domains(history)
    records = finite_complete(history)
    if len(records) < 2:
        raise NoCompleteTrialError(
            f"importance needs at least 2 COMPLETE trials with a finite value, got {len(records)}"
        )
    report = select_params(known, records, params)
    used = {k for r in records for k in r.params}
    names = [k for k in known if k in used or k in report]
    X = _encode(records, names, [known[k] for k in names])
    y = history.sign * np.array([value_of(r) for r in records])
    return _Data(names, report, [known[k] for k in names], X, y)


def _encode(records: Sequence[TrialRecord], names: Sequence[str], params: Sequence[Param]) -> np.ndarray:
    X = np.full((len(records), len(names)), np.nan)
    for i, r in enumerate(records):
        for j, (name, param) in enumerate(zip(names, params, strict=True)):
            if name in r.params:
                X[i, j] = param.to_unit(r.params[name])
    return X


def _atoms(param: Param) -> np.ndarray | None:
    """Unit-cube positions of a discrete domain's values (categories, grid cells), or None if continuous."""
    if isinstance(param, Choice):
        k = len(param.choices)
    else:
        k = param.cells
        if k == 0 or k > _MAX_ATOMS:
            return None
    return (np.arange(k) + 0.5) / k


def _finish(scores: dict[str, float]) -> dict[str, float]:
    """Clip at 0, normalise to sum to 1 (all 0 if nothing varies), sort descending (stable)."""
    clean = {k: max(float(v), 0.0) if math.isfinite(v) else 0.0 for k, v in scores.items()}
    total = sum(clean.values())
    if total > 0:
        clean = {k: v / total for k, v in clean.items()}
    return dict(sorted(clean.items(), key=lambda kv: -kv[1]))


# -- fANOVA ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Measure:
    """A probability measure on one feature: ``cont`` uniform on [0, 1] plus point masses."""

    cont: float
    points: np.ndarray
    weights: np.ndarray

    def mass(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Measure of each interval ``(lo, hi]``."""
        out = self.cont * np.clip(np.minimum(hi, 1.0) - np.maximum(lo, 0.0), 0.0, None)
        if self.points.size:
            inside = (lo[:, None] < self.points[None]) & (self.points[None] <= hi[:, None])
            out = out + inside @ self.weights
        return out


def _measure(param: Param, column: np.ndarray) -> _Measure:
    inactive = float(np.mean(np.isnan(column)))
    active = 1.0 - inactive
    atoms = _atoms(param)
    points: list[float] = []
    weights: list[float] = []
    cont = 0.0
    if atoms is None:
        cont = active
    else:
        points.extend(atoms.tolist())
        weights.extend([active / atoms.size] * atoms.size)
    if inactive > 0:
        points.append(_INACTIVE)
        weights.append(inactive)
    return _Measure(cont, np.array(points), np.array(weights))


def _leaf_boxes(tree: Any, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaves of a fitted scikit-learn regression tree: bounds ``lo, hi`` (each ``(L, d)``, the box is
    ``lo < x <= hi``) and values ``(L,)``."""
    t = tree.tree_
    left, right = t.children_left, t.children_right
    feature, threshold = t.feature, t.threshold
    n = left.shape[0]
    lo = np.full((n, d), -np.inf)
    hi = np.full((n, d), np.inf)
    for node in range(n):  # a node's children are numbered after it
        a, b = left[node], right[node]
        if a == -1:
            continue
        f, s = feature[node], threshold[node]
        lo[a], hi[a] = lo[node], hi[node]
        hi[a, f] = min(hi[node, f], s)
        lo[b], hi[b] = lo[node], hi[node]
        lo[b, f] = max(lo[node, f], s)
    leaf = left == -1
    return lo[leaf], hi[leaf], t.value[leaf, 0, 0].astype(float)


def _tree_fractions(tree: Any, measures: Sequence[_Measure], targets: Sequence[int]) -> np.ndarray | None:
    """Each target feature's main-effect variance as a fraction of the tree's variance (None: constant)."""
    d = len(measures)
    lo, hi, v = _leaf_boxes(tree, d)
    M = np.stack([m.mass(lo[:, k], hi[:, k]) for k, m in enumerate(measures)], axis=1)  # (L, d)
    P = M.prod(axis=1)
    mean = float(v @ P)
    c = v - mean
    total = float(c**2 @ P)
    if not total > 1e-12 * max(1.0, mean**2):
        return None
    t = tree.tree_
    out = np.zeros(len(targets))
    for i, j in enumerate(targets):
        cuts = np.unique(t.threshold[t.feature == j])
        if cuts.size == 0:  # the tree never splits on it: no main effect
            continue
        others = np.prod(np.delete(M, j, axis=1), axis=1)
        edges = np.concatenate([[-np.inf], cuts, [np.inf]])
        a, b = edges[:-1], edges[1:]  # the cells (a, b] of feature j's axis
        inside = (lo[None, :, j] <= a[:, None]) & (b[:, None] <= hi[None, :, j])  # (cells, L)
        effect = inside.astype(float) @ (c * others)  # E[f | x_j in cell] - mean
        out[i] = float(measures[j].mass(a, b) @ effect**2) / total
    return np.clip(out, 0.0, 1.0)


def fanova_importance(
    study_or_history: Study | History,
    *,
    params: Iterable[str] | None = None,
    n_trees: int = 64,
    max_depth: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Each parameter's share of the loss variance explained by its main effect (functional ANOVA).

    A random forest (``n_trees`` trees of depth at most ``max_depth``, ``seed``) is fitted on every
    parameter the complete trials set; ``params`` picks which to report (default: all of them). The shares
    are averaged over the trees and normalised to sum to 1 over the reported parameters (all 0 when the
    loss does not vary), sorted from the most important. Needs scikit-learn (``selftune[examples]``).
    """
    for label, value, low in (("n_trees", n_trees, 1), ("max_depth", max_depth, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidParameterError(f"`{label}` must be an integer >= {low}, got {value!r}")
    data = _prepare(study_or_history, params)
    require("sklearn", "examples")
    from sklearn.ensemble import RandomForestRegressor

    X = np.where(np.isnan(data.X), _INACTIVE, data.X)
    measures = [_measure(p, data.X[:, j]) for j, p in enumerate(data.params)]
    targets = [data.names.index(k) for k in data.report]
    forest = RandomForestRegressor(
        n_estimators=n_trees, max_depth=max_depth, min_samples_split=2, min_samples_leaf=1,
        random_state=seed, n_jobs=1,
    )
    forest.fit(X, data.y)
    sums = np.zeros(len(targets))
    used = 0
    for tree in forest.estimators_:
        fractions = _tree_fractions(tree, measures, targets)
        if fractions is not None:
            sums += fractions
            used += 1
    mean = sums / used if used else sums
    return _finish({k: float(mean[i]) for i, k in enumerate(data.report)})


# -- PED-ANOVA -------------------------------------------------------------------------------------------
def _density(u: np.ndarray, atoms: np.ndarray | None, n_steps: int) -> np.ndarray:
    """A 1-D Parzen estimate from the active unit values ``u``, as probabilities over bins: the discrete
    domain's values, or ``n_steps`` equal cells of [0, 1]. One pseudo-observation's worth of uniform prior."""
    n = u.size
    if atoms is not None:
        k = atoms.size
        idx = np.minimum((u * k).astype(int), k - 1)
        counts = np.bincount(idx, minlength=k).astype(float)
        return (counts + 1.0 / k) / (n + 1.0)
    edges = np.linspace(0.0, 1.0, n_steps + 1)
    prior = np.full(n_steps, 1.0 / n_steps)
    if n == 0:
        return prior
    # Scott's rule, never narrower than a bin
    spread = float(np.std(u))
    q75, q25 = np.percentile(u, [75, 25])
    iqr = float(q75 - q25) / 1.34
    scale = min(spread, iqr) if iqr > 0 else spread
    h = float(np.clip(1.059 * scale * n ** (-0.2), 1.0 / n_steps, 1.0))
    mu = u[:, None]
    cdf = ndtr((edges[None] - mu) / h)  # (n, n_steps + 1); Gaussians truncated to [0, 1]
    cells = np.diff(cdf, axis=1) / (cdf[:, -1:] - cdf[:, :1])
    return (cells.sum(axis=0) + prior) / (n + 1.0)


def _distribution(column: np.ndarray, atoms: np.ndarray | None, n_steps: int, with_inactive: bool) -> np.ndarray:
    active = column[~np.isnan(column)]
    p = _density(active, atoms, n_steps)
    if not with_inactive:
        return p
    off = (column.size - active.size + 0.5) / (column.size + 1.0)
    return np.concatenate([[off], (1.0 - off) * p])


def ped_anova_importance(
    study_or_history: Study | History,
    *,
    params: Iterable[str] | None = None,
    target_quantile: float = 0.1,
    region_quantile: float = 1.0,
    n_steps: int = 50,
) -> dict[str, float]:
    """Each parameter's PED-ANOVA importance: how far its distribution among the best trials is from its
    distribution over the region, normalised to sum to 1 over ``params`` (default: all) and sorted.

    The best ``target_quantile`` of the complete trials (at least one) are compared with the best
    ``region_quantile`` (1.0: all of them, the global importance) by the Pearson divergence
    ``sum((p - q)**2 / q)`` of 1-D Parzen estimates on ``n_steps`` cells of the unit interval (on the values
    themselves for categories and small grids). Deterministic; no scikit-learn needed.
    """
    if not (isinstance(target_quantile, int | float) and 0 < target_quantile < 1):
        raise InvalidParameterError(f"`0 < target_quantile < 1` must hold, got {target_quantile!r}")
    if not (isinstance(region_quantile, int | float) and target_quantile < region_quantile <= 1):
        raise InvalidParameterError(
            f"`target_quantile < region_quantile <= 1` must hold, got region_quantile={region_quantile!r}"
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise InvalidParameterError(f"`n_steps` must be an integer >= 2, got {n_steps!r}")
    data = _prepare(study_or_history, params)
    n = data.y.size
    if np.ptp(data.y) == 0:  # no trial is better than another
        return {k: 0.0 for k in data.report}
    order = np.argsort(data.y, kind="stable")
    region = order[: max(1, math.ceil(region_quantile * n))]
    top = order[: max(1, min(math.ceil(target_quantile * n), region.size))]
    scores: dict[str, float] = {}
    for name in data.report:
        j = data.names.index(name)
        col = data.X[:, j]
        atoms = _atoms(data.params[j])
        if atoms is not None and atoms.size > n_steps:
            atoms = None
        with_inactive = bool(np.isnan(col[region]).any())
        q = _distribution(col[region], atoms, n_steps, with_inactive)
        p = _distribution(col[top], atoms, n_steps, with_inactive)
        scores[name] = float(np.sum((p - q) ** 2 / q))
    return _finish(scores)


# -- dispatch --------------------------------------------------------------------------------------------
def importance(
    study: Study | History,
    method: str = "fanova",
    *,
    params: Iterable[str] | None = None,
    **options: Any,
) -> dict[str, float]:
    """Parameter importances by ``method`` ("fanova" or "ped-anova"), summing to 1, most important first.

    ``options`` go to :func:`fanova_importance` (``n_trees``, ``max_depth``, ``seed``) or
    :func:`ped_anova_importance` (``target_quantile``, ``region_quantile``, ``n_steps``).
    """
    key = method.lower().replace("_", "-") if isinstance(method, str) else method
    if key == "fanova":
        return fanova_importance(study, params=params, **options)
    if key in ("ped-anova", "pedanova"):
        return ped_anova_importance(study, params=params, **options)
    raise InvalidParameterError(f"unknown importance method {method!r}; expected one of {list(METHODS)}")
