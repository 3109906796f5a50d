"""Log expected improvement (for minimisation), numerically stable far into the tails, with gradients.

With posterior mean ``m``, standard deviation ``s`` and incumbent ``best``, ``z = (best - m) / s`` and
``EI = s * h(z)`` where ``h(z) = phi(z) + z Phi(z)``. ``log h`` is computed as in Ament et al. (2023),
"Unexpected improvements to expected improvement": directly for ``z > -1``, through ``erfcx`` and
``log1mexp`` below that, and by its asymptotic expansion where even that loses precision.

The incumbent is the best posterior mean among the evaluated (and fantasised) points: the plug-in form of
the decision-theoretic noisy EI of Frazier's tutorial, so noisy observations do not set an unbeatable bar.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from selftune.samplers.gp.fit import Posterior

__all__ = ["log_h", "dlog_h", "LogEI"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_HALF_LOG_PI_2 = 0.5 * math.log(math.pi / 2)
_ASYMPTOTIC = -1.0 / math.sqrt(np.finfo(float).eps)


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """``log(1 - exp(a))`` for ``a < 0``, accurate for all ``a``."""
    return np.where(a > -math.log(2.0), np.log(-np.expm1(np.minimum(a, -1e-300))),
                    np.log1p(-np.exp(np.minimum(a, 0.0))))


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z Phi(z))`` for any real ``z``."""
    with np.errstate(over="ignore"):
        return _log_h(np.asarray(z, dtype=float))


def _log_h(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    hi = z > -1.0
    zh = z[hi]
    out[hi] = np.log(np.exp(-0.5 * zh**2) / math.sqrt(2 * math.pi) + zh * special.ndtr(zh))
    mid = (~hi) & (z > _ASYMPTOTIC)
    zm = z[mid]
    a = np.log(special.erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + _HALF_LOG_PI_2
    out[mid] = -0.5 * zm**2 - _HALF_LOG_2PI + _log1mexp(a)
    lo = ~(hi | mid)
    zl = z[lo]
    out[lo] = -0.5 * zl**2 - _HALF_LOG_2PI - 2.0 * np.log(np.abs(zl))
    return out


def dlog_h(z: np.ndarray, lh: np.ndarray) -> np.ndarray:
    """``d log h / dz = Phi(z) / h(z)``, given ``lh = log_h(z)``."""
    return np.exp(special.log_ndtr(z) - lh)


class LogEI:
    """``log EI`` on a :class:`Posterior`, its incumbent fixed when constructed (refresh after fantasies)."""

    def __init__(self, post: Posterior) -> None:
        self.post = post
        self.best = float(post.train_mean().min())

    def __call__(self, Xn: np.ndarray, Xc: np.ndarray) -> np.ndarray:
        mean, var = self.post.predict(Xn, Xc)
        s = np.sqrt(var)
        z = (self.best - mean) / s
        return np.log(s) + log_h(z)

    def with_grad(self, Xn: np.ndarray, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(B,)`` and gradients ``(B, d_num)`` with respect to the numeric columns."""
        mean, var, dmean, dvar = self.post.predict_grad(Xn, Xc)
        s = np.sqrt(var)
        z = (self.best - mean) / s
        lh = log_h(z)
        dlh = dlog_h(z, lh)
        ds = dvar / (2.0 * s[:, None])
        dz = -dmean / s[:, None] - (z / s)[:, None] * ds
        grad = ds / s[:, None] + dlh[:, None] * dz
        return np.log(s) + lh, grad
