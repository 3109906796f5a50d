"""Adapters for the peer libraries: Optuna, HEBO, SMAC3 and Nevergrad.

Every adapter converts the problem's :class:`~selftune.space.Space` into the library's own description:

==============  ==================================================  ===============================================
library         numbers / integers / choices                        conditions (``when=``)
==============  ==================================================  ===============================================
Optuna          ``suggest_float``/``suggest_int`` (log, step),      define-by-run: a parameter is suggested only
                ``suggest_categorical``                             when its condition holds
HEBO 0.3.6      ``num``/``pow`` (log), ``int``/``pow_int``,         none: every parameter is searched, inactive
                ``cat`` (choices as index strings)                  ones are dropped before evaluation
SMAC3           ConfigSpace ``Float``/``Integer`` (log),            ``EqualsCondition``/``InCondition``
                ``Categorical``                                     (``AndConjunction`` for several parents)
Nevergrad       ``Scalar``/``Log`` (integer casting for ints),      none (flattened, as HEBO)
                ``Choice``
==============  ==================================================  ===============================================

Floats with a ``step`` and integers with ``step > 1`` are searched as the integer index of their grid by
HEBO, SMAC3 and Nevergrad. Constant parameters (``low == high``) are not shown to those libraries.

The libraries are imported when an adapter is built, never at module import.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from selftune.benchmarks.runner import Optimizer
from selftune.space import Choice, Float, Int, Param, Space

__all__ = ["OptunaOptimizer", "HEBOOptimizer", "SMACOptimizer", "NevergradOptimizer", "PEERS"]


# -- shared encoding for libraries without steps or conditions ---------------------------------------------


def _is_constant(p: Param) -> bool:
    return p.size == 1


def _grid(p: Param) -> int | None:
    """Number of grid points when ``p`` is searched as an integer index, else None."""
    if isinstance(p, Float) and p.step is not None:
        return int(p.size)
    if isinstance(p, Int) and int(p.step) > 1:
        return int(p.size)
    return None


def _grid_value(p: Param, k: Any) -> Any:
    """The value at grid index ``k`` (clipped) of a parameter searched by index."""
    assert isinstance(p, Float | Int) and p.step is not None
    n = int(p.size)
    k = min(max(int(round(float(k))), 0), n - 1)
    return p.low + k * p.step


def _grid_index(p: Param, v: Any) -> int:
    """The grid index of value ``v``."""
    assert isinstance(p, Float | Int) and p.step is not None
    return int(round((float(v) - p.low) / p.step))


def _from_native(space: Space, native: Mapping[str, Any]) -> dict[str, Any]:
    """Map a flat proposal (grid indices, choice indices) back to parameter values; constants filled in."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if _is_constant(p):
            out[name] = p.from_unit(0.5)
            continue
        v = native[name]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(p, Choice):
            out[name] = p.choices[int(v)]
        elif _grid(p) is not None:
            out[name] = _grid_value(p, v)
        else:
            out[name] = v
    return out


def _to_native(space: Space, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The inverse of :func:`_from_native` for a full flat point; inactive parameters get random values."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if _is_constant(p):
            continue
        v = params[name] if name in params else p.from_unit(rng.random())
        if isinstance(p, Choice):
            out[name] = p.index(v)
        elif _grid(p) is not None:
            out[name] = _grid_index(p, v)
        else:
            out[name] = v
    return out


# -- Optuna ------------------------------------------------------------------------------------------------


def _optuna_distribution(p: Param) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(p, Float):
        return FloatDistribution(float(p.low), float(p.high), log=bool(p.log), step=p.step)
    if isinstance(p, Int):
        return IntDistribution(int(p.low), int(p.high), log=bool(p.log), step=int(p.step))
    assert isinstance(p, Choice)
    return CategoricalDistribution(_optuna_choices(p))


def _optuna_choices(p: Choice) -> tuple[Any, ...]:
    plain = all(c is None or isinstance(c, bool | int | float | str) for c in p.choices)
    return tuple(p.choices) if plain else tuple(range(len(p.choices)))


class OptunaOptimizer(Optimizer):
    """An Optuna sampler through ``study.ask()``/``study.tell()``, parameters suggested define-by-run."""

    def __init__(self, space: Space, seed: int, budget: int, make_sampler: Callable[[int], Any]) -> None:
        super().__init__(space, seed, budget)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self._optuna = optuna
        self.study = optuna.create_study(direction="minimize", sampler=make_sampler(self.seed))
        self.dists = {name: _optuna_distribution(p) for name, p in space.items()}
        self._trial: Any = None

    def _value(self, name: str, v: Any) -> Any:
        p = self.space[name]
        if isinstance(p, Choice) and _optuna_choices(p) != tuple(p.choices):
            return p.choices[int(v)]
        return v

    def _ask(self) -> Mapping[str, Any]:
        trial = self.study.ask()
        out: dict[str, Any] = {}
        for name in self.space:
            if self.space.is_active(name, out):
                p = self.space[name]
                if isinstance(p, Float):
                    v = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
                elif isinstance(p, Int):
                    v = trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log)
                else:
                    assert isinstance(p, Choice)
                    v = trial.suggest_categorical(name, _optuna_choices(p))
                out[name] = self._value(name, v)
        self._trial = trial
        return out

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        self.study.tell(self._trial, float(value))
        self._trial = None

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        native = {}
        for name, v in params.items():
            p = self.space[name]
            native[name] = (
                p.index(v) if isinstance(p, Choice) and _optuna_choices(p) != tuple(p.choices) else v
            )
        trial = self._optuna.trial.create_trial(
            params=native, distributions={n: self.dists[n] for n in params}, value=float(value)
        )
        self.study.add_trial(trial)


def _optuna(kind: str) -> Callable[[Space, int, int], Optimizer]:
    def make_sampler(seed: int) -> Any:
        import optuna

        s = optuna.samplers
        if kind == "tpe":
            return s.TPESampler(seed=seed)
        if kind == "tpe-mv":
            return s.TPESampler(seed=seed, multivariate=True)
        if kind == "tpe-indep":
            return s.TPESampler(seed=seed, multivariate=False)
        if kind == "gp":
            return s.GPSampler(seed=seed, warn_independent_sampling=False)
        if kind == "cmaes":
            return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if kind == "random":
            return s.RandomSampler(seed=seed)
        raise KeyError(kind)

    return lambda space, seed, budget: OptunaOptimizer(space, seed, budget, make_sampler)


# -- HEBO --------------------------------------------------------------------------------------------------


def _hebo_spec(name: str, p: Param) -> dict[str, Any]:
    n = _grid(p)
    if isinstance(p, Choice):
        return {"name": name, "type": "cat", "categories": [str(i) for i in range(len(p.choices))]}
    if n is not None:
        return {"name": name, "type": "int", "lb": 0, "ub": n - 1}
    if isinstance(p, Float):
        if p.log:
            return {"name": name, "type": "pow", "lb": float(p.low), "ub": float(p.high), "base": 10}
        return {"name": name, "type": "num", "lb": float(p.low), "ub": float(p.high)}
    assert isinstance(p, Int)
    if p.log:
        return {"name": name, "type": "pow_int", "lb": int(p.low), "ub": int(p.high), "base": 10}
    return {"name": name, "type": "int", "lb": int(p.low), "ub": int(p.high)}


class HEBOOptimizer(Optimizer):
    """HEBO 0.3.6 (``HEBO(space, scramble_seed=seed)``); NumPy's and torch's global generators are seeded
    at construction because HEBO draws from them."""

    def __init__(self, space: Space, seed: int, budget: int) -> None:
        super().__init__(space, seed, budget)
        import torch

        torch.set_num_threads(1)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        self._names = [n for n, p in space.items() if not _is_constant(p)]
        self.design = DesignSpace().parse([_hebo_spec(n, space[n]) for n in self._names])
        self.opt = HEBO(self.design, scramble_seed=self.seed)
        self._rng = np.random.default_rng([self.seed, 4711])
        self._rec: Any = None

    def _decode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        native = {}
        for n in self._names:
            v = row[n]
            native[n] = int(v) if isinstance(self.space[n], Choice) else v
        return _from_native(self.space, native)

    def _ask(self) -> Mapping[str, Any]:
        if not self._names:
            self._rec = None
            return _from_native(self.space, {})
        out = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.simplefilter("ignore")
            rec = self.opt.suggest(n_suggestions=1)
        # HEBO prints "jitter is too large, output random predictions" when its GP fit fails; count them
        self.stats["gp_fit_failures"] = self.stats.get("gp_fit_failures", 0) + out.getvalue().count(
            "too large"
        )
        self._rec = rec
        return self._decode(rec.iloc[0].to_dict())

    def _observe_rec(self, rec: Any, value: float) -> None:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            self.opt.observe(rec, np.array([[float(value)]]))

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        if self._rec is not None:
            self._observe_rec(self._rec, value)
        self._rec = None

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        import pandas as pd

        native = _to_native(self.space, params, self._rng)
        row = {n: (str(native[n]) if isinstance(self.space[n], Choice) else native[n]) for n in self._names}
        if self._names:
            self._observe_rec(pd.DataFrame([row], columns=self._names), value)


# -- SMAC3 -------------------------------------------------------------------------------------------------


class SMACOptimizer(Optimizer):
    """SMAC3's hyperparameter-optimisation facade (random forest, log-scaled costs, Sobol initial design),
    ``deterministic=True`` and an intensifier with ``max_config_calls=1`` so each configuration is evaluated
    once; its output directory is a temporary directory removed by :meth:`close`."""

    def __init__(self, space: Space, seed: int, budget: int) -> None:
        super().__init__(space, seed, budget)
        import ConfigSpace as CS

        self._CS = CS
        cs = CS.ConfigurationSpace(seed=self.seed)
        self._names = [n for n, p in space.items() if not _is_constant(p)]
        hps: dict[str, Any] = {}
        for n in self._names:
            p = space[n]
            g = _grid(p)
            if isinstance(p, Choice):
                hps[n] = CS.Categorical(n, [str(i) for i in range(len(p.choices))])
            elif g is not None:
                hps[n] = CS.Integer(n, (0, g - 1))
            elif isinstance(p, Float):
                hps[n] = CS.Float(n, (float(p.low), float(p.high)), log=bool(p.log))
            else:
                assert isinstance(p, Int)
                hps[n] = CS.Integer(n, (int(p.low), int(p.high)), log=bool(p.log))
        cs.add(list(hps.values()))
        conditions: list[Any] = []
        for n in self._names:
            when = space[n].when or {}
            conds: list[Any] = []
            for parent, allowed in when.items():
                if parent not in hps:  # a constant parent: the condition is fixed
                    continue
                vals = [self._cs_value(parent, v) for v in allowed]
                if len(vals) == 1:
                    conds.append(CS.EqualsCondition(hps[n], hps[parent], vals[0]))
                else:
                    conds.append(CS.InCondition(hps[n], hps[parent], vals))
            if len(conds) == 1:
                conditions.append(conds[0])
            elif conds:
                conditions.append(CS.AndConjunction(*conds))
        if conditions:
            cs.add(conditions)
        self.cs = cs
        self._tmp = tempfile.mkdtemp(prefix="smac-")
        self.smac: Any = None
        self._pending: list[tuple[Any, float]] = []  # observations before the facade exists
        self._info: Any = None

    def _build(self) -> None:
        """Create the facade. After a warm start (:meth:`observe` before the first ask) it gets no initial
        design, so the asks that are timed are model-based ones."""
        from smac import HyperparameterOptimizationFacade as HPO
        from smac import Scenario

        scenario = Scenario(
            self.cs,
            deterministic=True,
            n_trials=max(self.budget, 1),
            output_directory=self._tmp,  # type: ignore[arg-type,unused-ignore]
            seed=self.seed,
        )
        intensifier = HPO.get_intensifier(scenario, max_config_calls=1)
        extra: dict[str, Any] = {}
        if self._pending:
            extra["initial_design"] = HPO.get_initial_design(scenario, n_configs=0)
        for name in ("smac", "ConfigSpace"):
            logging.getLogger(name).setLevel(logging.ERROR)

        def target(config: Any, seed: int = 0) -> float:  # never called: ask/tell only
            raise RuntimeError("SMAC target function called")

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.smac = HPO(
                scenario, target, intensifier=intensifier, overwrite=True, logging_level=40, **extra
            )
        from smac.runhistory.dataclasses import TrialInfo, TrialValue

        for config, value in self._pending:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.smac.tell(TrialInfo(config=config, seed=self.seed), TrialValue(cost=value, time=0.0))
        self._pending = []

    def ask(self) -> dict[str, Any]:
        if self.smac is None:  # building the facade is set-up, not part of an ask
            self._build()
        return super().ask()

    def _cs_value(self, name: str, v: Any) -> Any:
        p = self.space[name]
        if isinstance(p, Choice):
            return str(p.index(v))
        if _grid(p) is not None:
            return _grid_index(p, v)
        return v

    def _ask(self) -> Mapping[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._info = self.smac.ask()
        cfg = dict(self._info.config)
        native: dict[str, Any] = {}
        for n, p in self.space.items():
            if _is_constant(p):
                continue
            if n in cfg:
                native[n] = int(cfg[n]) if isinstance(p, Choice) else cfg[n]
            else:  # inactive in SMAC's view
                native[n] = 0 if isinstance(p, Choice) or _grid(p) is not None else p.from_unit(0.0)
        return _from_native(self.space, native)

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        from smac.runhistory.dataclasses import TrialValue

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.smac.tell(self._info, TrialValue(cost=float(value), time=0.0))
        self._info = None

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        from smac.runhistory.dataclasses import TrialInfo, TrialValue

        values = {n: self._cs_value(n, params[n]) for n in self._names if n in params}
        config = self._CS.Configuration(self.cs, values=values)
        if self.smac is None:
            self._pending.append((config, float(value)))
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.smac.tell(TrialInfo(config=config, seed=self.seed), TrialValue(cost=float(value), time=0.0))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


# -- Nevergrad ---------------------------------------------------------------------------------------------


class NevergradOptimizer(Optimizer):
    """Nevergrad's ``NGOpt`` (which picks an algorithm from the budget, dimension and types) over an
    ``ng.p.Instrumentation`` of ``Scalar``/``Log`` (integer casting for ints) and ``Choice``."""

    def __init__(self, space: Space, seed: int, budget: int) -> None:
        super().__init__(space, seed, budget)
        import nevergrad as ng

        self._ng = ng
        kw: dict[str, Any] = {}
        self._names = [n for n, p in space.items() if not _is_constant(p)]
        for n in self._names:
            p = space[n]
            g = _grid(p)
            if isinstance(p, Choice):
                kw[n] = ng.p.Choice(list(range(len(p.choices))))
            elif g is not None:
                kw[n] = ng.p.Scalar(lower=0, upper=g - 1).set_integer_casting()
            elif isinstance(p, Float):
                cls = ng.p.Log if p.log else ng.p.Scalar
                kw[n] = cls(lower=float(p.low), upper=float(p.high))
            else:
                assert isinstance(p, Int)
                cls = ng.p.Log if p.log else ng.p.Scalar
                kw[n] = cls(lower=int(p.low), upper=int(p.high)).set_integer_casting()
        param = ng.p.Instrumentation(**kw)
        param.random_state = np.random.RandomState(self.seed % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt = ng.optimizers.NGOpt(parametrization=param, budget=max(int(budget), 1), num_workers=1)
        self._rng = np.random.default_rng([self.seed, 4711])
        self._cand: Any = None

    def _ask(self) -> Mapping[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._cand = self.opt.ask()
        return _from_native(self.space, self._cand.kwargs)

    def tell(self, params: Mapping[str, Any], value: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.tell(self._cand, float(value))
        self._cand = None

    def observe(self, params: Mapping[str, Any], value: float) -> None:
        native = _to_native(self.space, params, self._rng)
        native = {n: (float(v) if not isinstance(self.space[n], Choice) else v) for n, v in native.items()}
        cand = self.opt.parametrization.spawn_child(new_value=((), native))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.opt.tell(cand, float(value))


PEERS: dict[str, Callable[[Space, int, int], Optimizer]] = {
    "optuna-tpe": _optuna("tpe"),
    "optuna-tpe-mv": _optuna("tpe-mv"),
    "optuna-tpe-indep": _optuna("tpe-indep"),
    "optuna-gp": _optuna("gp"),
    "optuna-cmaes": _optuna("cmaes"),
    "optuna-random": _optuna("random"),
    "hebo": lambda space, seed, budget: HEBOOptimizer(space, seed, budget),
    "smac": lambda space, seed, budget: SMACOptimizer(space, seed, budget),
    "nevergrad": lambda space, seed, budget: NevergradOptimizer(space, seed, budget),
}
