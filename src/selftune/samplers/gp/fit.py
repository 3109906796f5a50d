"""Output warping, ML-II (MAP) hyperparameter fitting with analytic gradients, and the fitted posterior.

* :func:`warp_losses` clips ±inf to the finite extremes, scales robustly (median / IQR), applies a
  Yeo-Johnson power transform fitted by maximum likelihood and standardises; a rank-Gaussian warp is the
  fallback when that misbehaves. Heavy tails and infinities therefore never reach the GP raw.
* :func:`neg_log_posterior` is ``-log p(y | theta) - log p(theta)`` and its exact gradient.
* :func:`fit` minimises it with L-BFGS-B from a few fixed starts (deterministic).
* :class:`Posterior` caches the Cholesky factor and its inverse, predicts mean/variance (and gradients)
  and adds fantasy observations one at a time (kriging believer) by extending the factor.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, optimize, special, stats

from selftune.samplers.gp.kernel import Layout, Pairwise, cross

__all__ = ["warp_losses", "Prior", "neg_log_posterior", "fit", "Posterior"]

JITTER = 1e-8
NOISE_BOUNDS = (1e-6, 2.0)
SIGNAL_BOUNDS = (1e-2, 1e2)
LS_BOUNDS = (5e-3, 1e3)
MEAN_BOUNDS = (-5.0, 5.0)


def _yeo_johnson(x: np.ndarray, lmbda: np.ndarray) -> np.ndarray:
    """Yeo-Johnson transform of ``x`` (n,) for every ``lmbda`` (m,): an ``(m, n)`` array."""
    lam = lmbda[:, None]
    a_pos = np.log1p(np.maximum(x, 0.0))[None, :]
    a_neg = np.log1p(np.maximum(-x, 0.0))[None, :]
    lp = np.where(np.abs(lam) < 1e-9, 1.0, lam)
    ln = np.where(np.abs(2.0 - lam) < 1e-9, 1.0, 2.0 - lam)
    pos = np.where(np.abs(lam) < 1e-9, a_pos, np.expm1(lp * a_pos) / lp)
    neg = np.where(np.abs(2.0 - lam) < 1e-9, -a_neg, -np.expm1(ln * a_neg) / ln)
    return np.where(x[None, :] >= 0, pos, neg)


def yeo_johnson_fit(x: np.ndarray) -> float:
    """Maximum-likelihood Yeo-Johnson exponent on ``[-3, 3]`` (grid search refined by a parabola)."""
    grid = np.linspace(-3.0, 3.0, 61)
    with np.errstate(all="ignore"):
        t = _yeo_johnson(x, grid)
        var = t.var(axis=1)
        llf = -0.5 * len(x) * np.log(var) + (grid - 1.0) * float((np.sign(x) * np.log1p(np.abs(x))).sum())
    llf = np.where(np.isfinite(llf) & (var > 0), llf, -np.inf)
    i = int(np.argmax(llf))
    if 0 < i < len(grid) - 1 and np.all(np.isfinite(llf[i - 1 : i + 2])):
        f0, f1, f2 = llf[i - 1 : i + 2]
        den = f0 - 2.0 * f1 + f2
        if den < 0:
            return float(grid[i] + 0.5 * (grid[1] - grid[0]) * (f0 - f2) / den)
    return float(grid[i])


def _rank_gauss(y: np.ndarray) -> np.ndarray:
    r = stats.rankdata(y)
    return special.ndtri((r - 0.5) / len(y))


def warp_losses(y: np.ndarray) -> np.ndarray:
    """Finite, roughly standard-normal targets that keep the order of the losses ``y`` (±inf allowed)."""
    y = np.asarray(y, dtype=float).copy()
    fin = np.isfinite(y)
    if fin.any():
        lo, hi = float(y[fin].min()), float(y[fin].max())
    else:
        lo, hi = 0.0, 1.0
    y[y == np.inf] = hi
    y[y == -np.inf] = lo
    y[np.isnan(y)] = hi
    if len(y) < 2 or not np.ptp(y) > 0:
        return np.zeros_like(y)
    med = float(np.median(y))
    q75, q25 = np.percentile(y, [75, 25])
    scale = float(q75 - q25) / 1.349
    if not scale > 0:
        scale = float(np.std(y))
    z = (y - med) / scale
    with np.errstate(all="ignore"):
        t = _yeo_johnson(z, np.array([yeo_johnson_fit(z)]))[0]
        s = float(np.std(t))
        out = (t - t.mean()) / s if s > 1e-12 else t
    order = np.argsort(y, kind="stable")
    if not np.all(np.isfinite(out)) or not s > 1e-12 or np.any(np.diff(out[order]) < -1e-9):
        return np.clip(_rank_gauss(y), -6.0, 6.0)  # a monotone warp must stay finite and keep the order
    good = y <= med
    if np.ptp(y[good]) > 0 and float(np.std(out[good])) < 0.05:
        # outliers squashed the good half together: mix in ranks so the model can still tell it apart
        mix = 0.5 * out + 0.5 * _rank_gauss(y)
        out = (mix - mix.mean()) / mix.std()
    return np.clip(out, -6.0, 6.0)


class Prior:
    """Independent normal priors on ``theta``: dimension-scaled log-normal lengthscales, log-normal signal and
    noise variances, a standard normal constant mean.

    The lengthscale prior scales with the dimension as Hvarfner et al.'s (2024), ``log l ~ N(log(d) / 2, 3)``
    (variance 3), but is centred on ``sqrt(d)`` (the unit cube's diagonal) rather than on their
    ``e^sqrt(2) sqrt(d)``: the smoother prior made the GP polish one basin of multimodal functions (on bbob
    5-D over 8 seeds the GP alone scored 64 with it and 78 with this one; ``docs/benchmarks.md``)."""

    def __init__(self, layout: Layout) -> None:
        d = max(layout.d_num + layout.d_cat, 1)
        k = layout.size
        self.loc = np.zeros(k)
        self.scale = np.ones(k)
        nl = layout.d_num + layout.d_cat
        self.loc[:nl] = 0.5 * math.log(d)
        self.scale[:nl] = math.sqrt(3.0)
        self.loc[layout.signal], self.scale[layout.signal] = 0.0, 1.0
        self.loc[layout.noise], self.scale[layout.noise] = -4.0, 1.0
        self.loc[layout.mean], self.scale[layout.mean] = 0.0, 1.0

    def neg_log(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = (theta - self.loc) / self.scale
        return 0.5 * float(z @ z), z / self.scale


def bounds(layout: Layout) -> list[tuple[float, float]]:
    nl = layout.d_num + layout.d_cat
    b = [(math.log(LS_BOUNDS[0]), math.log(LS_BOUNDS[1]))] * nl
    b.append((math.log(SIGNAL_BOUNDS[0]), math.log(SIGNAL_BOUNDS[1])))
    b.append((math.log(NOISE_BOUNDS[0]), math.log(NOISE_BOUNDS[1])))
    b.append(MEAN_BOUNDS)
    return b


def neg_log_posterior(
    theta: np.ndarray, pw: Pairwise, y: np.ndarray, layout: Layout, prior: Prior | None
) -> tuple[float, np.ndarray]:
    """``-log p(y | theta) - log p(theta)`` (up to a constant) and its gradient with respect to ``theta``."""
    ls_num, ls_cat, s2, noise, mu = layout.unpack(theta)
    K, G, C = pw.kernel(ls_num, ls_cat, s2)
    n = len(y)
    Ky = K.copy()
    Ky[np.diag_indices(n)] += noise + JITTER * s2
    try:
        L = np.linalg.cholesky(Ky)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    r = y - mu
    alpha = linalg.cho_solve((L, True), r, check_finite=False)
    nll = 0.5 * float(r @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2 * math.pi)
    low, info = linalg.lapack.dpotri(L, lower=1)  # fills the lower triangle; L's upper one is zero
    if info != 0:
        return 1e25, np.zeros_like(theta)
    Kinv = low + low.T
    Kinv[np.diag_indices(n)] *= 0.5
    W = Kinv - np.outer(alpha, alpha)  # d nll / d theta_j = 0.5 tr(W dK/d theta_j)
    grad = np.empty_like(theta)
    if layout.d_num:
        grad[: layout.d_num] = 0.5 * ((W * G).ravel() @ pw.sq_flat) / ls_num**2
    if layout.d_cat:
        grad[layout.d_num : layout.signal] = 0.5 * ((W * K).ravel() @ pw.mis_flat) / ls_cat**2
    WK = float((W * K).sum())
    grad[layout.signal] = 0.5 * WK
    grad[layout.noise] = 0.5 * noise * float(np.trace(W))
    grad[layout.mean] = -float(alpha.sum())
    if prior is not None:
        p, dp = prior.neg_log(theta)
        nll += p
        grad += dp
    return nll, grad


def default_starts(layout: Layout) -> list[np.ndarray]:
    """Deterministic starting points: a wiggly and a smooth model, both with little noise."""
    nl = layout.d_num + layout.d_cat
    d = max(nl, 1)
    starts = []
    for ls in (0.15 * math.sqrt(d), 0.5 * math.sqrt(d)):
        t = np.zeros(layout.size)
        t[:nl] = math.log(min(ls, 10.0))
        t[layout.signal] = 0.0
        t[layout.noise] = math.log(1e-3)
        starts.append(t)
    return starts


def fit(
    Xn: np.ndarray, Xc: np.ndarray, y: np.ndarray, *, n_starts: int = 2, maxiter: int = 50, prior: bool = True,
) -> np.ndarray:
    """MAP hyperparameters ``theta`` for the targets ``y`` (already warped).

    The posterior is nearly unimodal under the priors, so beyond 64 points only the first start is used
    (the likelihood then costs ``O(n^3)`` per evaluation and both starts land on the same optimum).
    """
    layout = Layout(Xn.shape[1], Xc.shape[1])
    pw = Pairwise(Xn, Xc)
    pr = Prior(layout) if prior else None
    b = bounds(layout)
    starts = default_starts(layout)[: max(1, n_starts if len(y) <= 64 else 1)]
    best_theta, best_f = starts[0], math.inf
    for x0 in starts:
        try:
            res = optimize.minimize(
                neg_log_posterior, x0, args=(pw, y, layout, pr), jac=True, method="L-BFGS-B", bounds=b,
                options={"maxiter": maxiter, "ftol": 1e-4, "gtol": 1e-3},
            )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            continue
        if np.all(np.isfinite(res.x)) and res.fun < best_f:
            best_theta, best_f = res.x, float(res.fun)
    return np.asarray(best_theta, dtype=float)


class Posterior:
    """A GP conditioned on ``(X, y)`` with fixed hyperparameters; fantasies extend it in place."""

    def __init__(self, Xn: np.ndarray, Xc: np.ndarray, y: np.ndarray, theta: np.ndarray) -> None:
        self.layout = Layout(Xn.shape[1], Xc.shape[1])
        self.theta = theta
        self.ls_num, self.ls_cat, self.s2, self.noise, self.mu = self.layout.unpack(theta)
        self.Xn, self.Xc, self.y = Xn.copy(), Xc.copy(), np.asarray(y, dtype=float).copy()
        self.n_observed = len(y)
        K, _ = cross(Xn, Xc, Xn, Xc, self.ls_num, self.ls_cat, self.s2)
        K = 0.5 * (K + K.T)
        n = len(y)
        for jitter in (JITTER, 1e-6, 1e-4, 1e-2):
            try:
                Ky = K + (self.noise + jitter * self.s2) * np.eye(n)
                L = np.linalg.cholesky(Ky)
                break
            except np.linalg.LinAlgError:
                continue
        else:
            raise np.linalg.LinAlgError("kernel matrix is not positive definite even with jitter")
        self.nugget = self.noise + jitter * self.s2
        self.Linv = linalg.solve_triangular(L, np.eye(n), lower=True, check_finite=False)
        self._refresh()

    def _refresh(self) -> None:
        self.alpha = self.Linv.T @ (self.Linv @ (self.y - self.mu))

    def train_mean(self) -> np.ndarray:
        """Posterior mean at the training points (noise-free latent values)."""
        return self.y - self.nugget * self.alpha

    def predict(self, Xn: np.ndarray, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at ``B`` points."""
        Ks, _ = cross(Xn, Xc, self.Xn, self.Xc, self.ls_num, self.ls_cat, self.s2)
        V = Ks @ self.Linv.T
        var = np.maximum(self.s2 - (V * V).sum(1), 1e-12 * self.s2)
        return self.mu + Ks @ self.alpha, var

    def predict_grad(
        self, Xn: np.ndarray, Xc: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients ``(B, d_num)`` with respect to the numeric columns."""
        Ks, dK = cross(Xn, Xc, self.Xn, self.Xc, self.ls_num, self.ls_cat, self.s2, grad=True)
        assert dK is not None
        V = Ks @ self.Linv.T
        raw = self.s2 - (V * V).sum(1)
        var = np.maximum(raw, 1e-12 * self.s2)
        A = V @ self.Linv  # = K*^T K^-1, (B, n)
        dmean = np.einsum("bnd,n->bd", dK, self.alpha)
        dvar = -2.0 * np.einsum("bnd,bn->bd", dK, A)
        dvar[raw < 1e-12 * self.s2] = 0.0
        return self.mu + Ks @ self.alpha, var, dmean, dvar

    def add(self, Xn: np.ndarray, Xc: np.ndarray, y: float | None = None) -> None:
        """Condition on one more point; ``y=None`` means the current posterior mean (kriging believer)."""
        ks, _ = cross(Xn, Xc, self.Xn, self.Xc, self.ls_num, self.ls_cat, self.s2)
        ks = ks[0]
        if y is None:
            y = float(self.mu + ks @ self.alpha)
        v = self.Linv @ ks
        d2 = self.s2 + self.nugget - float(v @ v)
        d = math.sqrt(max(d2, self.nugget))
        n = len(self.y)
        Linv = np.zeros((n + 1, n + 1))
        Linv[:n, :n] = self.Linv
        Linv[n, :n] = -(v @ self.Linv) / d
        Linv[n, n] = 1.0 / d
        self.Linv = Linv
        self.Xn = np.vstack([self.Xn, Xn])
        self.Xc = np.vstack([self.Xc, Xc])
        self.y = np.append(self.y, y)
        self._refresh()
