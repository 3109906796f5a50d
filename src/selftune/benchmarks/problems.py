"""Benchmark problems: a declared :class:`~selftune.space.Space`, a budget and an objective to minimise.

Groups (see :data:`GROUPS`):

``bbob-2d`` … ``bbob-20d``
    Ten COCO ``bbob`` functions (instance 1) through ``cocoex``, box ``[-5, 5]^d`` as :class:`Float`
    parameters. The known optimum ``f_opt`` of each function is read from ``cocoex``.
``mixint``
    The same functions from COCO's ``bbob-mixint`` suite in 5 and 10 dimensions: the first 80 % of the
    variables are integers with 2, 4, 8 or 16 values (:class:`Int`), the rest are :class:`Float` in
    ``[-5, 5]``. No optimum is known: scores use the best value any optimiser found.
``noisy``
    Four ``bbob`` functions in 5-D with multiplicative log-normal noise (``(f - f_opt)·exp(0.5·z) + f_opt``)
    or additive Gaussian noise (``f + σ·z``, ``σ`` = 1 % of the median random gap ``f - f_opt``). ``z`` is drawn
    from a generator seeded by (run seed, evaluation index), so a run is reproducible and two evaluations of
    the same point differ. The optimiser sees only noisy values; the score uses the *noiseless* value of the
    best observed (noisy) point, i.e. the point an optimiser would recommend from its own data.
``sklearn``
    Bayesmark-style hyperparameter tuning of MLP, SVM, random forest and linear models on the data sets
    bundled with scikit-learn (digits, breast_cancer, wine, iris; diabetes for regression). The objective is
    the 3-fold cross-validated error rate (classification) or mean squared error of the standardised
    target (diabetes), with fixed split and model seeds so it is a deterministic function of the parameters.
``synthetic``
    Closed-form functions that need only NumPy (Branin, Hartmann-6); used for the latency measurement and
    the tests. Not in the default groups of the comparison.

Problems are cheap to construct: the ``cocoex`` problem or the data set is loaded on first use.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from selftune.space import Float, Int, Space

__all__ = [
    "GROUPS",
    "DEFAULT_GROUPS",
    "BBOB_FUNCTIONS",
    "Problem",
    "BBOBProblem",
    "MixintProblem",
    "NoisyBBOBProblem",
    "FunctionProblem",
    "all_problems",
    "get_problem",
    "problems_in",
]

#: every group, in report order
GROUPS: tuple[str, ...] = (
    "bbob-2d",
    "bbob-5d",
    "bbob-10d",
    "bbob-20d",
    "mixint",
    "noisy",
    "sklearn",
    "synthetic",
)
#: the groups a comparison runs unless told otherwise
DEFAULT_GROUPS: tuple[str, ...] = GROUPS[:-1]

#: bbob function index → short name. Separable (1, 2), moderate conditioning (6, 8), ill-conditioned (10),
#: multimodal with global structure (15, 17), weak structure (20, 21, 23).
BBOB_FUNCTIONS: dict[int, str] = {
    1: "sphere",
    2: "ellipsoid",
    6: "attractive-sector",
    8: "rosenbrock",
    10: "ellipsoid-rotated",
    15: "rastrigin-rotated",
    17: "schaffer-f7",
    20: "schwefel",
    21: "gallagher-101",
    23: "katsuura",
}
BBOB_DIMS = (2, 5, 10, 20)
MIXINT_FUNCTIONS = (1, 2, 6, 8, 10, 15, 17, 20, 21)
MIXINT_DIMS = (5, 10)
NOISY_FUNCTIONS = (1, 8, 15, 21)
NOISY_DIM = 5


class Problem(ABC):
    """A minimisation problem over a declared space.

    ``evaluate`` returns what the optimiser observes; ``true_value`` the noiseless value used for scoring
    (the same for deterministic problems). ``reset(seed)`` starts a run: noisy problems seed their noise
    from it. ``optimum`` is the known minimum, or None.
    """

    name: str
    group: str
    budget: int
    optimum: float | None = None
    noisy: bool = False
    #: bump when the objective changes in a way the space and budget do not show (invalidates cached results)
    revision: ClassVar[int] = 1

    @property
    @abstractmethod
    def space(self) -> Space:
        """The declared search space."""

    @abstractmethod
    def evaluate(self, params: Mapping[str, Any]) -> float:
        """The (observed) objective value of ``params``; lower is better."""

    def true_value(self, params: Mapping[str, Any]) -> float:
        """The noiseless objective value of ``params``."""
        return self.evaluate(params)

    def reset(self, seed: int) -> None:  # noqa: B027 - optional hook
        """Start a run with ``seed`` (noisy problems seed their noise here)."""

    @property
    def dimension(self) -> int:
        return len(self.space)

    def fingerprint(self) -> str:
        """A hash of the definition (class, revision, space, budget, optimum): cached results go stale with it."""
        import hashlib
        import json

        data = {"class": type(self).__name__, "revision": self.revision, **self.describe()}
        return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (stored next to results)."""
        return {
            "name": self.name,
            "group": self.group,
            "budget": self.budget,
            "optimum": self.optimum,
            "noisy": self.noisy,
            "space": self.space.to_json(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, budget={self.budget})"


# -- COCO ----------------------------------------------------------------------------------------------------

_SUITES: dict[str, Any] = {}
_SUITE_OPTIONS = {
    "bbob": "dimensions:2,5,10,20 instance_indices:1",
    "bbob-mixint": "dimensions:5,10 instance_indices:1",
}
_COCO_LOCK = threading.Lock()


def _coco_problem(suite: str, function: int, dim: int) -> Any:
    """The ``cocoex`` problem (instance 1); suites are cached per process and kept alive with their problems."""
    try:
        import cocoex
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the bbob problems need COCO's Python module: pip install coco-experiment") from exc
    with _COCO_LOCK:
        if suite not in _SUITES:
            _SUITES[suite] = cocoex.Suite(suite, "", _SUITE_OPTIONS[suite])
        return _SUITES[suite].get_problem_by_function_dimension_instance(function, dim, 1)


def _coco_optimum(problem: Any) -> tuple[np.ndarray, float]:
    """``(x_opt, f_opt)`` of a bbob problem: cocoex writes x_opt to a file in the working directory."""
    with _COCO_LOCK, tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            problem._best_parameter("print")
            with open("._bbob_problem_best_parameter.txt") as fh:
                x = np.array([float(v) for v in fh.read().split()])
        finally:
            os.chdir(cwd)
    return x, float(problem(x))


def _box_space(dim: int, low: float = -5.0, high: float = 5.0) -> Space:
    return Space({f"x{i}": Float(low, high) for i in range(dim)})


def _vector(space: Space, params: Mapping[str, Any]) -> np.ndarray:
    return np.array([float(params[n]) for n in space], dtype=float)


class _CocoProblem(Problem):
    """What the COCO problems share: the ``cocoex`` object, loaded on first use and never pickled."""

    _suite: ClassVar[str]
    function: int
    dim: int
    _problem: Any
    _space: Space | None

    @property
    def coco(self) -> Any:
        if self._problem is None:
            self._problem = _coco_problem(self._suite, self.function, self.dim)
        return self._problem

    def evaluate(self, params: Mapping[str, Any]) -> float:
        return float(self.coco(_vector(self.space, params)))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_problem"] = None
        return state


@dataclass(repr=False)
class BBOBProblem(_CocoProblem):
    """A COCO ``bbob`` function (instance 1) on ``[-5, 5]^d``; budget ``20·d + 20``."""

    _suite: ClassVar[str] = "bbob"

    function: int
    dim: int
    name: str = ""
    group: str = ""
    budget: int = 0
    _problem: Any = field(default=None, init=False, compare=False)
    _optimum: float | None = field(default=None, init=False, compare=False)
    _space: Space | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"bbob-f{self.function:02d}-d{self.dim:02d}"
        self.group = self.group or f"bbob-{self.dim}d"
        self.budget = self.budget or 20 * self.dim + 20

    @property
    def space(self) -> Space:
        if self._space is None:
            self._space = _box_space(self.dim)
        return self._space

    @property
    def optimum(self) -> float:  # type: ignore[override]
        if self._optimum is None:
            self._optimum = _coco_optimum(self.coco)[1]
        return self._optimum



@dataclass(repr=False)
class MixintProblem(_CocoProblem):
    """A COCO ``bbob-mixint`` function: integer variables as :class:`Int`, the rest :class:`Float`."""

    _suite: ClassVar[str] = "bbob-mixint"

    function: int
    dim: int
    name: str = ""
    group: str = "mixint"
    budget: int = 0
    _problem: Any = field(default=None, init=False, compare=False)
    _space: Space | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        self.name = self.name or f"mixint-f{self.function:02d}-d{self.dim:02d}"
        self.budget = self.budget or 20 * self.dim + 20

    @property
    def space(self) -> Space:
        if self._space is None:
            p = self.coco
            n_int = int(p.number_of_integer_variables)
            params: dict[str, Any] = {}
            for i, (lo, hi) in enumerate(zip(p.lower_bounds, p.upper_bounds, strict=True)):
                if i < n_int:
                    params[f"i{i}"] = Int(int(round(lo)), int(round(hi)))
                else:
                    params[f"x{i}"] = Float(float(lo), float(hi))
            self._space = Space(params)
        return self._space



@dataclass(repr=False)
class NoisyBBOBProblem(BBOBProblem):
    """A bbob function with seeded noise: ``mult`` (log-normal, factor ``exp(0.5·z)`` on ``f - f_opt``) or
    ``add`` (Gaussian, ``σ`` = 1 % of the median gap ``f - f_opt`` of 256 random points)."""

    noise: str = "mult"
    level: float = 0.0
    noisy: bool = True
    _seed: int = field(default=0, init=False, compare=False)
    _count: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.noise not in ("mult", "add"):
            raise ValueError(f"noise must be 'mult' or 'add', got {self.noise!r}")
        self.name = self.name or f"noisy-{self.noise}-f{self.function:02d}-d{self.dim:02d}"
        self.group = self.group or "noisy"
        super().__post_init__()

    def _sigma(self) -> float:
        if not self.level:
            if self.noise == "mult":
                self.level = 0.5
            else:
                rng = np.random.default_rng([self.function, self.dim, 12345])
                xs = rng.uniform(-5, 5, size=(256, self.dim))
                gaps = np.array([float(self.coco(x)) for x in xs]) - self.optimum
                self.level = 0.01 * float(np.median(gaps))
        return self.level

    def reset(self, seed: int) -> None:
        self._seed = int(seed)
        self._count = 0

    def true_value(self, params: Mapping[str, Any]) -> float:
        return float(self.coco(_vector(self.space, params)))

    def evaluate(self, params: Mapping[str, Any]) -> float:
        f = self.true_value(params)
        sigma = self._sigma()
        z = float(np.random.default_rng([self._seed, self._count, self.function, 7]).standard_normal())
        self._count += 1
        if self.noise == "mult":
            return (f - self.optimum) * math.exp(sigma * z) + self.optimum
        return f + sigma * z


# -- closed-form functions ---------------------------------------------------------------------------------


def _branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x0"]), float(p["x1"])
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> float:
    """The 6-D Hartmann function on ``[0, 1]^6`` (minimum -3.32237)."""
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (np.asarray(x) - _H6_P) ** 2, axis=1))))


def _hartmann6(p: Mapping[str, Any]) -> float:
    return hartmann6(np.array([float(p[f"x{i}"]) for i in range(6)]))


@dataclass(repr=False)
class FunctionProblem(Problem):
    """A closed-form function of the parameters (NumPy only)."""

    name: str
    fn: Callable[[Mapping[str, Any]], float]
    space_: Space
    budget: int
    optimum: float | None = None
    group: str = "synthetic"

    @property
    def space(self) -> Space:
        return self.space_

    def evaluate(self, params: Mapping[str, Any]) -> float:
        return float(self.fn(params))


def _synthetic() -> list[Problem]:
    return [
        FunctionProblem(
            "branin",
            _branin,
            Space({"x0": Float(-5.0, 10.0), "x1": Float(0.0, 15.0)}),
            40,
            0.39788735772973816,
        ),
        FunctionProblem("hartmann6", _hartmann6, _box_space(6, 0.0, 1.0), 140, -3.3223680114155147),
    ]


# -- registry ----------------------------------------------------------------------------------------------


def _build() -> dict[str, Problem]:
    from selftune.benchmarks.sklearn_problems import (
        CLASSIFICATION_DATASETS,
        REGRESSION_DATASETS,
        SKLEARN_MODELS,
        SklearnProblem,
    )

    out: list[Problem] = []
    for d in BBOB_DIMS:
        out += [BBOBProblem(f, d) for f in BBOB_FUNCTIONS]
    for d in MIXINT_DIMS:
        out += [MixintProblem(f, d) for f in MIXINT_FUNCTIONS]
    for noise in ("mult", "add"):
        out += [NoisyBBOBProblem(f, NOISY_DIM, noise=noise) for f in NOISY_FUNCTIONS]
    for dataset in CLASSIFICATION_DATASETS + REGRESSION_DATASETS:
        out += [SklearnProblem(m, dataset) for m in SKLEARN_MODELS]
    out += _synthetic()
    return {p.name: p for p in out}


def all_problems() -> list[Problem]:
    """Every problem of every group (fresh objects)."""
    return list(_build().values())


def get_problem(name: str) -> Problem:
    """The problem called ``name`` (a fresh object)."""
    problems = _build()
    if name not in problems:
        raise KeyError(f"unknown problem {name!r}; e.g. {sorted(problems)[:5]} …")
    return problems[name]


def problems_in(groups: tuple[str, ...] | list[str] | None = None) -> list[Problem]:
    """The problems of ``groups`` (default :data:`DEFAULT_GROUPS`), in group order."""
    groups = tuple(groups) if groups is not None else DEFAULT_GROUPS
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise KeyError(f"unknown group {unknown[0]!r}; expected some of {GROUPS}")
    probs = all_problems()
    return [p for g in groups for p in probs if p.group == g]
