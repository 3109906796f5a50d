"""Learning-curve problems for early stopping and multi-fidelity: a step is an epoch.

A :class:`CurveProblem` trains one configuration step by step and reports a validation error after each
step; the caller's ``report(step, value)`` returns True to stop it. :meth:`CurveProblem.objective` turns
one into a selftune objective, and peers' adapters wrap :meth:`CurveProblem.run` the same way, so every
optimiser sees the same curves and is charged the same steps.

``synthetic-curves``
    A closed-form model of training a network (7 hyperparameters: learning rate, weight decay, width, depth,
    dropout, batch size, optimizer): high learning rates converge fast and plateau high, so curves cross and
    early stopping can be fooled; wide nets without regularisation overfit late. Microseconds per step.
``digits-mlp``, ``digits-cnn``
    PyTorch networks trained on scikit-learn's digits (see :mod:`selftune.benchmarks.curves_torch`).
"""

from __future__ import annotations

import functools
import math
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from selftune.exceptions import StopTrial
from selftune.space import Choice, Float, Int, Space
from selftune.trial import Trial

__all__ = ["CurveProblem", "SyntheticCurves", "StepCounter", "get_curve_problem", "CURVE_PROBLEMS"]

Report = Callable[[int, float], bool]


class StepCounter:
    """Counts the training steps (epochs) every trial ran: the compute a multi-fidelity method spends."""

    def __init__(self) -> None:
        self.steps = 0


class CurveProblem(ABC):
    """A training run whose validation error is reported at steps ``1 .. max_steps`` (minimised)."""

    name: str
    max_steps: int

    @property
    @abstractmethod
    def space(self) -> Space:
        """The hyperparameters."""

    @abstractmethod
    def run(self, params: Mapping[str, Any], report: Report, seed: int) -> float:
        """Train with ``params``; call ``report(step, value)`` after each step, stop when it returns True.

        Returns the value at the last step run.
        """

    def final_value(self, params: Mapping[str, Any], seed: int = 0) -> float:
        """The value a configuration ends with after ``max_steps`` (for scoring a recommendation)."""
        return self.run(params, lambda step, value: False, seed)

    def score(self, params: Mapping[str, Any], observed: float) -> float:
        """How good a recommended configuration really is; by default the value it reported at ``max_steps``."""
        return observed

    def test_error(self, params: Mapping[str, Any], seed: int = 0) -> float | None:
        """The error on a held-out test split after ``max_steps`` with this training ``seed``; None (the
        default) when the problem has none."""
        return None

    def objective(self, seed: int = 0, counter: StepCounter | None = None) -> Callable[[Trial], float]:
        """A selftune objective over :attr:`space` (declared on the study) that reports every step.

        It raises :class:`StopTrial` when the scheduler stops or pauses the trial. A resumed trial replays
        its curve up to ``trial.resume_step`` without counting or reporting it, as if it had loaded a
        checkpoint (the curves are deterministic given the trial's seed).
        """

        def objective(trial: Trial) -> float:
            halted = False
            done = trial.resume_step or 0

            def report(step: int, value: float) -> bool:
                nonlocal halted
                if step <= done:
                    return False
                if counter is not None:
                    counter.steps += 1
                trial.report(value, step)
                halted = trial.should_stop()
                return halted

            params = trial.params or {n: trial.suggest(n, p) for n, p in self.space.items()}
            value = self.run(params, report, _trial_seed(seed, trial.number))
            ran = max(trial.intermediate, default=0)
            if halted and ran < self.max_steps:
                raise StopTrial(trial.decision.reason if trial.decision is not None else "stopped")
            return value  # a trial that ran every step is COMPLETE, whatever was decided at the last one

        return objective


def _trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % 2**31


class SyntheticCurves(CurveProblem):
    """A cheap, deterministic model of a network's validation-error curve (see the module docstring)."""

    name = "synthetic-curves"

    def __init__(self, max_steps: int = 81, noise: float = 0.004) -> None:
        self.max_steps = max_steps
        self.noise = noise

    @property
    def space(self) -> Space:
        return Space(
            {
                "lr": Float(1e-4, 1.0, log=True),
                "weight_decay": Float(1e-6, 1e-1, log=True),
                "width": Int(16, 512, log=True),
                "depth": Int(1, 4),
                "dropout": Float(0.0, 0.6),
                "batch_size": Choice((16, 32, 64, 128, 256)),
                "optimizer": Choice(("sgd", "adam", "rmsprop")),
            }
        )

    def curve(self, params: Mapping[str, Any], steps: np.ndarray) -> np.ndarray:
        """The noiseless error at ``steps``."""
        opt = str(params["optimizer"])
        batch = float(params["batch_size"])
        best_lr = {"sgd": 0.1, "adam": 2e-3, "rmsprop": 8e-4}[opt] * math.sqrt(batch / 64.0)
        u = math.log10(float(params["lr"]) / best_lr)  # decades away from the best learning rate
        cap = min(math.log2(float(params["width"]) / 16.0) / 5.0, 1.0)  # capacity in [0, 1]
        depth = int(params["depth"])
        drop = float(params["dropout"])
        wd = math.log10(float(params["weight_decay"]))
        final = (
            0.03
            + 0.05 * u * u
            + (0.6 * (u - 0.7) if u > 0.7 else 0.0)  # too high: training diverges to a poor plateau
            + 0.04 * (1.0 - cap) ** 2
            + 0.008 * (depth - 3) ** 2
            + 0.05 * (drop - 0.25) ** 2
            + 0.05 * drop * (1.0 - cap)  # dropout hurts narrow nets
            + 0.006 * (wd + 4.0) ** 2 / 4.0
            + {"sgd": 0.0, "adam": 0.004, "rmsprop": 0.012}[opt]
        )
        final = min(final, 0.9)
        # speed: high learning rates, small batches and adaptive optimizers converge faster
        tau = 6.0 * 10 ** (-0.6 * u) * (batch / 64.0) ** 0.5 * (0.5 if opt != "sgd" else 1.0) * (1 + 0.25 * (depth - 1))
        t = steps.astype(float)
        err = final + (0.9 - final) * (1.0 + t / tau) ** -1.5
        # late overfitting: wide nets with little regularisation get worse after a while
        overfit = 0.04 * cap * (1.0 - drop / 0.6) * (1.0 if wd < -4 else 0.3)
        t_over = 0.5 * self.max_steps
        err = err + overfit * np.clip((t - t_over) / self.max_steps, 0.0, None)
        return np.asarray(np.clip(err, 0.0, 1.0))

    def run(self, params: Mapping[str, Any], report: Report, seed: int) -> float:
        params = self.space.validate(params)
        steps = np.arange(1, self.max_steps + 1)
        values = self.curve(params, steps)
        if self.noise > 0:
            key = zlib.crc32(repr(sorted((k, repr(v)) for k, v in params.items())).encode())
            rng = np.random.default_rng([seed, key])
            values = np.clip(values + self.noise * rng.standard_normal(values.shape), 0.0, 1.0)
        value = float(values[0])
        for step, v in zip(steps, values, strict=True):
            value = float(v)
            if report(int(step), value):
                break
        return value

    def score(self, params: Mapping[str, Any], observed: float) -> float:
        """The noiseless final error (the observed one carries noise)."""
        return self.final_value(params)

    def final_value(self, params: Mapping[str, Any], seed: int = 0) -> float:
        """The noiseless error after ``max_steps``."""
        return float(self.curve(params, np.array([self.max_steps]))[0])


def _torch_problem(name: str, max_steps: int | None = None) -> CurveProblem:
    from selftune.benchmarks import curves_torch

    return curves_torch.get(name, max_steps)


def _synthetic(max_steps: int | None = None) -> CurveProblem:
    return SyntheticCurves() if max_steps is None else SyntheticCurves(max_steps=max_steps)


#: name → factory taking an optional ``max_steps``
CURVE_PROBLEMS: dict[str, Callable[[int | None], CurveProblem]] = {
    "synthetic-curves": _synthetic,
    "digits-mlp": functools.partial(_torch_problem, "digits-mlp"),
    "digits-cnn": functools.partial(_torch_problem, "digits-cnn"),
}


def get_curve_problem(name: str, max_steps: int | None = None) -> CurveProblem:
    """A learning-curve problem by name (see :data:`CURVE_PROBLEMS`), optionally with another ``max_steps``."""
    try:
        factory = CURVE_PROBLEMS[name]
    except KeyError:
        from selftune.exceptions import InvalidParameterError

        raise InvalidParameterError(
            f"unknown curve problem {name!r}; expected one of {sorted(CURVE_PROBLEMS)}"
        ) from None
    return factory(max_steps)
