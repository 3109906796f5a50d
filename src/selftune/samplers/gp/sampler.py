"""``GPSampler``: Gaussian-process Bayesian optimisation on NumPy/SciPy."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any

import numpy as np
from scipy.stats import qmc

from selftune.history import History
from selftune.samplers._base import DEFAULT_STARTUP, Sampler
from selftune.samplers.gp.acquisition import LogEI
from selftune.samplers.gp.encoding import ModelSpace, infer_conditions
from selftune.samplers.gp.fit import Posterior, fit, warp_losses
from selftune.samplers.gp.optimize import maximize, point_key, trust_region_box, trust_region_length
from selftune.space import Param, Space
from selftune.trial import TrialRecord

__all__ = ["GPSampler"]

logger = logging.getLogger("selftune")

_BLAS: list[Any] = []  # a cached threadpoolctl.ThreadpoolController, when that package is installed


def _blas_threads(n: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to ``n`` threads while fitting: the matrices are small, and on a busy machine OpenBLAS
    threads fighting over the cores made an ask several times slower. A no-op without threadpoolctl."""
    if n is None:
        return contextlib.nullcontext()
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append(None)
        else:
            _BLAS.append(ThreadpoolController())
    if _BLAS[0] is None:
        return contextlib.nullcontext()
    return _BLAS[0].limit(limits=n, user_api="blas")


class GPSampler(Sampler):
    """Bayesian optimisation with a Gaussian process and log expected improvement.

    The model is a Matérn-5/2 ARD kernel on the unit-cube encoding times an overlap kernel on categories,
    fitted by maximum a posteriori (dimension-scaled log-normal lengthscale priors) to Yeo-Johnson-warped
    losses. The acquisition is log EI against the best posterior mean among evaluated points, so noisy
    objectives are handled. Pending trials and earlier members of a batch are fantasised at the posterior
    mean (kriging believer) and kept apart from them, so parallel workers get distinct points. Failed
    trials do not enter the model, but their points are never proposed again exactly. Optionally the search
    is confined to a TuRBO-style trust region around the incumbent (``trust_region=True``).

    Args:
        seed: seed of the start-up Sobol sequence (the study derives ``rng`` from it too).
        n_startup: complete trials needed before the model is used (scrambled Sobol points until then);
            default 10, as Optuna's GP and TPE. ``min(10, 2 d + 1)`` (5 in 2-D) did worse on multimodal
            low-dimensional functions: one seed's fit on 5 points can miss the basin (``docs/benchmarks.md``).
        trust_region: confine the search to a TuRBO-style trust region around the incumbent, its size
            replayed from the history. Off by default: with the dimension-scaled lengthscale prior the
            global search did better at budgets of 100-150 trials in 10-30 dimensions (see the benchmarks).
        n_starts: gradient-optimisation starts of the acquisition.
        acq_maxiter: L-BFGS-B iterations of the (joint) acquisition optimisation.
        fit_starts: L-BFGS-B starts of the hyperparameter fit.
        blas_threads: BLAS threads while proposing (through threadpoolctl when installed); ``None`` leaves
            the process setting alone.

    >>> import selftune
    >>> from selftune.samplers.gp import GPSampler
    >>> study = selftune.create_study(storage="memory", sampler=GPSampler(seed=0))
    >>> study.optimize(lambda t: (t.float("x", -2, 2) - 1) ** 2, trials=15, progress=False)
    >>> study.best_value < 0.05
    True
    """

    def __init__(
        self, *, seed: int | None = None, n_startup: int | None = None, trust_region: bool = False,
        n_starts: int = 10, acq_maxiter: int = 25, fit_starts: int = 2, blas_threads: int | None = 1,
    ) -> None:
        super().__init__(seed=seed)
        self.n_startup = n_startup
        self.trust_region = trust_region
        self.n_starts = n_starts
        self.acq_maxiter = acq_maxiter
        self.fit_starts = fit_starts
        self.blas_threads = blas_threads

    # -- public contract -----------------------------------------------------------------------------------
    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        if len(space) == 0:
            return [{} for _ in range(n)]
        if n <= 0:
            return []
        ms = ModelSpace(space, infer_conditions(space, history.complete))
        if ms.d_model == 0:
            return [space.decode(np.full(ms.d, 0.5)) for _ in range(n)]
        X, y = _encode(history, space, history.complete, with_values=True)
        n_startup = self.n_startup if self.n_startup is not None else DEFAULT_STARTUP
        if len(y) < max(n_startup, 1):
            return self._startup(history, space, n, rng)
        try:
            with np.errstate(all="ignore"), _blas_threads(self.blas_threads):
                U = self._model_based(history, space, ms, X, y, n, n_startup, rng)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError, ZeroDivisionError) as exc:
            logger.warning("GPSampler: the Gaussian process failed (%s); proposing at random", exc)
            U = rng.random((n, ms.d))
        return [space.decode(ms.fill(u)) for u in U]

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        return param.from_unit(rng.random())

    # -- internals -----------------------------------------------------------------------------------------
    def _startup(self, history: History, space: Space, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        d = len(space)
        seed = self.seed if self.seed is not None else int(rng.integers(2**31))
        engine = qmc.Sobol(d, scramble=True, seed=np.random.default_rng([seed, d, 0x6770]))
        if len(history):
            engine.fast_forward(len(history))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            U = engine.random(n)
        return [space.decode(u) for u in U]

    def _model_based(
        self, history: History, space: Space, ms: ModelSpace, X: np.ndarray, y: np.ndarray, n: int,
        n_startup: int, rng: np.random.Generator,
    ) -> np.ndarray:
        yt = warp_losses(y)
        Xn, Xc = ms.features(X)
        theta = fit(Xn, Xc, yt, n_starts=self.fit_starts)
        post = Posterior(Xn, Xc, yt, theta)
        mean = post.train_mean()
        order = np.argsort(mean, kind="stable")
        anchors = X[order[:5]]
        d_num = len(ms.num_idx)
        lo, hi = np.zeros(d_num), np.ones(d_num)
        if self.trust_region and d_num:
            finite = y[np.isfinite(y)]
            lo_y, hi_y = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
            length = trust_region_length(np.clip(y, lo_y, hi_y), n_startup, ms.d_model)
            centre = ms.fill(X[order[0]])[ms.num_idx]
            lo, hi = trust_region_box(centre, post.ls_num, length)
        F, _ = _encode(history, space, [r for r in history.failed if r.params], with_values=False)
        exclude = {point_key(u) for u in np.vstack([X, F])}  # never repeat a point exactly
        P, _ = _encode(history, space, [r for r in history.pending if r.params], with_values=False)
        for u in P:  # kriging believer: pending trials return their posterior mean
            post.add(*ms.features(u[None]))
            exclude.add(point_key(u))
        avoid = list(P)
        out = []
        for _ in range(n):
            u = maximize(LogEI(post), ms, rng, lo=lo, hi=hi, anchors=anchors, exclude=exclude,
                         avoid=np.array(avoid).reshape(len(avoid), ms.d), n_starts=self.n_starts,
                         maxiter=self.acq_maxiter)
            out.append(u)
            avoid.append(u)
            exclude.add(point_key(u))
            post.add(*ms.features(u[None]))
        return np.array(out)


def _encode(
    history: History, space: Space, records: Any, *, with_values: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-cube rows (NaN where inactive) and losses of ``records``; records the space rejects are skipped."""
    rows, keep = [], []
    recs: list[TrialRecord] = [r for r in records if not with_values or r.value is not None]
    for r in recs:
        try:
            rows.append(space.encode({k: v for k, v in r.params.items() if k in space}))
            keep.append(r)
        except (TypeError, ValueError, KeyError, OverflowError):
            continue
    X = np.array(rows, dtype=float).reshape(len(rows), len(space))
    y = history.losses(keep) if with_values else np.empty(0)
    return np.clip(X, 0.0, 1.0), y
