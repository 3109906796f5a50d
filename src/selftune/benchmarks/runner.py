"""Run an optimiser on a problem: the ask/tell adapter contract, the selftune adapter and the registry.

An :class:`Optimizer` proposes points of a problem's :class:`~selftune.space.Space` through :meth:`~Optimizer.ask`
and learns their values through :meth:`~Optimizer.tell`; every ask is timed. Adapters for the peer
libraries live in :mod:`selftune.benchmarks.peers`. Optimisers are named in :data:`OPTIMIZERS`:

``random``                   uniform random search owned by the harness (the baseline of the normalised score)
``selftune-random``          :class:`selftune.RandomSampler`
``selftune-sobol``/``sobol`` :class:`selftune.SobolSampler`
``selftune-tpe``/``-gp``/``-cmaes``/``-auto``  ``selftune.samplers.TPESampler`` / ``GPSampler`` / ``CMAESSampler`` /
                             ``AutoSampler`` when they exist (looked up lazily; unavailable ones are skipped)
``optuna-*``, ``hebo``, ``smac``, ``nevergrad``  see :mod:`selftune.benchmarks.peers`
"""

from __future__ import annotations

import copy
import math
import time
import traceback as tb
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from selftune.benchmarks.problems import Problem
from selftune.history import History
from selftune.samplers._base import Sampler
from selftune.space import Float, Int, Space

__all__ = [
    "Optimizer",
    "OptimizerUnavailable",
    "RandomSearch",
    "SelftuneOptimizer",
    "RunResult",
    "OPTIMIZERS",
    "ALIASES",
    "available_optimizers",
    "optimizer_versions",
    "make_optimizer",
    "resolve_name",
    "clean_params",
    "run",
    "run_detailed",
    "measure_latency",
]


class OptimizerUnavailable(RuntimeError):
    """The optimiser cannot be built here (a library or a selftune sampler is missing)."""


def clean_params(space: Space, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce an adapter's proposal into valid values of ``space``: active parameters only, numbers clipped
    to their bounds and snapped to their grids, integers rounded, NumPy scalars made plain."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if not space.is_active(name, out):
            continue
        v = raw[name]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(p, Float):
            x = min(max(float(v), float(p.low)), float(p.high))
            if p.step is not None and p.high > p.low:
                k = math.floor((x - p.low) / p.step + 0.5)
                x = min(float(p.low + k * p.step), float(p.high))
            out[name] = x
        elif isinstance(p, Int):  # nearest grid point, halves rounded up
            x = min(max(float(v), float(p.low)), float(p.high))
            k = math.floor((x - int(p.low)) / int(p.step) + 0.5)
            out[name] = min(int(p.low) + k * int(p.step), int(p.high))
        else:
            out[name] = p.validate(v, name)
    return space.validate(out)


class Optimizer(ABC):
    """An ask/tell optimiser over a declared space. ``ask_seconds`` holds the wall time of every ask."""

    #: registry name, set by :func:`make_optimizer`
    name: str = ""

    def __init__(self, space: Space, seed: int, budget: int) -> None:
        self.space = space
        self.seed = int(seed)
        self.budget = int(budget)
        self.ask_seconds: list[float] = []
        #: counters an adapter wants in the results (e.g. HEBO's failed GP fits)
        self.stats: dict[str, Any] = {}

    def ask(self) -> dict[str, Any]:
        """The next point to evaluate (valid in the space); timed."""
        t0 = time.perf_counter()
        params = clean_params(self.space, self._ask())
        self.ask_seconds.append(time.perf_counter() - t0)
        return params

    @abstractmethod
    def _ask(self) -> Mapping[str, Any]:
        """The adapter's proposal (may hold inactive parameters or values needing clean-up)."""

    @abstractmethod
    def tell(self, params: Mapping[str, Any], value: float) -> None:
        """The value of the point returned by the last :meth:`ask`."""

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        """Learn a point the optimiser did not propose (warm start for the latency measurement)."""
        raise NotImplementedError(f"{type(self).__name__} cannot learn points it did not propose")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads, files or temporary directories."""


class RandomSearch(Optimizer):
    """Uniform random search in the unit-cube encoding (log-uniform for log parameters), owned by the harness
    so that the baseline of the normalised score does not change when selftune does."""

    def __init__(self, space: Space, seed: int, budget: int) -> None:
        super().__init__(space, seed, budget)
        self._rng = np.random.default_rng([self.seed, 918273])

    def _ask(self) -> Mapping[str, Any]:
        return self.space.decode(self._rng.random(len(self.space)))

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        pass

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        pass


class _Replay(Sampler):
    """Proposes queued points first (warm start), then defers to the wrapped sampler."""

    def __init__(self, inner: Sampler) -> None:
        super().__init__(seed=inner.seed)
        self.inner = inner
        self.queue: list[dict[str, Any]] = []

    def propose(
        self, history: History, space: Space, n: int = 1, *, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        if self.queue:
            return [self.queue.pop(0) for _ in range(n)]
        return self.inner.propose(history, space, n, rng=rng)

    def propose_param(self, history: History, name: str, param: Any, *, rng: np.random.Generator) -> Any:
        return self.inner.propose_param(history, name, param, rng=rng)

    def __getattr__(self, name: str) -> Any:  # any other hook or attribute is the wrapped sampler's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class SelftuneOptimizer(Optimizer):
    """Any selftune :class:`~selftune.samplers.Sampler` through a memory-storage study with the declared
    space: ``study.ask()`` → ``trial.params`` → ``study.tell(trial, value)``.

    The sampler is copied and its ``seed`` set to the run's seed, so one instance serves every seed.
    """

    def __init__(self, space: Space, seed: int, budget: int, sampler: Sampler) -> None:
        super().__init__(space, seed, budget)
        import selftune

        sampler = copy.deepcopy(sampler)
        sampler.seed = self.seed
        self.sampler = sampler
        self._replay = _Replay(sampler)
        self.study = selftune.create_study(
            storage="memory", space=space, sampler=self._replay, direction="minimize"
        )
        self._trial: Any = None

    def _ask(self) -> Mapping[str, Any]:
        self._trial = self.study.ask()
        return self._trial.params

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        self.study.tell(self._trial, float(value))
        self._trial = None

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        self._replay.queue.append(dict(params))
        trial = self.study.ask()
        self.study.tell(trial, float(value))

    def close(self) -> None:
        self.study.close()


# -- registry ----------------------------------------------------------------------------------------------

Factory = Callable[[Space, int, int], Optimizer]


_SELFTUNE_MODULES = {"TPESampler": "tpe", "GPSampler": "gp", "CMAESSampler": "cmaes", "AutoSampler": "auto"}


def _selftune_class(attr: str) -> type[Sampler]:
    """``selftune.samplers.<attr>``, or the class from its own module if the package does not export it yet."""
    import importlib

    import selftune.samplers as samplers

    cls = getattr(samplers, attr, None)
    if cls is None and attr in _SELFTUNE_MODULES:
        try:
            mod = importlib.import_module(f"selftune.samplers.{_SELFTUNE_MODULES[attr]}")
        except ImportError as exc:
            raise OptimizerUnavailable(f"selftune.samplers.{attr} does not exist yet ({exc})") from None
        cls = getattr(mod, attr, None)
    if cls is None:
        raise OptimizerUnavailable(f"selftune.samplers.{attr} does not exist yet")
    return cls


def _selftune(attr: str, **kwargs: Any) -> Factory:
    def factory(space: Space, seed: int, budget: int) -> Optimizer:
        return SelftuneOptimizer(space, seed, budget, _selftune_class(attr)(seed=seed, **kwargs))

    factory.selftune_class = attr  # type: ignore[attr-defined]
    return factory


def _peer(name: str) -> Factory:
    def factory(space: Space, seed: int, budget: int) -> Optimizer:
        from selftune.benchmarks import peers

        return peers.PEERS[name](space, seed, budget)

    return factory


#: name → (description, factory(space, seed, budget))
OPTIMIZERS: dict[str, tuple[str, Factory]] = {
    "random": ("uniform random search (harness-owned baseline)", lambda s, seed, b: RandomSearch(s, seed, b)),
    "selftune-random": ("selftune.RandomSampler", _selftune("RandomSampler")),
    "selftune-sobol": ("selftune.SobolSampler (scrambled Sobol)", _selftune("SobolSampler")),
    "selftune-tpe": ("selftune.samplers.TPESampler", _selftune("TPESampler")),
    "selftune-gp": ("selftune.samplers.GPSampler", _selftune("GPSampler")),
    "selftune-cmaes": ("selftune.samplers.CMAESSampler", _selftune("CMAESSampler")),
    "selftune-auto": ("selftune.samplers.AutoSampler", _selftune("AutoSampler")),
    "optuna-tpe": ("optuna TPESampler() (multivariate by default since Optuna 5)", _peer("optuna-tpe")),
    "optuna-tpe-mv": ("optuna TPESampler(multivariate=True)", _peer("optuna-tpe-mv")),
    "optuna-tpe-indep": ("optuna TPESampler(multivariate=False)", _peer("optuna-tpe-indep")),
    "optuna-gp": ("optuna GPSampler()", _peer("optuna-gp")),
    "optuna-cmaes": ("optuna CmaEsSampler() (categoricals sampled at random)", _peer("optuna-cmaes")),
    "optuna-random": ("optuna RandomSampler()", _peer("optuna-random")),
    "hebo": ("HEBO 0.3.6 (GP + MACE, conditionals flattened)", _peer("hebo")),
    "smac": ("SMAC3 HPO facade (random forest), deterministic, 1 call per config", _peer("smac")),
    "nevergrad": ("Nevergrad NGOpt (conditionals flattened)", _peer("nevergrad")),
}
ALIASES = {
    "sobol": "selftune-sobol",
    "tpe": "selftune-tpe",
    "gp": "selftune-gp",
    "ng": "nevergrad",
    "ngopt": "nevergrad",
    "smac3": "smac",
}

#: import names each optimiser needs
_REQUIRES: dict[str, tuple[str, ...]] = {
    "optuna": ("optuna",),
    "hebo": ("hebo", "torch", "pymoo"),
    "smac": ("smac", "ConfigSpace"),
    "nevergrad": ("nevergrad",),
}


def resolve_name(name: str) -> str:
    """The registry name for ``name`` (aliases resolved); raises KeyError for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in OPTIMIZERS:
        raise KeyError(
            f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)} or {sorted(ALIASES)}"
        )
    return name


def unavailable_reason(name: str) -> str | None:
    """None when ``name`` can be built here, else why not (checked without importing heavy modules)."""
    import importlib.util

    name = resolve_name(name)
    attr = getattr(OPTIMIZERS[name][1], "selftune_class", None)
    if attr is not None:
        try:
            _selftune_class(attr)
        except OptimizerUnavailable as exc:
            return str(exc)
        return None
    lib = name.split("-", 1)[0]
    for mod in _REQUIRES.get(lib, ()):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (see benchmarks/README.md)"
    return None


def available_optimizers() -> dict[str, str | None]:
    """Every registered optimiser → None if it can run here, else the reason it cannot."""
    return {name: unavailable_reason(name) for name in OPTIMIZERS}


_LIBRARIES: dict[str, tuple[str, ...]] = {
    "random": ("numpy",),
    "optuna": ("optuna", "cmaes"),
    "hebo": ("HEBO", "torch", "pymoo"),
    "smac": ("smac", "ConfigSpace"),
    "nevergrad": ("nevergrad",),
}


def _samplers_fingerprint() -> str:
    """A hash of selftune's sampler sources and space.py/study.py: cached selftune results go stale with it."""
    import hashlib
    from pathlib import Path

    import selftune

    root = Path(selftune.__file__).parent
    h = hashlib.sha1()
    files = sorted((root / "samplers").rglob("*.py")) + [
        root / "space.py",
        root / "study.py",
        root / "history.py",
    ]
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


#: bump when the runner or an adapter changes what an optimiser proposes (invalidates every cached result)
HARNESS_REVISION = "1"


def optimizer_versions(name: str) -> dict[str, str]:
    """What a cached result of ``name`` depends on: the harness revision and the library versions, or
    selftune's sampler sources."""
    from importlib import metadata

    name = ALIASES.get(name, name)
    if name.startswith("selftune"):
        import selftune

        return {
            "harness": HARNESS_REVISION,
            "selftune": selftune.__version__,
            "selftune-samplers": _samplers_fingerprint(),
        }
    out = {"harness": HARNESS_REVISION}
    for dist in _LIBRARIES.get(name.split("-", 1)[0], ()):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def make_optimizer(spec: str | Sampler | Factory, space: Space, seed: int, budget: int) -> Optimizer:
    """Build an optimiser from a registry name, a selftune sampler instance or a factory."""
    if isinstance(spec, str):
        name = resolve_name(spec)
        opt = OPTIMIZERS[name][1](space, seed, budget)
        opt.name = name
        return opt
    if isinstance(spec, Sampler):
        opt = SelftuneOptimizer(space, seed, budget, spec)
        opt.name = f"selftune-{type(spec).__name__}"
        return opt
    opt = spec(space, seed, budget)
    opt.name = opt.name or getattr(spec, "__name__", type(opt).__name__)
    return opt


# -- running -------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One optimiser on one problem with one seed.

    ``values`` are what the optimiser observed, in order; ``true_values`` the noiseless values of the same
    points (noisy problems only, else None). ``ask_seconds[i]`` is the time of the i-th ask.
    """

    problem: str
    optimizer: str
    seed: int
    budget: int
    values: list[float] = field(default_factory=list)
    true_values: list[float] | None = None
    ask_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.error is None and len(self.values) >= self.budget

    def recommended_trace(self) -> list[float]:
        """After each evaluation, the (true) value of the best point observed so far."""
        out: list[float] = []
        best_obs, best_true = math.inf, math.inf
        truth = self.true_values if self.true_values is not None else self.values
        for v, t in zip(self.values, truth, strict=True):
            if v < best_obs:
                best_obs, best_true = v, t
            out.append(best_true)
        return out

    def final(self) -> float:
        """The score value: the true value of the best observed point (``inf`` if nothing was evaluated)."""
        trace = self.recommended_trace()
        return trace[-1] if trace else math.inf

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        return cls(**dict(data))


def run_detailed(
    problem: Problem,
    optimizer: str | Sampler | Factory,
    seed: int,
    budget: int | None = None,
    *,
    catch: bool = True,
) -> RunResult:
    """Run ``optimizer`` on ``problem`` for ``budget`` evaluations (default the problem's) with ``seed``.

    With ``catch`` an exception ends the run and is recorded in ``error`` (values so far are kept).
    """
    budget = int(budget or problem.budget)
    problem.reset(seed)
    t0 = time.perf_counter()
    opt = make_optimizer(optimizer, problem.space, seed, budget)
    result = RunResult(problem.name, opt.name, int(seed), budget)
    if problem.noisy:
        result.true_values = []
    try:
        result.versions = optimizer_versions(opt.name)
        for _ in range(budget):
            params = opt.ask()
            value = float(problem.evaluate(params))
            opt.tell(params, value)
            result.values.append(value)
            if result.true_values is not None:
                result.true_values.append(float(problem.true_value(params)))
    except Exception as exc:
        if not catch:
            raise
        result.error = f"{type(exc).__name__}: {exc}\n{tb.format_exc(limit=6)}"
    finally:
        result.ask_seconds = list(opt.ask_seconds)
        result.stats = dict(opt.stats)
        opt.close()
        result.wall_seconds = time.perf_counter() - t0
    return result


def run(
    problem: Problem, optimizer_factory: str | Sampler | Factory, seed: int, budget: int | None = None
) -> list[float]:
    """The trace of values ``optimizer_factory`` observed on ``problem`` (exceptions propagate).

    ``np.minimum.accumulate(trace)`` is the best-so-far curve.
    """
    return run_detailed(problem, optimizer_factory, seed, budget, catch=False).values


def measure_latency(
    optimizer: str | Sampler | Factory,
    problem: Problem,
    levels: tuple[int, ...] = (25, 100, 300),
    asks: int = 5,
    seed: int = 0,
) -> dict[int, list[float]]:
    """Seconds per ask after ``level`` observations, for each level.

    The optimiser is warm-started with ``level`` uniformly random points (:meth:`Optimizer.observe`, which
    does not ask the model), then asked ``asks`` times, each ask told its value before the next.
    """
    out: dict[int, list[float]] = {}
    for level in levels:
        rng = np.random.default_rng([seed, level])
        problem.reset(seed)
        opt = make_optimizer(optimizer, problem.space, seed, level + asks)
        try:
            for _ in range(level):
                params = clean_params(problem.space, problem.space.decode(rng.random(len(problem.space))))
                opt.observe(params, float(problem.evaluate(params)))
            for _ in range(asks):
                params = opt.ask()
                opt.tell(params, float(problem.evaluate(params)))
            out[level] = list(opt.ask_seconds)
        finally:
            opt.close()
    return out
