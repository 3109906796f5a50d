"""Learning-curve problems that really train small PyTorch networks on scikit-learn's digits.

The data are scikit-learn's bundled ``load_digits()`` (1797 8x8 grey images, 10 classes; nothing is
downloaded), scaled to ``[0, 1]`` and split once, stratified, with a fixed seed into 60% train, 20%
validation and 20% test. The split is built lazily and cached per process, so constructing a problem is
cheap, and importing this module imports neither torch nor scikit-learn.

A step is one epoch over the training split; after it the validation error rate (fraction misclassified)
is reported. Both problems share the hyperparameter names of ``synthetic-curves``: ``lr``,
``weight_decay``, ``width``, ``depth``, ``dropout``, ``batch_size``, ``optimizer`` (SGD uses momentum 0.9).

``digits-mlp`` (:class:`DigitsMLP`)
    ``depth`` hidden layers of ``width`` ReLU units, dropout after each. About 0.05 s an epoch on one core.
``digits-cnn`` (:class:`DigitsCNN`)
    ``depth`` 3x3 convolution blocks of ``width`` channels (2x2 max pooling after the first two), dropout,
    then a linear classifier. A few tenths of a second an epoch on one core.

Runs are deterministic given ``seed`` (initialisation, shuffling and dropout), on one CPU thread. A run
whose loss stops being finite has diverged: it reports :data:`DIVERGED_ERROR` from then on without
training further, so no NaN is ever reported. :meth:`TorchCurveProblem.test_error` scores a configuration
on the held-out test split.
"""

from __future__ import annotations

import math
import threading
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selftune._imports import require
from selftune.benchmarks.curves import CurveProblem, Report
from selftune.exceptions import InvalidParameterError
from selftune.space import Choice, Float, Int, Space

if TYPE_CHECKING:
    import torch

    from selftune.trial import Trial

__all__ = [
    "TorchCurveProblem",
    "DigitsMLP",
    "DigitsCNN",
    "get",
    "TORCH_CURVE_PROBLEMS",
    "DIVERGED_ERROR",
    "PBT_HYPERPARAMS",
]

#: the hyperparameters population based training may change while the network trains (not its shape)
PBT_HYPERPARAMS = ("lr", "weight_decay", "dropout", "batch_size")

#: The error reported at every step from the one where training diverged (chance level for 10 classes).
DIVERGED_ERROR = 0.9
#: The seed of the train / validation / test split (fixed: every run sees the same split).
SPLIT_SEED = 0
_VALID_FRACTION = 0.2
_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class _Digits:
    """The digits split as float32 images ``(n, 1, 8, 8)`` in ``[0, 1]`` and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


_DATA: _Digits | None = None
_DATA_LOCK = threading.Lock()


def _torch() -> Any:
    """torch, imported now (raises :class:`MissingDependencyError` naming the extra if it is missing)."""
    return require("torch", "torch")


def _digits() -> _Digits:
    """The cached split (built on first use)."""
    global _DATA
    with _DATA_LOCK:
        if _DATA is None:
            torch = _torch()
            datasets = require("sklearn.datasets", "examples")
            model_selection = require("sklearn.model_selection", "examples")
            x, y = datasets.load_digits(return_X_y=True)
            x = (x / 16.0).astype("float32").reshape(-1, 1, 8, 8)
            y = y.astype("int64")
            x_rest, x_test, y_rest, y_test = model_selection.train_test_split(
                x, y, test_size=_TEST_FRACTION, stratify=y, random_state=SPLIT_SEED
            )
            x_train, x_valid, y_train, y_valid = model_selection.train_test_split(
                x_rest,
                y_rest,
                test_size=_VALID_FRACTION / (1.0 - _TEST_FRACTION),
                stratify=y_rest,
                random_state=SPLIT_SEED,
            )
            _DATA = _Digits(
                *(torch.from_numpy(a.copy()) for a in (x_train, y_train, x_valid, y_valid, x_test, y_test))
            )
        return _DATA


def _space(width_low: int, width_high: int) -> Space:
    return Space(
        {
            "lr": Float(1e-4, 1.0, log=True),
            "weight_decay": Float(1e-6, 1e-1, log=True),
            "width": Int(width_low, width_high, log=True),
            "depth": Int(1, 3),
            "dropout": Float(0.0, 0.6),
            "batch_size": Choice((16, 32, 64, 128)),
            "optimizer": Choice(("sgd", "adam", "rmsprop")),
        }
    )


def _error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, bool]:
    """The fraction of ``x`` misclassified, and whether the network's outputs were all finite.

    Non-finite outputs mean the network diverged: the error is then :data:`DIVERGED_ERROR`.
    """
    torch = _torch()
    model.eval()
    with torch.no_grad():
        logits = model(x)
    if not bool(torch.isfinite(logits).all()):
        return DIVERGED_ERROR, False
    return int((logits.argmax(dim=1) != y).sum().item()) / len(y), True


class TorchCurveProblem(CurveProblem):
    """A network trained on the digits' training split, one epoch a step (see the module docstring)."""

    #: bounds of the ``width`` parameter (set by subclasses)
    width_range: tuple[int, int]

    def __init__(self, max_steps: int = 27) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise InvalidParameterError(f"`max_steps` must be an integer >= 1, got {max_steps!r}")
        self.max_steps = max_steps
        self._space = _space(*self.width_range)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_steps={self.max_steps})"

    @property
    def space(self) -> Space:
        return self._space

    @abstractmethod
    def build(self, params: Mapping[str, Any]) -> torch.nn.Module:
        """The untrained network for ``params`` (validated), initialised from torch's global generator."""

    def run(self, params: Mapping[str, Any], report: Report, seed: int) -> float:
        value, _ = self._train(params, report, seed, test=False)
        return value

    def final_value(self, params: Mapping[str, Any], seed: int = 0) -> float:
        """The validation error after ``max_steps`` epochs (what :meth:`run` ends with)."""
        return self.run(params, lambda step, value: False, seed)

    def test_error(self, params: Mapping[str, Any], seed: int = 0) -> float:
        """Train ``max_steps`` epochs and return the error on the held-out test split.

        Scores a recommended configuration honestly: the test split is never reported to an optimiser.
        """
        _, test = self._train(params, lambda step, value: False, seed, test=True)
        assert test is not None
        return test

    def _train(
        self, params: Mapping[str, Any], report: Report, seed: int, *, test: bool
    ) -> tuple[float, float | None]:
        """Train, reporting the validation error after each epoch; return it and (if asked) the test error."""
        torch = _torch()
        p = self._space.validate(params)
        data = _digits()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):  # leave the caller's global generator alone
                torch.manual_seed(seed)
                model = self.build(p)
                optimizer = _optimizer(torch, model, p)
                shuffle = torch.Generator().manual_seed(seed)
                batch = int(p["batch_size"])
                diverged = False
                value = DIVERGED_ERROR
                for step in range(1, self.max_steps + 1):
                    if not diverged:
                        diverged = _epoch(torch, model, optimizer, data, batch, shuffle)
                        if not diverged:
                            value, finite = _error(model, data.x_valid, data.y_valid)
                            diverged = not finite
                        if diverged:
                            value = DIVERGED_ERROR
                    if report(step, value):
                        break
                test_value = None
                if test:
                    test_value = DIVERGED_ERROR if diverged else _error(model, data.x_test, data.y_test)[0]
                return value, test_value
        finally:
            torch.set_num_threads(threads)


    def pbt_objective(self, metric: str = "valid") -> Callable[[Trial], float]:
        """An objective for population based training (and any scheduler that pauses): it resumes from
        ``trial.load_checkpoint()``, reads ``lr``, ``weight_decay``, ``dropout`` and ``batch_size`` afresh
        each time it starts (an exploit may have changed them), and saves a checkpoint when told to pause.

        Each epoch's shuffling and dropout are seeded from ``(trial.seed, epoch)``, so a run is the same
        whether or not it was paused. Reports the validation error; returns it, or the test error with
        ``metric="test"`` (for :func:`selftune.protocol.evaluate`).
        """
        if metric not in ("valid", "test"):
            raise InvalidParameterError(f"`metric` must be 'valid' or 'test', got {metric!r}")

        def objective(trial: Trial) -> float:
            from selftune.exceptions import StopTrial

            torch = _torch()
            p = {name: trial.suggest(name, param) for name, param in self._space.items()}
            data = _digits()
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(trial.seed)
                    model = self.build(p)
                    optimizer = _optimizer(torch, model, p)
                    state = trial.load_checkpoint()
                    start, value, diverged = 1, DIVERGED_ERROR, False
                    if state is not None:
                        model.load_state_dict(state["model"])
                        optimizer.load_state_dict(state["optimizer"])
                        start, value, diverged = int(state["step"]) + 1, float(state["value"]), bool(state["diverged"])
                    for group in optimizer.param_groups:  # the current values (an exploit may change them)
                        group["lr"], group["weight_decay"] = float(p["lr"]), float(p["weight_decay"])
                    for m in model.modules():
                        if isinstance(m, torch.nn.Dropout):
                            m.p = float(p["dropout"])
                    for step in range(start, self.max_steps + 1):
                        if not diverged:
                            torch.manual_seed(trial.seed * 100_003 + step)
                            diverged = _epoch(torch, model, optimizer, data, int(p["batch_size"]))
                            if not diverged:
                                value, finite = _error(model, data.x_valid, data.y_valid)
                                diverged = not finite
                            if diverged:
                                value = DIVERGED_ERROR
                        trial.report(value, step)
                        if trial.should_stop():
                            trial.save_checkpoint(
                                {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "step": step, "value": value, "diverged": diverged},
                                step=step,
                            )
                            raise StopTrial()
                    if metric == "test":
                        return DIVERGED_ERROR if diverged else _error(model, data.x_test, data.y_test)[0]
                    return value
            finally:
                torch.set_num_threads(threads)

        return objective


def _epoch(
    torch: Any, model: torch.nn.Module, optimizer: Any, data: _Digits, batch: int, generator: Any = None
) -> bool:
    """One epoch over the training split in an order drawn from ``generator`` (default: torch's global one);
    True if the loss stopped being finite."""
    loss_fn = torch.nn.functional.cross_entropy
    model.train()
    n = len(data.y_train)
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch):
        idx = order[start : start + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        if not math.isfinite(float(loss.item())):
            return True
        loss.backward()
        optimizer.step()
    return False


def _optimizer(torch: Any, model: torch.nn.Module, p: Mapping[str, Any]) -> torch.optim.Optimizer:
    lr, wd, name = float(p["lr"]), float(p["weight_decay"]), str(p["optimizer"])
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(model.parameters(), lr=lr, weight_decay=wd)


class DigitsMLP(TorchCurveProblem):
    """``depth`` hidden ReLU layers of ``width`` units (16..256) with dropout, on the flattened 8x8 digits."""

    name = "digits-mlp"
    width_range = (16, 256)

    def build(self, params: Mapping[str, Any]) -> torch.nn.Module:
        nn = _torch().nn
        width, drop = int(params["width"]), float(params["dropout"])
        layers: list[Any] = [nn.Flatten()]
        fan_in = 64
        for _ in range(int(params["depth"])):
            layers += [nn.Linear(fan_in, width), nn.ReLU(), nn.Dropout(drop)]
            fan_in = width
        layers.append(nn.Linear(fan_in, 10))
        return nn.Sequential(*layers)


class DigitsCNN(TorchCurveProblem):
    """``depth`` blocks of 3x3 convolution (``width`` channels, 4..64) and ReLU, 2x2 max pooling after the
    first two blocks (8x8 → 4x4 → 2x2), then dropout and a linear classifier."""

    name = "digits-cnn"
    width_range = (4, 64)

    def build(self, params: Mapping[str, Any]) -> torch.nn.Module:
        nn = _torch().nn
        width, depth = int(params["width"]), int(params["depth"])
        layers: list[Any] = []
        channels, side = 1, 8
        for block in range(depth):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU()]
            if block < 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            channels = width
        layers += [nn.Flatten(), nn.Dropout(float(params["dropout"])), nn.Linear(channels * side * side, 10)]
        return nn.Sequential(*layers)


#: name → class
TORCH_CURVE_PROBLEMS: dict[str, type[TorchCurveProblem]] = {
    DigitsMLP.name: DigitsMLP,
    DigitsCNN.name: DigitsCNN,
}


def get(name: str, max_steps: int | None = None) -> CurveProblem:
    """The PyTorch curve problem called ``name`` (``max_steps`` defaults to the class's)."""
    try:
        cls = TORCH_CURVE_PROBLEMS[name]
    except KeyError:
        raise InvalidParameterError(
            f"unknown PyTorch curve problem {name!r}; expected one of {sorted(TORCH_CURVE_PROBLEMS)}"
        ) from None
    return cls() if max_steps is None else cls(max_steps)
