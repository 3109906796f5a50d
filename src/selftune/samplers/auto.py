"""The default sampler: picks the algorithm by budget, dimension, parameter types and parallelism.

Rules (each a deterministic function of the history and the space, so a resumed or parallel study makes the
same choice; the benchmark numbers behind them are in ``docs/benchmarks.md``):

1. Up to ``gp_max_trials`` complete trials and at most ``gp_max_dims`` parameters: Gaussian-process BO
   (log EI with a noisy incumbent; batches and pending trials handled by kriging believer), which starts
   with its own 10 scrambled Sobol points. This is where a model pays most: few,
   expensive trials. Except while the GP stagnates: when the last ``w = max(10, 2 d)`` complete trials did
   not improve on the best before them by 1% of the gap between the median and that best, the GP is
   polishing one basin (on multimodal functions it then did worse than random search), so TPE proposes,
   until a trial improves on the best again or for ``w`` trials; then the GP gets ``w`` trials before the
   check starts anew (on ill-conditioned functions a GP that looked stagnant resumed its slow progress,
   while TPE alone did not). ``stagnation=False`` turns this off.
2. More parameters than the GP takes, and fewer complete trials than ``n_startup``: Sobol points.
3. Beyond that, a space with conditional or categorical parameters (or parameters that appear in only some
   trials of a define-by-run study): TPE, whose cost grows linearly with the trials.
4. Otherwise (numeric parameters only, many trials): CMA-ES, warm-started by every trial so far.

Before all of these: once a trial was stopped early (a scheduler such as ASHA or Hyperband prunes, and the
sampler sees the highest rung with enough data), TPE with its own start-up (BOHB's combination). The GP fit
at the rungs did worse with ASHA on both learning-curve benchmarks (``docs/benchmarks.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selftune.history import History
from selftune.samplers._base import DEFAULT_STARTUP, Sampler
from selftune.samplers.cmaes import CMAESSampler
from selftune.samplers.qmc import SobolSampler
from selftune.samplers.random import RandomSampler
from selftune.samplers.tpe import TPESampler
from selftune.space import Choice, Param, Space
from selftune.trial import TrialState

__all__ = ["AutoSampler"]


class AutoSampler(Sampler):
    """GP (with its Sobol start; TPE while the GP stagnates) for small budgets → TPE (tree-shaped or
    categorical spaces) or CMA-ES; TPE once trials are stopped early. See the module's docstring for the rules.

    Args:
        seed: seed of every sampler it delegates to.
        n_startup: the GP's start-up trials (default 10).
        gp_max_trials, gp_max_dims: the GP's range (complete trials, parameters).
        stagnation: hand over to TPE while the GP stagnates.
        multi_fidelity: use TPE (BOHB-style, on the scheduler's rung view) once a trial was stopped early.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup: int | None = None,
        gp_max_trials: int = 200,
        gp_max_dims: int = 30,
        stagnation: bool = True,
        multi_fidelity: bool = True,
    ) -> None:
        super().__init__(seed=seed)
        self.stagnation = stagnation
        self.multi_fidelity = multi_fidelity
        self.n_startup = n_startup
        self.gp_max_trials = gp_max_trials
        self.gp_max_dims = gp_max_dims
        self._samplers: dict[str, Sampler] = {}

    def __repr__(self) -> str:
        return f"AutoSampler(seed={self.seed!r})"

    def _get(self, name: str) -> Sampler:
        if name not in self._samplers:
            if name == "sobol":
                self._samplers[name] = SobolSampler(seed=self.seed) if self.seed is not None else RandomSampler()
            elif name == "gp":
                from selftune.samplers.gp import GPSampler

                self._samplers[name] = GPSampler(seed=self.seed, n_startup=self.n_startup)
            elif name == "cmaes":
                self._samplers[name] = CMAESSampler(seed=self.seed, fallback=self._get("tpe"))
            elif name == "bohb":
                self._samplers[name] = TPESampler(seed=self.seed)
            else:
                self._samplers[name] = TPESampler(seed=self.seed, n_startup=0)
        return self._samplers[name]

    def choose(self, history: History, space: Space) -> str:
        """The name of the algorithm used for the next proposal: sobol, gp, tpe, cmaes, or bohb (TPE with
        its own start-up, once trials are stopped early)."""
        if self.multi_fidelity and any(r.state is TrialState.STOPPED for r in history.trials):
            return "bohb"
        complete = [r for r in history.complete if r.value is not None]
        d = len(space)
        if len(complete) < self.gp_max_trials and d <= self.gp_max_dims:
            if self.stagnation and _handover(history.losses(complete), max(10, 2 * d)):
                return "tpe"
            return "gp"
        startup = self.n_startup if self.n_startup is not None else DEFAULT_STARTUP
        if len(complete) < startup:
            return "sobol"
        if _tree_or_categorical(space, complete):
            return "tpe"
        return "cmaes"

    def propose(self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        if len(space) == 0:
            return [{} for _ in range(n)]
        return self._get(self.choose(history, space)).propose(history, space, n, rng=rng)

    def propose_param(self, history: History, name: str, param: Param, *, rng: np.random.Generator) -> Any:
        # a parameter seen for the first time: nothing to model yet beyond its own column
        return self._get("tpe").propose_param(history, name, param, rng=rng)


def _tree_or_categorical(space: Space, complete: list[Any]) -> bool:
    if any(isinstance(p, Choice) or p.when for p in space.values()):
        return True
    # define-by-run spaces carry no conditions: a parameter missing from some trials is conditional
    return any(any(k not in r.params for k in space) for r in complete[-50:])


def _handover(losses: np.ndarray, window: int) -> bool:
    """Whether TPE proposes the next trial, replayed from the losses of the complete trials (in trial order)
    so that a resumed study decides alike. While the GP stagnates (:func:`_stagnant`), TPE proposes, until a
    trial improves on the best again or for ``window`` trials at most; then the GP gets ``window`` trials
    before stagnation is checked anew."""
    n = len(losses)
    i = 2 * window
    while i <= n:
        if not _stagnant(losses[:i], window):
            i += 1
            continue
        j = i  # TPE proposes trials i, i + 1, ... while the window stays stagnant
        while j < min(i + window, n) and _stagnant(losses[: j + 1], window):
            j += 1
        if j == i + window:
            i += 2 * window  # a whole block without gain: the GP's turn
        elif j == n:
            return True  # the block goes on
        else:
            i = j + 1  # a TPE trial improved on the best: the GP resumes
    return False


def _stagnant(losses: np.ndarray, window: int) -> bool:
    """No improvement of at least 1% of the gap between the median and the best loss in the last ``window``
    losses (in trial order): the GP is polishing one basin."""
    if len(losses) < 2 * window:
        return False
    y = np.where(np.isfinite(losses), losses, np.nan)
    before, recent = y[:-window], y[-window:]
    if np.all(np.isnan(before)):
        return False
    best_before = float(np.nanmin(before))
    scale = float(np.nanmedian(y)) - best_before
    if not scale > 0:
        return False
    recent_best = float(np.nanmin(recent)) if not np.all(np.isnan(recent)) else np.inf
    return recent_best > best_before - 0.01 * scale
