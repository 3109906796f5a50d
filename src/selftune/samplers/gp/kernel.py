"""Matérn-5/2 ARD kernel on numeric columns times an overlap (Hamming) kernel on categorical columns.

``k(x, x') = s2 * m(r) * exp(-0.5 * sum_c [x_c != x'_c] / l_c**2)``, with ``r**2 = sum_i (x_i - x'_i)**2 / l_i**2``
and ``m(r) = (1 + sqrt5 r + 5 r**2 / 3) exp(-sqrt5 r)``. A category mismatch thus counts like a unit-length move
of a numeric column, with its own lengthscale; categories are never rounded one-hots.

All hyperparameters travel in one vector ``theta`` (see :class:`Layout`): log-lengthscales (numeric, then
categorical), log signal variance, log noise variance and the constant mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout", "matern52", "Pairwise", "cross"]

SQRT5 = float(np.sqrt(5.0))


@dataclass(frozen=True)
class Layout:
    """Positions of the hyperparameters in ``theta``."""

    d_num: int
    d_cat: int

    @property
    def size(self) -> int:
        return self.d_num + self.d_cat + 3

    @property
    def signal(self) -> int:
        return self.d_num + self.d_cat

    @property
    def noise(self) -> int:
        return self.d_num + self.d_cat + 1

    @property
    def mean(self) -> int:
        return self.d_num + self.d_cat + 2

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """``(lengthscales numeric, lengthscales categorical, signal var, noise var, mean)``."""
        ls = np.exp(theta[: self.d_num + self.d_cat])
        return (ls[: self.d_num], ls[self.d_num :], float(np.exp(theta[self.signal])),
                float(np.exp(theta[self.noise])), float(theta[self.mean]))


def matern52(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m(r), g(r))`` for squared distances ``r2``, where ``g = -m'(r) / r = 5/3 (1 + sqrt5 r) exp(-sqrt5 r)``."""
    r = np.sqrt(np.maximum(r2, 0.0))
    r *= SQRT5  # r is now sqrt5 * r
    e = np.exp(-r)
    r += 1.0  # and now the polynomial 1 + sqrt5 r
    m = r + (5.0 / 3.0) * r2
    m *= e
    r *= e
    r *= 5.0 / 3.0
    return m, r


class Pairwise:
    """Squared differences and category mismatches between all training pairs, computed once per fit."""

    def __init__(self, Xn: np.ndarray, Xc: np.ndarray) -> None:
        n = Xn.shape[0]
        self.n = n
        self.sq = (Xn[:, None, :] - Xn[None, :, :]) ** 2  # (n, n, d_num)
        self.sq_flat = self.sq.reshape(n * n, -1)
        self.mis = (Xc[:, None, :] != Xc[None, :, :]).astype(float)  # (n, n, d_cat)
        self.mis_flat = self.mis.reshape(n * n, -1)

    def kernel(self, ls_num: np.ndarray, ls_cat: np.ndarray, s2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(K, s2 * g(r) * C, C)``: the noise-free kernel matrix and the pieces its gradient needs."""
        n = self.n
        r2 = (self.sq_flat @ (1.0 / ls_num**2)).reshape(n, n) if ls_num.size else np.zeros((n, n))
        m, g = matern52(r2)
        if ls_cat.size:
            c = np.exp(-0.5 * (self.mis_flat @ (1.0 / ls_cat**2))).reshape(n, n)
        else:
            c = np.ones((n, n))
        kc = s2 * c
        return m * kc, g * kc, c


def cross(
    Xn: np.ndarray, Xc: np.ndarray, Tn: np.ndarray, Tc: np.ndarray, ls_num: np.ndarray, ls_cat: np.ndarray,
    s2: float, grad: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cross-covariance ``(B, n)`` of query points ``X`` against training points ``T``.

    With ``grad``, also ``dK/dx`` of shape ``(B, n, d_num)`` with respect to the query's numeric columns.
    """
    B, n = Xn.shape[0], Tn.shape[0]
    if ls_num.size:
        xs = Xn / ls_num
        ts = Tn / ls_num
        r2 = (xs**2).sum(1)[:, None] + (ts**2).sum(1)[None, :] - 2.0 * xs @ ts.T
        r2 = np.maximum(r2, 0.0)
    else:
        r2 = np.zeros((B, n))
    m, g = matern52(r2)
    if ls_cat.size:
        w = 0.5 / ls_cat**2
        mis = np.zeros((B, n))
        for j in range(ls_cat.size):
            mis += w[j] * (Xc[:, j, None] != Tc[None, :, j])
        kc = s2 * np.exp(-mis)
    else:
        kc = np.full((B, n), s2)
    K = m * kc
    if not grad:
        return K, None
    diff = (Xn[:, None, :] - Tn[None, :, :]) / ls_num**2  # (B, n, d_num)
    dK = -(g * kc)[:, :, None] * diff
    return K, dK
