"""Early stopping compared at equal compute: a run spends a budget of training steps (epochs), not trials.

A method is a sampler plus an early-stopping rule. :func:`run_mf` runs one on a
:class:`~selftune.benchmarks.curves.CurveProblem` until the steps it trained reach the budget, and records
after every finished trial the steps spent and the value of the configuration it would recommend then (the
best COMPLETE trial, scored by :meth:`CurveProblem.score`: the noiseless final error on the synthetic
problem, the validation error it reported on the PyTorch ones). Methods are named in :data:`MF_METHODS`:

``selftune-full-tpe``, ``selftune-full-auto``  no early stopping (every trial trains ``max_steps``)
``selftune-asha-random``, ``selftune-asha-tpe`` ASHA (eta 3); with TPE the sampler sees the highest rung with
                                               enough data (BOHB-style)
``selftune-hyperband-random``, ``selftune-hyperband-tpe``  asynchronous Hyperband (eta 3); with TPE: BOHB-style
``selftune-median-tpe``                        median stopping
``optuna-tpe-hyperband``, ``optuna-tpe-sha``, ``optuna-tpe-median``, ``optuna-tpe-full``  Optuna's TPESampler with
                                               its HyperbandPruner / SuccessiveHalvingPruner / MedianPruner / none
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from selftune.benchmarks.curves import CurveProblem, StepCounter, _trial_seed
from selftune.space import Choice, Float, Int, Param

__all__ = ["MF_METHODS", "MFRun", "run_mf"]


@dataclass
class MFRun:
    """One method on one problem with one seed: the trace of (steps spent, recommended value)."""

    method: str
    problem: str
    seed: int
    budget: int
    trace: list[tuple[int, float]] = field(default_factory=list)
    trials: int = 0
    stopped: int = 0
    seconds: float = 0.0

    def value_at(self, steps: float) -> float:
        """The recommended configuration's value once ``steps`` were spent (inf before any trial completed)."""
        out = math.inf
        for spent, value in self.trace:
            if spent > steps:
                break
            out = value
        return out

    def steps_to_reach(self, target: float) -> float:
        """The steps spent when the recommendation first scored ``<= target`` (inf if never)."""
        for spent, value in self.trace:
            if value <= target:
                return float(spent)
        return math.inf

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _selftune(sampler: str, scheduler: str | None) -> Callable[[CurveProblem, int, int], MFRun]:
    def run(problem: CurveProblem, seed: int, budget: int) -> MFRun:
        import selftune
        from selftune.schedulers import ASHAScheduler, HyperbandScheduler, MedianStopping

        samplers: dict[str, Callable[[], selftune.Sampler]] = {
            "random": lambda: selftune.RandomSampler(seed=seed),
            "tpe": lambda: selftune.TPESampler(seed=seed),
            "auto": lambda: selftune.AutoSampler(seed=seed),
        }
        steps = problem.max_steps
        schedulers: dict[str | None, Callable[[], selftune.Scheduler | None]] = {
            None: lambda: None,
            "asha": lambda: ASHAScheduler(min_resource=1, max_resource=steps, reduction_factor=3),
            "hyperband": lambda: HyperbandScheduler(min_resource=1, max_resource=steps, reduction_factor=3),
            "median": lambda: MedianStopping(),
        }
        study = selftune.create_study(
            storage="memory", space=problem.space, sampler=samplers[sampler](), scheduler=schedulers[scheduler]()
        )
        counter = StepCounter()
        result = MFRun("", problem.name, seed, budget)
        best: list[Any] = [None]

        def after(study: selftune.Study, record: selftune.TrialRecord) -> None:
            result.trials += 1
            result.stopped += record.state is selftune.TrialState.STOPPED
            value = record.value
            if record.state is selftune.TrialState.COMPLETE and value is not None and (
                best[0] is None or value < best[0][0]
            ):
                best[0] = (value, problem.score(record.params, float(value)))
            result.trace.append((counter.steps, math.inf if best[0] is None else best[0][1]))
            if counter.steps >= budget:
                study.stop()

        study.optimize(problem.objective(seed, counter), trials=10**9, callbacks=[after], progress=False)
        study.close()
        return result

    return run


def _optuna_suggest(trial: Any, name: str, p: Param) -> Any:
    if isinstance(p, Float):
        return trial.suggest_float(name, p.low, p.high, log=bool(p.log), step=p.step)
    if isinstance(p, Int):
        return trial.suggest_int(name, p.low, p.high, log=bool(p.log), step=p.step)
    assert isinstance(p, Choice)
    return trial.suggest_categorical(name, list(p.choices))


def _optuna(pruner: str | None) -> Callable[[CurveProblem, int, int], MFRun]:
    def run(problem: CurveProblem, seed: int, budget: int) -> MFRun:
        from selftune._imports import require

        optuna = require("optuna", "bench")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        steps = problem.max_steps
        pruners: dict[str | None, Callable[[], Any]] = {
            None: lambda: optuna.pruners.NopPruner(),
            # Optuna's defaults, with the resources this problem has (its "auto" guesses them from trial 0)
            "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps),
            "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1),
            "median": lambda: optuna.pruners.MedianPruner(),
        }
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruners[pruner]())
        result = MFRun("", problem.name, seed, budget)
        counter = StepCounter()
        space = problem.space
        best: list[Any] = [None]

        def objective(trial: Any) -> float:
            params = {name: _optuna_suggest(trial, name, p) for name, p in space.items()}

            def report(step: int, value: float) -> bool:
                counter.steps += 1
                trial.report(value, step)
                return bool(trial.should_prune()) and step < steps

            value = problem.run(params, report, _trial_seed(seed, trial.number))
            if max(trial.storage.get_trial(trial._trial_id).intermediate_values, default=0) < steps:
                raise optuna.TrialPruned()
            return value

        def after(study: Any, frozen: Any) -> None:
            result.trials += 1
            result.stopped += frozen.state == optuna.trial.TrialState.PRUNED
            if frozen.state == optuna.trial.TrialState.COMPLETE and (best[0] is None or frozen.value < best[0][0]):
                params = {name: frozen.params[name] for name in space}
                best[0] = (frozen.value, problem.score(params, float(frozen.value)))
            result.trace.append((counter.steps, math.inf if best[0] is None else best[0][1]))
            if counter.steps >= budget:
                study.stop()

        study.optimize(objective, n_trials=10**9, callbacks=[after])
        return result

    return run


#: method name → ``run(problem, seed, budget) -> MFRun``
MF_METHODS: dict[str, Callable[[CurveProblem, int, int], MFRun]] = {
    "selftune-full-tpe": _selftune("tpe", None),
    "selftune-full-auto": _selftune("auto", None),
    "selftune-asha-random": _selftune("random", "asha"),
    "selftune-asha-tpe": _selftune("tpe", "asha"),
    "selftune-hyperband-random": _selftune("random", "hyperband"),
    "selftune-hyperband-tpe": _selftune("tpe", "hyperband"),
    "selftune-median-tpe": _selftune("tpe", "median"),
    "optuna-tpe-full": _optuna(None),
    "optuna-tpe-hyperband": _optuna("hyperband"),
    "optuna-tpe-sha": _optuna("sha"),
    "optuna-tpe-median": _optuna("median"),
}


def run_mf(method: str, problem: CurveProblem, seed: int, budget: int) -> MFRun:
    """Run ``method`` (a key of :data:`MF_METHODS`) on ``problem`` until ``budget`` training steps are spent."""
    if method not in MF_METHODS:
        from selftune.exceptions import InvalidParameterError

        raise InvalidParameterError(f"unknown method {method!r}; expected one of {sorted(MF_METHODS)}")
    start = time.perf_counter()
    result = MF_METHODS[method](problem, seed, budget)
    result.method = method
    result.seconds = time.perf_counter() - start
    return result

