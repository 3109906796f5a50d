"""Parzen estimators on the unit cube: the densities l(x) and g(x) of the tree-structured Parzen estimator.

A :class:`Parzen` is a weighted mixture with one component per observation plus one wide prior component.
Numeric dimensions use Gaussians truncated to ``[0, 1]``; dimensions on a grid of ``m`` cells (integers,
stepped floats) use the Gaussian's exact mass over the cell, so the density of a discrete parameter sums to
one over its values. Categorical dimensions use a kernel that keeps ``1 - eps`` of the mass on the observed
category and spreads ``eps`` over the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, logsumexp, ndtr, ndtri

__all__ = ["Dims", "Parzen"]

_PRIOR_SIGMA = 1.0


@dataclass(frozen=True)
class Dims:
    """How a group's columns are modelled.

    ``cells``: ``(dn,)`` number of grid cells of each numeric column (0 for continuous);
    ``sizes``: ``(dc,)`` number of categories of each categorical column.
    """

    cells: np.ndarray
    sizes: np.ndarray


def _log_diff_ndtr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(Phi(b) - Phi(a))`` for ``a < b``, stable in both tails."""
    # mirror to the left tail where log_ndtr is accurate
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    lb = log_ndtr(hi)
    la = log_ndtr(lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))
    return np.where(np.isfinite(out), out, -np.inf)


class Parzen:
    """A Parzen mixture fitted to observations in one group of columns.

    Xn: ``(n, dn)`` numeric columns in the unit cube; Xc: ``(n, dc)`` category indices.
    """

    def __init__(self, Xn: np.ndarray, Xc: np.ndarray, dims: Dims, *, prior_weight: float = 1.0) -> None:
        n, dn = Xn.shape
        self.dims = dims
        # bandwidth: Scott-like rule shrinking with n, never below the "magic clip" range / (1 + n) or a cell
        sigma = 0.2 * max(n, 1) ** (-1.0 / (dn + Xc.shape[1] + 4))
        floor = 1.0 / min(100.0, 1.0 + n)
        cells = dims.cells
        sig = np.full(dn, max(sigma, floor))
        if dn:
            grid = cells > 0
            sig[grid] = np.maximum(sig[grid], 1.0 / np.maximum(cells[grid], 1))
        self.mus = np.vstack([Xn, np.full((1, dn), 0.5)])  # (m, dn), the last row is the prior
        self.sig = np.vstack([np.broadcast_to(sig, (n, dn)), np.full((1, dn), _PRIOR_SIGMA)])
        self.cats = np.vstack([Xc.astype(int), np.full((1, Xc.shape[1]), -1)])  # -1: uniform (prior)
        self.logw = np.log(np.concatenate([np.ones(n), [prior_weight]]))
        self.logw -= logsumexp(self.logw)
        sizes = dims.sizes.astype(float)
        self.eps = np.where(sizes > 1, np.minimum(0.5, (sizes - 1) / (sizes + n)), 0.0)  # off-category mass
        self.logz = _log_diff_ndtr(-self.mus / self.sig, (1.0 - self.mus) / self.sig)  # (m, dn)

    def _component_logpdf(self, Xn: np.ndarray, Xc: np.ndarray) -> np.ndarray:
        """``(c, m)`` log density of each candidate under each component (without the weights)."""
        c = Xn.shape[0]
        out = np.zeros((c, self.mus.shape[0]))
        if Xn.shape[1]:
            cont = self.dims.cells == 0
            if cont.any():  # continuous columns: truncated-Gaussian density
                x, mu, sg = Xn[:, None, cont], self.mus[None, :, cont], self.sig[None, :, cont]
                z = (x - mu) / sg
                out += np.sum(-0.5 * z**2 - np.log(sg), axis=2) - 0.5 * np.log(2 * np.pi) * cont.sum()
            if (~cont).any():  # grid columns: the Gaussian's mass over the candidate's cell
                grid = ~cont
                half = 0.5 / self.dims.cells[grid]
                x, mu, sg = Xn[:, None, grid], self.mus[None, :, grid], self.sig[None, :, grid]
                out += np.sum(_log_diff_ndtr((x - half - mu) / sg, (x + half - mu) / sg), axis=2)
            out -= np.sum(self.logz, axis=1)[None]
        if Xc.shape[1]:
            sizes = self.dims.sizes
            obs = self.cats[None]  # (1, m, dc)
            x = Xc[:, None, :]
            same = np.log1p(-self.eps)
            other = np.log(np.where(sizes > 1, self.eps / np.maximum(sizes - 1, 1), 1.0))
            lp = np.where(obs == x, same, other)
            lp = np.where(obs < 0, -np.log(sizes), lp)
            out += np.sum(lp, axis=2)
        return out

    def logpdf(self, Xn: np.ndarray, Xc: np.ndarray) -> np.ndarray:
        """``(c,)`` log density of candidates (numeric ``(c, dn)``, categorical ``(c, dc)``)."""
        return logsumexp(self._component_logpdf(Xn, Xc) + self.logw[None], axis=1)

    def logpdf_marginal(self, Xn: np.ndarray, Xc: np.ndarray) -> np.ndarray:
        """``(c, dn + dc)`` log density of each column on its own (for univariate TPE)."""
        cols = []
        for j in range(Xn.shape[1]):
            sub = _Slice(self, num=[j], cat=[])
            cols.append(sub.logpdf(Xn[:, [j]], Xc[:, :0]))
        for j in range(Xc.shape[1]):
            sub = _Slice(self, num=[], cat=[j])
            cols.append(sub.logpdf(Xn[:, :0], Xc[:, [j]]))
        return np.stack(cols, axis=1) if cols else np.zeros((Xn.shape[0], 0))

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` draws: numeric ``(size, dn)`` (snapped to cell centres on grids) and categories ``(size, dc)``."""
        comp = rng.choice(self.mus.shape[0], size=size, p=np.exp(self.logw))
        mu, sg = self.mus[comp], self.sig[comp]
        lo, hi = ndtr(-mu / sg), ndtr((1.0 - mu) / sg)
        u = np.clip(lo + rng.random(mu.shape) * (hi - lo), 1e-12, 1 - 1e-12)
        xn = np.clip(mu + sg * ndtri(u), 0.0, 1.0)
        cells = self.dims.cells
        if xn.shape[1]:
            m = np.maximum(cells, 1)
            snapped = (np.minimum(np.floor(xn * m), m - 1) + 0.5) / m
            xn = np.where(cells > 0, snapped, xn)
        sizes = self.dims.sizes
        obs = self.cats[comp]
        keep = (obs >= 0) & (rng.random(obs.shape) >= self.eps[None])
        # a draw that leaves the observed category takes one of the others uniformly
        other = rng.integers(0, np.maximum(sizes - 1, 1)[None], size=obs.shape)
        other = np.where((obs >= 0) & (other >= obs), other + 1, other)
        uniform = rng.integers(0, sizes[None], size=obs.shape) if obs.size else obs
        xc = np.where(keep, obs, np.where(obs >= 0, other, uniform))
        return xn, np.minimum(xc, sizes[None] - 1)


class _Slice(Parzen):
    """A view of a :class:`Parzen` restricted to some columns (same components and weights)."""

    def __init__(self, full: Parzen, *, num: list[int], cat: list[int]) -> None:  # noqa: D107
        self.dims = Dims(full.dims.cells[num], full.dims.sizes[cat])
        self.mus, self.sig, self.logz = full.mus[:, num], full.sig[:, num], full.logz[:, num]
        self.cats, self.eps, self.logw = full.cats[:, cat], full.eps[cat], full.logw
