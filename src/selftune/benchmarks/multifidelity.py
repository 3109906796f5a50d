"""Early stopping compared at equal compute: a run spends a budget of training steps (epochs), not trials.

A method is a sampler plus an early-stopping rule. :func:`run_mf` runs one on a
:class:`~selftune.benchmarks.curves.CurveProblem` until the steps it trained reach the budget, and records
after every finished trial the steps spent and the value of the configuration it would recommend then (the
best COMPLETE trial, scored by :meth:`CurveProblem.score`: the noiseless final error on the synthetic
problem, the validation error it reported on the PyTorch ones). On problems with a held-out test split (the
PyTorch ones) it also records the test error of each recommended network (the trial's own training run,
repeated: runs are deterministic), which no method saw: the validation error of the best of many trials is
biased low (the more trials compete, the more), the test error is not. Methods are named in
:data:`MF_METHODS`:

``selftune-full-tpe``, ``selftune-full-auto``  no early stopping (every trial trains ``max_steps``)
``selftune-asha-random``, ``selftune-asha-tpe`` ASHA (eta 3); with TPE the sampler sees the highest rung with
                                               enough data (BOHB-style)
``selftune-asha-promotion-random``, ``selftune-asha-promotion-tpe``  ASHA's promotion variant (the paper's:
                                               trials pause at a rung until they rank in its best third; paused
                                               trials resume replaying their curve, as from a checkpoint)
``selftune-asha-auto``, ``selftune-asha-promotion-auto``  the same with the default sampler (the GP, with its
                                               Sobol start) fit at the highest rung with enough data
``selftune-hyperband-random``, ``selftune-hyperband-tpe``  asynchronous Hyperband (eta 3); with TPE: BOHB-style
``selftune-median-tpe``                        median stopping
``optuna-tpe-hyperband``, ``optuna-tpe-sha``, ``optuna-tpe-median``, ``optuna-tpe-full``  Optuna's TPESampler with
                                               its HyperbandPruner / SuccessiveHalvingPruner / MedianPruner / none
``raytune-asha``                               Ray Tune's ASHAScheduler (eta 3, one bracket) with its default random
                                               search (seeded), one trial at a time
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from selftune.benchmarks.curves import CurveProblem, StepCounter, _trial_seed
from selftune.space import Choice, Float, Int, Param

if TYPE_CHECKING:
    from selftune.samplers import Sampler
    from selftune.schedulers import Scheduler
    from selftune.trial import TrialRecord

__all__ = ["MF_METHODS", "MFRun", "run_mf", "run_study", "incumbent_test_errors"]


@dataclass
class MFRun:
    """One method on one problem with one seed: the trace of (steps spent, recommended value).

    ``incumbents``: each change of the recommendation, as ``(steps spent, params, training seed)``;
    ``test_trace``: the test error of each (``(steps spent, test error)``; empty without a test split).
    """

    method: str
    problem: str
    seed: int
    budget: int
    trace: list[tuple[int, float]] = field(default_factory=list)
    trials: int = 0
    stopped: int = 0
    seconds: float = 0.0
    incumbents: list[tuple[int, dict[str, Any], int | None]] = field(default_factory=list)
    test_trace: list[tuple[int, float]] = field(default_factory=list)

    def value_at(self, steps: float, *, test: bool = False) -> float:
        """The recommended configuration's value (``test``: its test error) once ``steps`` were spent (inf
        before any trial completed)."""
        out = math.inf
        for spent, value in self.test_trace if test else self.trace:
            if spent > steps:
                break
            out = value
        return out

    def steps_to_reach(self, target: float, *, test: bool = False) -> float:
        """The steps spent when the recommendation first scored ``<= target`` (inf if never)."""
        for spent, value in self.test_trace if test else self.trace:
            if value <= target:
                return float(spent)
        return math.inf

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Tracker:
    """Adds each finished trial to a run's trace: the steps spent, and the score of the recommendation (the
    trial with the lowest final value among those that ran every step)."""

    def __init__(self, result: MFRun, problem: CurveProblem) -> None:
        self.result = result
        self.problem = problem
        self.best: tuple[float, float] | None = None  # (observed final value, score)

    def add(
        self,
        spent: int,
        *,
        stopped: bool,
        final: float | None = None,
        params: Mapping[str, Any] | None = None,
        train_seed: int | None = None,
    ) -> None:
        """One finished trial; ``final`` (with its ``params`` and ``train_seed``) when it ran every step."""
        self.result.trials += 1
        self.result.stopped += stopped
        if final is not None and params is not None and (self.best is None or final < self.best[0]):
            self.best = (final, self.problem.score(params, float(final)))
            self.result.incumbents.append((spent, dict(params), train_seed))
        self.result.trace.append((spent, math.inf if self.best is None else self.best[1]))


def _selftune(
    sampler: str, scheduler: str | None, variant: str = "stopping"
) -> Callable[[CurveProblem, int, int], MFRun]:
    def run(problem: CurveProblem, seed: int, budget: int) -> MFRun:
        import selftune
        from selftune.schedulers import (
            ASHAScheduler,
            HyperbandScheduler,
            MedianStopping,
            SuccessiveHalvingScheduler,
        )

        samplers: dict[str, Callable[[], selftune.Sampler]] = {
            "random": lambda: selftune.RandomSampler(seed=seed),
            "tpe": lambda: selftune.TPESampler(seed=seed),
            "auto": lambda: selftune.AutoSampler(seed=seed),
        }
        steps = problem.max_steps
        schedulers: dict[str | None, Callable[[], selftune.Scheduler | None]] = {
            None: lambda: None,
            "asha": lambda: ASHAScheduler(
                min_resource=1, max_resource=steps, reduction_factor=3, variant=variant  # type: ignore[arg-type]
            ),
            "hyperband": lambda: HyperbandScheduler(min_resource=1, max_resource=steps, reduction_factor=3),
            "hyperband-sync": lambda: HyperbandScheduler(
                min_resource=1, max_resource=steps, reduction_factor=3, synchronous=True
            ),
            "sha": lambda: SuccessiveHalvingScheduler(min_resource=1, max_resource=steps, reduction_factor=3),
            "median": lambda: MedianStopping(),
        }
        result = MFRun("", problem.name, seed, budget)
        tracker = _Tracker(result, problem)

        def ended(record: selftune.TrialRecord, spent: int) -> None:
            complete = record.state is selftune.TrialState.COMPLETE
            tracker.add(
                spent,
                stopped=record.state is selftune.TrialState.STOPPED,
                final=record.value if complete else None,
                params=record.params,
                train_seed=_trial_seed(seed, record.number),
            )

        trials = run_study(problem, seed, budget, samplers[sampler](), schedulers[scheduler](), ended)
        # trials started, and those that ended (or were left paused) before the last step
        started = [t for t in trials if t.state is not selftune.TrialState.WAITING]
        result.trials = len(started)
        result.stopped = sum(1 for t in started if (t.last_step or 0) < steps)
        return result

    return run


def run_study(
    problem: CurveProblem,
    seed: int,
    budget: int,
    sampler: Sampler,
    scheduler: Scheduler | None,
    ended: Callable[[TrialRecord, int], None],
) -> list[TrialRecord]:
    """Run a selftune study (in memory, one worker) on ``problem`` until ``budget`` training steps are spent.

    ``ended(record, steps spent so far)`` is called for each trial as it ends, not when it pauses, except for
    the trial whose steps exhaust the budget, which ends the run even if paused; the study's trials are
    returned.
    """
    import selftune

    study = selftune.create_study(storage="memory", space=problem.space, sampler=sampler, scheduler=scheduler)
    counter = StepCounter()

    def after(study: selftune.Study, record: selftune.TrialRecord) -> None:
        # a paused trial has not finished, except the one whose steps exhaust the budget: the run ends with it
        if record.state is not selftune.TrialState.PAUSED or counter.steps >= budget:
            ended(record, counter.steps)
        if counter.steps >= budget:
            study.stop()

    try:
        study.optimize(problem.objective(seed, counter), trials=10**9, callbacks=[after], progress=False)
        return list(study.trials)
    finally:
        study.close()


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
        # a fixed name: Optuna's HyperbandPruner assigns brackets by a hash of the study name, so the default
        # (random) name made its runs differ under the same seed
        study = optuna.create_study(
            study_name=f"{problem.name}-{pruner}-{seed}",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=pruners[pruner](),
        )
        result = MFRun("", problem.name, seed, budget)
        tracker = _Tracker(result, problem)
        counter = StepCounter()
        space = problem.space

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
            complete = frozen.state == optuna.trial.TrialState.COMPLETE
            tracker.add(
                counter.steps,
                stopped=frozen.state == optuna.trial.TrialState.PRUNED,
                final=frozen.value if complete else None,
                params={name: frozen.params[name] for name in space} if complete else None,
                train_seed=_trial_seed(seed, frozen.number),
            )
            if counter.steps >= budget:
                study.stop()

        study.optimize(objective, n_trials=10**9, callbacks=[after])
        return result

    return run


def _ray_domain(tune: Any, p: Param) -> Any:
    """The Ray Tune sampling domain equivalent to ``p`` (selftune's Int ``high`` is inclusive, Ray's
    ``randint`` / ``lograndint`` upper bound exclusive; the ``q`` variants' upper bound is inclusive)."""
    if isinstance(p, Float):
        if p.step is not None:
            return (tune.qloguniform if p.log else tune.quniform)(p.low, p.high, p.step)
        return (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
    if isinstance(p, Int):
        if p.step is not None and p.step != 1:
            return (tune.qlograndint if p.log else tune.qrandint)(p.low, p.high, p.step)
        return (tune.lograndint if p.log else tune.randint)(p.low, p.high + 1)
    assert isinstance(p, Choice)
    return tune.choice(list(p.choices))


def _from_ray(p: Param, value: Any) -> Any:
    """A value Ray sampled for ``p`` as the plain Python value selftune's space expects (not numpy's)."""
    if isinstance(p, Float):
        return float(value)
    if isinstance(p, Int):
        return int(value)
    assert isinstance(p, Choice)
    return next((c for c in p.choices if c == value), value)


#: Ray's environment for a run: no per-result CSV/JSON/TensorBoard files, no usage reporting, the quiet
#: (pre-2.5) console output, which ``verbose=0`` silences
_RAY_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0"}
#: the logger that warns, once a run ends, that the per-trial result files (disabled above) are missing
_RAY_QUIET_LOGGER = "ray.tune.analysis.experiment_analysis"


def _ray_number(trial_id: object) -> int:
    """A Ray trial's index in creation order: the counter ending its id."""
    return int(str(trial_id).rsplit("_", 1)[-1])


def _raytune_asha(problem: CurveProblem, seed: int, budget: int) -> MFRun:
    """Ray Tune's ASHA with its default (random) search, trials run one at a time until ``budget`` steps.

    The trainable calls :meth:`CurveProblem.run` and ``ray.tune.report`` after every step; Tune's function
    API blocks each report until the driver asks for the next step, so ASHA stopping a trial (the trainable
    is terminated) cuts it exactly after the step it judged, and the steps a trial trained are the results
    the driver received from it. A :class:`ray.tune.Stopper` counts them (per trial, the highest step seen,
    so the duplicate result Tune sends when a function returns is not counted twice); once the steps spent
    reach ``budget`` it stops the trial that reported and the experiment (a trial cut there is counted as
    stopped). A :class:`ray.tune.Callback` records each trial as it ends (in completion order): the trace
    point, and the best trial that ran all ``max_steps``. Each trial is seeded ``_trial_seed(seed, n)`` with
    ``n`` its index in creation order (the counter ending Ray's trial id).
    """
    from selftune._imports import require

    ray = require("ray", "ray")
    tune = require("ray.tune", "ray")
    from ray.tune import Callback, Stopper
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    steps = problem.max_steps
    space = problem.space
    result = MFRun("", problem.name, seed, budget)
    ran: dict[str, int] = {}  # trial id -> steps it trained (results received)
    last: dict[str, float] = {}  # trial id -> value at its last step
    tracker = _Tracker(result, problem)

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune as rtune

        number = _ray_number(rtune.get_context().get_trial_id())
        params = {name: _from_ray(p, config[name]) for name, p in space.items()}

        def report(step: int, value: float) -> bool:
            rtune.report({"value": float(value), "step": int(step)})
            return False  # ASHA stops a trial by terminating it, never through the trainable

        problem.run(params, report, _trial_seed(seed, number))

    class BudgetStopper(Stopper):
        def __call__(self, trial_id: str, res: dict[str, Any]) -> bool:
            if "step" in res:
                if int(res["step"]) > ran.get(trial_id, 0):
                    ran[trial_id] = int(res["step"])
                    last[trial_id] = float(res["value"])
            return self.stop_all()

        def stop_all(self) -> bool:
            return sum(ran.values()) >= budget

    class Recorder(Callback):
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._ended(trial)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._ended(trial)

        def _ended(self, trial: Any) -> None:
            done = ran.get(trial.trial_id, 0)
            if done == 0:  # never trained (a pending trial dropped when the budget ran out)
                return
            full = done >= steps
            tracker.add(
                sum(ran.values()),
                stopped=not full,
                final=last[trial.trial_id] if full else None,
                params={name: _from_ray(p, trial.config[name]) for name, p in space.items()} if full else None,
                train_seed=_trial_seed(seed, _ray_number(trial.trial_id)),
            )

    saved = {k: os.environ.get(k) for k in _RAY_ENV}  # read when Ray starts / Tune runs, not on import
    os.environ.update(_RAY_ENV)
    quiet = logging.getLogger(_RAY_QUIET_LOGGER)
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    started = not ray.is_initialized()
    storage = tempfile.mkdtemp(prefix="selftune-ray-")  # Tune's results, and the session's logs (~10 MB)
    try:
        if started:
            ray.init(
                num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False,
                ignore_reinit_error=True, configure_logging=False, _temp_dir=os.path.join(storage, "ray"),
            )
        tuner = tune.Tuner(
            trainable,
            param_space={name: _ray_domain(tune, p) for name, p in space.items()},
            tune_config=tune.TuneConfig(
                num_samples=budget,  # an upper bound: every trial trains at least one step
                reuse_actors=True,
                # one trial at a time (set here: TuneConfig's max_concurrent_trials ignores a generator)
                search_alg=BasicVariantGenerator(max_concurrent=1, random_state=seed),
                scheduler=ASHAScheduler(
                    time_attr="training_iteration", metric="value", mode="min", max_t=steps, grace_period=1,
                    reduction_factor=3, brackets=1,
                ),
            ),
            run_config=tune.RunConfig(
                name="raytune-asha", storage_path=storage, stop=BudgetStopper(), callbacks=[Recorder()],
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
        quiet.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return result


#: method name → ``run(problem, seed, budget) -> MFRun``
MF_METHODS: dict[str, Callable[[CurveProblem, int, int], MFRun]] = {
    "selftune-full-tpe": _selftune("tpe", None),
    "selftune-full-auto": _selftune("auto", None),
    "selftune-asha-random": _selftune("random", "asha"),
    "selftune-asha-tpe": _selftune("tpe", "asha"),
    "selftune-asha-promotion-random": _selftune("random", "asha", "promotion"),
    "selftune-asha-promotion-tpe": _selftune("tpe", "asha", "promotion"),
    "selftune-asha-auto": _selftune("auto", "asha"),
    "selftune-asha-promotion-auto": _selftune("auto", "asha", "promotion"),
    "selftune-hyperband-random": _selftune("random", "hyperband"),
    "selftune-hyperband-tpe": _selftune("tpe", "hyperband"),
    "selftune-hyperband-sync-tpe": _selftune("tpe", "hyperband-sync"),
    "selftune-sha-tpe": _selftune("tpe", "sha"),
    "selftune-median-tpe": _selftune("tpe", "median"),
    "optuna-tpe-full": _optuna(None),
    "optuna-tpe-hyperband": _optuna("hyperband"),
    "optuna-tpe-sha": _optuna("sha"),
    "optuna-tpe-median": _optuna("median"),
    "raytune-asha": _raytune_asha,
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
    result.test_trace = incumbent_test_errors(problem, result.incumbents)
    return result


def incumbent_test_errors(
    problem: CurveProblem, incumbents: list[tuple[int, dict[str, Any], int | None]]
) -> list[tuple[int, float]]:
    """The test error of each recommended configuration, trained again on its trial's seed (the network the
    trial trained: runs are deterministic); empty when ``problem`` has no test split or a seed is unknown."""
    out: list[tuple[int, float]] = []
    for spent, params, train_seed in incumbents:
        if train_seed is None:
            return []
        error = problem.test_error(params, train_seed)
        if error is None:
            return []
        out.append((spent, error))
    return out

