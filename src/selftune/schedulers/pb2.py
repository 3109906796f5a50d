"""PB2: population based bandits (Parker-Holder, Nguyen and Roberts, NeurIPS 2020).

The exploit step is PBT's; the explore step is a GP bandit instead of random perturbation. Each interval
of each member's own curve is one observation: the inputs are the step it ended at, the loss it started
from and the (unit-cube encoded) hyperparameters in force; the target is the loss decrease per step. A GP
with the time-varying kernel of Bogunovic et al. (2016)

    k((t, x), (t', x')) = s² · exp(−‖x − x'‖² / ℓ) · (1 − ε)^{|t − t'| / 2}

fitted by maximum likelihood (ε ≤ 0.5, ℓ ∈ [1e-3, 1], targets standardised and clipped to [−2, 2], at most
the last 500 observations) scores hyperparameters for the context (step, loss) of the member being copied,
and the new values maximise the upper confidence bound ``μ + κσ`` (L-BFGS-B from 10 starts).
Hyperparameters just chosen by other members at the same step count as pending observations: they shrink
``σ`` near them, which spreads a batch of exploits out.

Deliberate differences from the reference code (Ray Tune's ``pb2.py``): the bound uses the standard
deviation, not the variance; ``β = max(0.2 · log(0.4 · n), 0.04)`` is never negative (the reference goes NaN
below 3 observations); categorical hyperparameters are explored as in PBT (perturbed if their choices are
numbers, else resampled with ``resample_probability``); with fewer than 3 observations PB2 explores as PBT.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from selftune.history import History
from selftune.schedulers.pbt import PopulationBasedTraining
from selftune.space import Choice
from selftune.trial import TrialRecord, TrialState

__all__ = ["PB2", "pb2_data"]

_MAX_POINTS = 500
_JITTER = 1e-6


def pb2_data(
    history: History, hyperparams: list[str], interval: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PB2's observations from the stored curves: ``(t, loss_before, H)`` inputs and the loss decrease per step.

    One observation per pair of consecutive reports at ready steps (multiples of ``interval``, or the first
    report after an exploit) of one member, within one stretch of its own curve trained with one set of
    weights (never across an exploit).
    """
    ts: list[float] = []
    before: list[float] = []
    hs: list[list[float]] = []
    ys: list[float] = []
    domains = history.params
    for r in history.trials:
        if r.state in (TrialState.WAITING, TrialState.FAILED) or len(r.intermediate) < 2:
            continue
        own = r.own_schedule
        starts = [0, *own.changes]
        steps = sorted(r.intermediate)
        for i, a in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else math.inf
            piece = [s for s in steps if a <= s < end]
            marks = [s for j, s in enumerate(piece) if j == 0 or s % interval == 0]
            params = own.at(a)
            h = [domains[name].to_unit(params[name]) for name in hyperparams if name in domains and name in params]
            if len(h) != len(hyperparams):
                continue
            for s0, s1 in zip(marks, marks[1:], strict=False):
                l0, l1 = history.sign * r.intermediate[s0], history.sign * r.intermediate[s1]
                if not (math.isfinite(l0) and math.isfinite(l1)):
                    continue
                ts.append(float(s1))
                before.append(l0)
                hs.append(h)
                ys.append((l0 - l1) / (s1 - s0))
    if not ys:
        return np.zeros((0, 2 + len(hyperparams))), np.zeros(0), np.zeros((0, 2))
    t, b = np.asarray(ts), np.asarray(before)
    x = np.column_stack([t, b, np.asarray(hs)])
    return x[-_MAX_POINTS:], np.asarray(ys)[-_MAX_POINTS:], np.column_stack([t, b])[-_MAX_POINTS:]


class _TVGP:
    """A GP with the time-varying squared-exponential kernel on (t, x); hyperparameters by ML-II."""

    def __init__(self, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        from scipy import linalg  # lazy: workers that never use PB2 skip scipy's import
        self.t, self.x, self.y = t, x, y
        self.theta = self._fit()
        self._factor(self.t, self.x)
        self._alpha = linalg.cho_solve(self._c, self.y)

    def _k(self, t1: np.ndarray, x1: np.ndarray, t2: np.ndarray, x2: np.ndarray, theta: np.ndarray) -> np.ndarray:
        var, ell, eps, _ = theta
        d2 = ((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1)
        dt = np.abs(t1[:, None] - t2[None, :])
        return var * np.exp(-d2 / ell) * (1.0 - eps) ** (dt / 2.0)

    @staticmethod
    def _unpack(z: np.ndarray) -> np.ndarray:
        var = math.exp(z[0])
        ell = min(max(math.exp(z[1]), 1e-3), 1.0)
        eps = 0.5 / (1.0 + math.exp(-z[2]))  # in (0, 0.5)
        noise = math.exp(z[3]) + _JITTER
        return np.array([var, ell, eps, noise])

    def _nll(self, z: np.ndarray) -> float:
        from scipy import linalg  # lazy: workers that never use PB2 skip scipy's import
        theta = self._unpack(z)
        k = self._k(self.t, self.x, self.t, self.x, theta) + theta[3] * np.eye(len(self.y))
        try:
            c = linalg.cho_factor(k, lower=True)
        except linalg.LinAlgError:
            return 1e10
        alpha = linalg.cho_solve(c, self.y)
        return float(0.5 * self.y @ alpha + np.log(np.diag(c[0])).sum())

    def _fit(self) -> np.ndarray:
        from scipy import optimize  # lazy: workers that never use PB2 skip scipy's import
        starts = [np.array([0.0, math.log(0.3), math.log(0.1 / 0.4), math.log(0.1)]),
                  np.array([0.0, math.log(0.05), 0.0, math.log(0.01)])]
        best = None
        for z0 in starts:
            res = optimize.minimize(self._nll, z0, method="L-BFGS-B",
                                    bounds=[(-5, 3), (math.log(1e-3), 0.0), (-6, 6), (-10, 1)])
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        return self._unpack(best.x)

    def _factor(self, t: np.ndarray, x: np.ndarray) -> None:
        from scipy import linalg  # lazy: workers that never use PB2 skip scipy's import
        k = self._k(t, x, t, x, self.theta) + self.theta[3] * np.eye(len(t))
        self._c = linalg.cho_factor(k + _JITTER * np.eye(len(t)), lower=True)
        self._tf, self._xf = t, x

    def with_pending(self, t: np.ndarray, x: np.ndarray) -> _TVGP:
        """A copy whose variance also conditions on pending inputs (their values do not matter)."""
        other = object.__new__(_TVGP)
        other.t, other.x, other.y, other.theta, other._alpha = self.t, self.x, self.y, self.theta, self._alpha
        other._factor(np.concatenate([self.t, t]), np.vstack([self.x, x]))
        return other

    def mean(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._k(t, x, self.t, self.x, self.theta) @ self._alpha)

    def std(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        from scipy import linalg  # lazy: workers that never use PB2 skip scipy's import
        ks = self._k(t, x, self._tf, self._xf, self.theta)
        v = linalg.cho_solve(self._c, ks.T)
        var = self.theta[0] - (ks * v.T).sum(1)
        return np.sqrt(np.maximum(var, 1e-12))


class PB2(PopulationBasedTraining):
    """Population based bandits: PBT's exploit, with new hyperparameters chosen by a time-varying GP bandit.

    Same arguments as :class:`PopulationBasedTraining` (``resample_probability`` applies only to
    categorical hyperparameters with unordered choices). Numeric hyperparameters are modelled on the unit
    cube of their domains (log-scaled ones in log space) and never leave their bounds.
    """

    def new_params(
        self, trial: TrialRecord, source: TrialRecord, step: int, history: History, rng: np.random.Generator
    ) -> dict[str, Any]:
        """UCB-optimal numeric hyperparameters for the source's context; categorical ones explored as PBT."""
        from scipy import optimize  # lazy: workers that never use PB2 skip scipy's import
        domains = history.params
        numeric = [h for h in sorted(self.hyperparams) if h in source.params and not isinstance(domains.get(h), Choice)]
        out = self.explore(source.params, domains, rng)  # categoricals (and the fallback for numerics)
        x, y, ctx = pb2_data(history, numeric, self.interval)
        if not numeric or len(y) < 3:
            return out
        # normalise: the context by its data range, the targets standardised and clipped
        lo, span = ctx.min(0), np.maximum(np.ptp(ctx, 0), 1e-12)
        t = (x[:, 0] - lo[0]) / span[0]
        feats = np.column_stack([(x[:, 1] - lo[1]) / span[1], x[:, 2:]])
        sd = y.std()
        yn = np.clip((y - y.mean()) / (sd if sd > 0 else 1.0), -2.0, 2.0)
        gp = _TVGP(t, feats, yn)
        found = _value_before(source, step, history)
        t_now = (float(step) - lo[0]) / span[0]
        b_now = (found - lo[1]) / span[1]
        pending = _pending(history, trial.number, step, numeric, domains)
        gp_var = gp.with_pending(np.full(len(pending), t_now), np.column_stack([np.full(len(pending), b_now), pending])) if len(pending) else gp
        beta = max(0.2 * math.log(0.4 * len(yn)), 0.04)
        kappa = math.sqrt(beta)
        d = len(numeric)

        def neg_ucb(h: np.ndarray) -> float:
            z = np.concatenate([[b_now], h])[None, :]
            tt = np.array([t_now])
            return -float(gp.mean(tt, z)[0] + kappa * gp_var.std(tt, z)[0])

        best_h, best_v = None, math.inf
        for _ in range(10):
            res = optimize.minimize(neg_ucb, rng.random(d), method="L-BFGS-B", bounds=[(0.0, 1.0)] * d)
            if res.fun < best_v:
                best_h, best_v = np.clip(res.x, 0.0, 1.0), float(res.fun)
        assert best_h is not None
        for name, u in zip(numeric, best_h, strict=True):
            out[name] = domains[name].from_unit(float(u))
        return out


def _value_before(source: TrialRecord, step: int, history: History) -> float:
    """The source's loss at ``step`` (its first report at or after it), the context PB2 proposes for."""
    steps = [s for s in sorted(source.intermediate) if s >= step]
    s = steps[0] if steps else max(source.intermediate)
    return history.sign * source.intermediate[s]


def _pending(history: History, number: int, step: int, names: list[str], domains: Any) -> np.ndarray:
    """Hyperparameters other members took at this step (their exploits' new values), on the unit cube."""
    rows = []
    for r in history.trials:
        if r.number == number:
            continue
        for e in r.lineage:
            if e.step == step and all(n in e.params for n in names):
                rows.append([float(domains[n].to_unit(e.params[n])) for n in names])
    return np.asarray(rows, dtype=float).reshape(-1, len(names))


