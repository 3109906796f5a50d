"""Population based training at equal compute on the digits CNN, every recommendation scored on test seeds.

Every method spends (at most) the same number of training epochs, ``population × max_steps`` (216 for the
default 8 × 27): what training ``population`` fixed configurations to the end costs. Methods
(:data:`PBT_METHODS`):

``selftune-pbt``            :class:`~selftune.PopulationBasedTraining`, asynchronous, ``interval`` epochs between
                            ready points, quantile 0.25, resample probability 0.25, factors 0.8 / 1.2; it may
                            change ``lr``, ``weight_decay``, ``dropout``, ``batch_size``
                            (:data:`~selftune.benchmarks.curves_torch.PBT_HYPERPARAMS`); the network's shape and
                            optimizer stay as the random initial draw. One worker time-shares the population.
``selftune-pbt-window``     the same, members ranked on the mean of their last ``interval`` validation errors
                            (``window=interval``) instead of the one at the ready step
``selftune-pbt-sync``       the same as ``selftune-pbt``, synchronous (generations)
``selftune-asha-random``    :class:`~selftune.schedulers.ASHAScheduler` (``max_resource = max_steps``, eta 3) with
``selftune-asha-tpe``       random search / TPE (BOHB-style view), new trials until the epochs are spent (the trial
                            running when they run out is cut there)
``selftune-random-full``    ``population`` random configurations trained ``max_steps`` epochs each: the best fixed
                            configuration found with the same compute. With the same seed it draws exactly the
                            initial population of ``selftune-pbt``, so the two differ only by exploit/explore.
``raytune-pbt``             Ray Tune's ``PopulationBasedTraining`` with the same population, interval, quantile,
                            mutations and CNN training code (:func:`run_raytune_pbt`; needs ``ray[tune]``)

All methods train with :meth:`~selftune.benchmarks.curves_torch.TorchCurveProblem.pbt_objective` (or, for Ray,
the same epoch function), which seeds the network from the trial's seed and each epoch from (seed, epoch).
Trial seeds vary with the tuning seed: ``trial_seed(seed, k) = seed * 1000 + k`` for the ``k``-th trial of a
run, all far below the test seeds (:data:`selftune.protocol.TEST_SEED_BASE` onwards), and
:func:`selftune.protocol.evaluate` is given every trial seed of the run so it refuses any overlap. The sampler
seed and the PBT seed are the tuning seed.

Recommendation: PBT's best member at the end (by its final validation error), whose *schedule* is replayed;
for the others the COMPLETE trial with the lowest validation error. Its score: the mean test error over
``test_seeds`` fresh runs (the same test seeds for every method and tuning seed, so methods are compared on
common random numbers).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from selftune.benchmarks.curves_torch import PBT_HYPERPARAMS, DigitsCNN
from selftune.exceptions import InvalidParameterError
from selftune.schedule import Schedule

__all__ = [
    "PBT_METHODS",
    "PBTSettings",
    "PBTResult",
    "run_method",
    "tune",
    "score",
    "trial_seed",
    "run_raytune_pbt",
    "schedule_of",
]

#: trial seeds of a run are ``seed * SEED_STRIDE + k``
SEED_STRIDE = 1000

PBT_METHODS = (
    "selftune-pbt",
    "selftune-pbt-window",
    "selftune-pbt-sync",
    "selftune-asha-random",
    "selftune-asha-tpe",
    "selftune-random-full",
    "raytune-pbt",
)


@dataclass(frozen=True)
class PBTSettings:
    """The benchmark's knobs (the budget is ``population * max_steps`` epochs)."""

    max_steps: int = 27
    population: int = 8
    interval: int = 3
    quantile: float = 0.25
    test_seeds: int = 5

    @property
    def budget(self) -> int:
        return self.population * self.max_steps


@dataclass
class PBTResult:
    """One method with one tuning seed: what it spent, what it recommends, and the recommendation's test error."""

    method: str
    seed: int
    settings: dict[str, Any]
    epochs: int = 0
    trials: int = 0
    seconds: float = 0.0
    valid: float = math.nan
    schedule: list[Any] = field(default_factory=list)  # Schedule.to_json() of the recommendation
    exploits: int = 0  # exploits in the recommended member's lineage (PBT)
    trial_seeds: list[int] = field(default_factory=list)
    test_seeds: list[int] = field(default_factory=list)
    test_values: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    note: str = ""

    @property
    def test(self) -> float:
        """The recommendation's mean test error over the test seeds."""
        return sum(self.test_values) / len(self.test_values) if self.test_values else math.nan

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PBTResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def trial_seed(seed: int, k: int) -> int:
    """The seed of the ``k``-th trial of a run with tuning seed ``seed`` (below the test seeds)."""
    from selftune.protocol import TEST_SEED_BASE

    if not (0 <= seed and 0 <= k < SEED_STRIDE):
        raise InvalidParameterError(f"tuning seed {seed} / trial {k}: need seed >= 0 and k < {SEED_STRIDE}")
    out = seed * SEED_STRIDE + k
    if out >= TEST_SEED_BASE:
        raise InvalidParameterError(f"tuning seed {seed} is too large: trial seeds would reach the test seeds")
    return out


class _Counter:
    def __init__(self) -> None:
        self.epochs = 0


class _CountingTrial:
    """A trial seen through a proxy that counts the epochs reported, and stops the trial when the budget is
    spent (except after its last epoch: a trial that trained every epoch completes)."""

    def __init__(self, trial: Any, counter: _Counter, budget: int | None, max_steps: int) -> None:
        self._trial = trial
        self._counter = counter
        self._budget = budget
        self._max_steps = max_steps
        self._step = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def report(self, value: float, step: int) -> None:
        self._counter.epochs += 1
        self._step = int(step)
        self._trial.report(value, step)

    def should_stop(self) -> bool:
        if self._budget is not None and self._counter.epochs >= self._budget and self._step < self._max_steps:
            return True
        return bool(self._trial.should_stop())


def tune(method: str, seed: int, settings: PBTSettings) -> tuple[PBTResult, Any]:
    """Run a selftune ``method`` with tuning seed ``seed``; return its result (without test scores) and the
    recommended :class:`~selftune.TrialRecord`."""
    import selftune
    from selftune.schedulers import ASHAScheduler

    problem = DigitsCNN(max_steps=settings.max_steps)
    steps, pop = settings.max_steps, settings.population
    scheduler: Any = None
    sampler: Any = selftune.RandomSampler(seed=seed)
    limit: int | None = pop  # trials to start
    budget: int | None = None  # epochs after which a trial is cut
    if method in ("selftune-pbt", "selftune-pbt-sync", "selftune-pbt-window"):
        scheduler = selftune.PopulationBasedTraining(
            pop, settings.interval, list(PBT_HYPERPARAMS), quantile=settings.quantile,
            synchronous=method.endswith("sync"), max_step=steps, seed=seed,
            window=settings.interval if method.endswith("window") else 1,
        )
    elif method in ("selftune-asha-random", "selftune-asha-tpe"):
        scheduler = ASHAScheduler(min_resource=1, max_resource=steps, reduction_factor=3)
        if method.endswith("tpe"):
            sampler = selftune.TPESampler(seed=seed)
        limit, budget = None, settings.budget
    elif method != "selftune-random-full":
        raise InvalidParameterError(f"unknown selftune method {method!r}; expected one of {PBT_METHODS[:-1]}")

    study = selftune.create_study(storage="memory", space=problem.space, sampler=sampler, scheduler=scheduler)
    counter = _Counter()
    inner = problem.pbt_objective("valid")
    seeds: list[int] = []

    def objective(trial: selftune.Trial) -> float:
        return inner(_CountingTrial(trial, counter, budget, steps))  # type: ignore[arg-type]

    def feed() -> None:
        """Enqueue the next trial with its seed (one at a time: the sampler sees every finished trial)."""
        if limit is not None and len(seeds) >= limit:
            return
        if any(r.state is selftune.TrialState.WAITING for r in study.trials):
            return
        seeds.append(trial_seed(seed, len(seeds)))
        study.enqueue({}, seed=seeds[-1])

    def after(study_: selftune.Study, record: selftune.TrialRecord) -> None:
        if budget is not None and counter.epochs >= budget:
            study_.stop()
            return
        feed()

    start = time.perf_counter()
    feed()
    try:
        study.optimize(objective, trials=limit if limit is not None else 10**6, callbacks=[after], progress=False)
        seconds = time.perf_counter() - start
        started = [r for r in study.trials if r.state is not selftune.TrialState.WAITING]
        best = study.best
        result = PBTResult(
            method, seed, asdict(settings), epochs=counter.epochs, trials=len(started), seconds=seconds,
            valid=math.nan if best.value is None else float(best.value), schedule=best.schedule.to_json(),
            exploits=sum(1 for e in best.lineage if e.source != best.number),
            trial_seeds=sorted({r.seed for r in started}),
        )
    finally:
        study.close()
    return result, best


def score(result: PBTResult, candidate: Any, settings: PBTSettings) -> PBTResult:
    """Score ``candidate`` (a TrialRecord or a Schedule) on the test seeds and fill in ``result``."""
    from selftune.protocol import evaluate, test_seeds

    problem = DigitsCNN(max_steps=settings.max_steps)
    seeds = test_seeds(settings.test_seeds)
    overlap = set(seeds) & set(result.trial_seeds)
    if overlap:  # evaluate() refuses it too; checked here so a Schedule candidate is covered as well
        raise InvalidParameterError(f"test seeds {sorted(overlap)} were tuning seeds")
    start = time.perf_counter()
    (ev,) = evaluate(problem.pbt_objective("test"), [candidate], seeds, tuning_seeds=result.trial_seeds)
    result.eval_seconds = time.perf_counter() - start
    result.test_seeds = list(ev.seeds)
    result.test_values = list(ev.values)
    return result


def run_method(method: str, seed: int, settings: PBTSettings | None = None) -> PBTResult:
    """Tune with ``method`` (a selftune method of :data:`PBT_METHODS`) and score its recommendation."""
    settings = settings or PBTSettings()
    result, best = tune(method, seed, settings)
    return score(result, best, settings)


# -- Ray Tune --------------------------------------------------------------------------------------------------
def run_raytune_pbt(seed: int, settings: PBTSettings) -> PBTResult:
    """Ray Tune's PopulationBasedTraining on the digits CNN (tuning only: score the schedule with :func:`score`).

    One trial runs at a time (each asks for the 2 CPUs Ray is given; actors reused; Ray's PBT pauses a ready member while others wait,
    so the population time-shares one slot as selftune's single worker does). The function trainable runs
    the same code as :meth:`pbt_objective`: network seeded from the trial's seed, each epoch from
    (seed, epoch), Ray checkpoints holding the weights, the optimizer state and the schedule trained so far
    (so a clone inherits its source's schedule, which is what gets replayed). Ray perturbs without clipping
    to the bounds; the trainable clips what it trains with to the space (counted in ``note``), since e.g. a
    dropout above 1 is an error. Epochs are counted on the driver (one result = one epoch trained).
    """
    import os
    import random
    import shutil
    import tempfile
    import uuid

    import numpy as np
    import ray
    from ray import tune as rtune
    from ray.tune import Callback
    from ray.tune.schedulers import PopulationBasedTraining as RayPBT
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from selftune.benchmarks.curves_torch import DIVERGED_ERROR, _digits, _epoch, _error, _optimizer, _torch
    from selftune.benchmarks.multifidelity import _from_ray, _ray_domain

    problem = DigitsCNN(max_steps=settings.max_steps)
    space = problem.space
    steps = settings.max_steps
    names = list(space)

    def clip(name: str, value: Any) -> Any:
        p = space[name]
        v = _from_ray(p, value)
        if name == "batch_size":
            return v
        lo, hi = float(p.low), float(p.high)  # type: ignore[attr-defined]
        return min(max(v, lo), hi)

    def trainable(config: dict[str, Any]) -> None:
        import torch as _t  # noqa: F401  (fail early in the worker if torch is missing)

        torch = _torch()
        ctx = rtune.get_context()
        number = int(str(ctx.get_trial_id()).rsplit("_", 1)[-1])
        tseed = trial_seed(seed, number)
        p = {n: _from_ray(space[n], config[n]) for n in names}
        n_clipped = sum(1 for n in PBT_HYPERPARAMS if clip(n, config[n]) != p[n])
        p.update({n: clip(n, config[n]) for n in PBT_HYPERPARAMS})
        data = _digits()
        torch.set_num_threads(1)
        torch.manual_seed(tseed)
        model = problem.build(p)
        optimizer = _optimizer(torch, model, p)
        start, value, diverged, schedule = 1, DIVERGED_ERROR, False, []
        ck = rtune.get_checkpoint()
        if ck is not None:
            with ck.as_directory() as d:
                state = torch.load(os.path.join(d, "state.pt"), weights_only=True)
                meta = json.loads(open(os.path.join(d, "meta.json")).read())
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, value, diverged, schedule = meta["step"] + 1, meta["value"], meta["diverged"], meta["schedule"]
        for group in optimizer.param_groups:
            group["lr"], group["weight_decay"] = float(p["lr"]), float(p["weight_decay"])
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = float(p["dropout"])
        if not schedule or schedule[-1][1] != p:  # segments as selftune's: params from the first epoch they train
            first = 0 if start == 1 else start
            schedule = [s for s in schedule if s[0] < first] + [[first, p]]
        for step in range(start, steps + 1):
            if not diverged:
                torch.manual_seed(tseed * 100_003 + step)
                diverged = _epoch(torch, model, optimizer, data, int(p["batch_size"]))
                if not diverged:
                    value, finite = _error(model, data.x_valid, data.y_valid)
                    diverged = not finite
                if diverged:
                    value = DIVERGED_ERROR
            metrics = {"valid": float(value), "step": step, "epoch_id": uuid.uuid4().hex, "clipped": n_clipped,
                       "run_start": start, "schedule": json.dumps(schedule)}
            with tempfile.TemporaryDirectory() as d:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                           os.path.join(d, "state.pt"))
                with open(os.path.join(d, "meta.json"), "w") as f:
                    json.dump({"step": step, "value": value, "diverged": diverged, "schedule": schedule}, f)
                rtune.report(metrics, checkpoint=rtune.Checkpoint.from_directory(d))

    epochs: set[str] = set()  # one id per epoch trained (a result Tune repeats is counted once)
    clipped: set[tuple[str, int]] = set()  # (trial, first epoch of a run) that trained with clipped values

    class Counter(Callback):
        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            if "epoch_id" in result:
                epochs.add(str(result["epoch_id"]))
                if result.get("clipped"):
                    clipped.add((str(trial.trial_id), int(result["run_start"])))

    random.seed(seed)
    np.random.seed(seed)
    mutations = {n: _ray_domain(rtune, space[n]) for n in PBT_HYPERPARAMS if n != "batch_size"}
    mutations["batch_size"] = list(space["batch_size"].choices)  # type: ignore[attr-defined]
    env = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0"}
    os.environ.update(env)
    storage = tempfile.mkdtemp(prefix="selftune-raypbt-")
    start_time = time.perf_counter()
    try:
        ray.init(num_cpus=2, object_store_memory=200_000_000, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _temp_dir=os.path.join(storage, "ray"))
        scheduler = RayPBT(
            time_attr="step", perturbation_interval=settings.interval, hyperparam_mutations=mutations,
            quantile_fraction=settings.quantile, resample_probability=0.25, perturbation_factors=(1.2, 0.8),
            synch=False,
        )
        tuner = rtune.Tuner(
            rtune.with_resources(trainable, {"cpu": 2}),  # the 2 CPUs of ray.init: one member at a time
            param_space={n: _ray_domain(rtune, space[n]) for n in names},
            tune_config=rtune.TuneConfig(
                metric="valid", mode="min", num_samples=settings.population, scheduler=scheduler,
                # every member created at once (a generator limited to one live trial creates the next only
                # when one ends, so nothing is PENDING, PBT never pauses a member and they run one after
                # another); actors reused, or every pause / exploit starts a new worker process (seconds each)
                search_alg=BasicVariantGenerator(random_state=seed), reuse_actors=True,
            ),
            run_config=rtune.RunConfig(
                name="raytune-pbt", storage_path=storage, callbacks=[Counter()],
                verbose=int(os.environ.get("SELFTUNE_RAY_VERBOSE", "0")),
                checkpoint_config=rtune.CheckpointConfig(num_to_keep=8),
            ),
        )
        grid = tuner.fit()
        seconds = time.perf_counter() - start_time
        finals = []
        for r in (grid[i] for i in range(len(grid))):
            m = r.metrics or {}
            if r.error is None and int(m.get("step", 0)) >= steps:
                finals.append((float(m["valid"]), m))
        if not finals:
            raise RuntimeError("Ray Tune's PBT: no member trained every epoch")
        valid, best = min(finals, key=lambda x: x[0])
        segments = [(int(s), dict(p)) for s, p in json.loads(best["schedule"])]
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    schedule = Schedule(tuple(segments))
    return PBTResult(
        "raytune-pbt", seed, asdict(settings), epochs=len(epochs), trials=settings.population, seconds=seconds,
        valid=valid, schedule=schedule.to_json(), exploits=len(segments) - 1,
        trial_seeds=[trial_seed(seed, k) for k in range(settings.population)],
        note=f"ray {ray.__version__}; member runs started with out-of-bounds values (clipped): {len(clipped)}",
    )


def schedule_of(result: PBTResult) -> Schedule:
    """The recommendation of ``result`` as a :class:`Schedule`."""
    return Schedule.from_json(result.schedule)

