"""The PyTorch learning-curve problems on scikit-learn's digits (``digits-mlp``, ``digits-cnn``).

Fast: a few epochs of small networks on one thread. Skipped when torch or scikit-learn is not installed.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import selftune  # noqa: E402
from selftune.benchmarks import curves_torch  # noqa: E402
from selftune.benchmarks.curves import CurveProblem, get_curve_problem  # noqa: E402
from selftune.benchmarks.curves_torch import DIVERGED_ERROR, DigitsCNN, DigitsMLP, get  # noqa: E402
from selftune.exceptions import InvalidParameterError  # noqa: E402
from selftune.schedulers import ASHAScheduler  # noqa: E402
from selftune.space import Choice, Float, Int  # noqa: E402

GOOD: dict[str, Any] = {
    "lr": 3e-3,
    "weight_decay": 1e-5,
    "width": 64,
    "depth": 2,
    "dropout": 0.1,
    "batch_size": 64,
    "optimizer": "adam",
}
CNN_GOOD = {**GOOD, "width": 16, "depth": 2}


def curve(problem: CurveProblem, params: Mapping[str, Any], seed: int = 0, stop_at: int | None = None) -> list[
    tuple[int, float]
]:
    """Every ``(step, value)`` that ``run`` reported; ``report`` returns True at step ``stop_at``."""
    seen: list[tuple[int, float]] = []

    def report(step: int, value: float) -> bool:
        seen.append((step, value))
        return step == stop_at

    last = problem.run(params, report, seed)
    assert seen and last == seen[-1][1]
    return seen


@pytest.mark.parametrize("cls", [DigitsMLP, DigitsCNN])
def test_space_declares_the_seven_parameters(cls: type[DigitsMLP]) -> None:
    space = cls().space
    assert list(space) == ["lr", "weight_decay", "width", "depth", "dropout", "batch_size", "optimizer"]
    kinds = {name: type(param) for name, param in space.items()}
    assert kinds == {
        "lr": Float,
        "weight_decay": Float,
        "width": Int,
        "depth": Int,
        "dropout": Float,
        "batch_size": Choice,
        "optimizer": Choice,
    }
    lr, wd, width, opt = space["lr"], space["weight_decay"], space["width"], space["optimizer"]
    assert isinstance(lr, Float) and isinstance(wd, Float) and isinstance(width, Int)
    assert lr.log and wd.log and width.log
    assert isinstance(opt, Choice) and tuple(opt.choices) == ("sgd", "adam", "rmsprop")
    assert cls().max_steps == 27 and cls(max_steps=5).max_steps == 5


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_max_steps_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(InvalidParameterError, match="max_steps"):
        DigitsMLP(max_steps=bad)


@pytest.mark.parametrize("problem", [DigitsMLP(max_steps=4), DigitsCNN(max_steps=3)], ids=repr)
def test_run_reports_every_step_in_order(problem: CurveProblem) -> None:
    params = CNN_GOOD if isinstance(problem, DigitsCNN) else GOOD
    seen = curve(problem, params)
    assert [s for s, _ in seen] == list(range(1, problem.max_steps + 1))
    assert all(0.0 <= v <= 1.0 for _, v in seen)


def test_run_stops_right_after_report_says_so() -> None:
    seen = curve(DigitsMLP(max_steps=10), GOOD, stop_at=3)
    assert [s for s, _ in seen] == [1, 2, 3]


def test_same_seed_same_curve_other_seed_other_curve() -> None:
    problem = DigitsMLP(max_steps=3)
    params = {**GOOD, "dropout": 0.3}
    assert curve(problem, params, seed=0) == curve(problem, params, seed=0)
    assert curve(problem, params, seed=0) != curve(problem, params, seed=1)


def test_run_leaves_global_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    curve(DigitsMLP(max_steps=1), GOOD)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_a_good_mlp_learns_the_digits() -> None:
    problem = DigitsMLP(max_steps=10)
    values = [v for _, v in curve(problem, GOOD)]
    assert values[-1] < 0.15
    assert values[-1] < values[0]
    assert problem.final_value(GOOD) == values[-1]
    assert 0.0 <= problem.test_error(GOOD) < 0.2


def test_a_good_cnn_learns_the_digits() -> None:
    values = [v for _, v in curve(DigitsCNN(max_steps=5), CNN_GOOD)]
    assert values[-1] < 0.2


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_crazy_learning_rates_never_report_nan(optimizer: str) -> None:
    params = {**GOOD, "lr": 1.0, "weight_decay": 1e-6, "width": 256, "depth": 3, "batch_size": 16}
    seen = curve(DigitsMLP(max_steps=3), {**params, "optimizer": optimizer})
    assert len(seen) == 3
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for _, v in seen)


class _Exploding(DigitsMLP):
    """An MLP whose output layer starts at NaN: the loss is NaN from the first batch."""

    def build(self, params: Mapping[str, Any]) -> Any:
        model = super().build(params)
        with torch.no_grad():
            [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].weight.fill_(float("nan"))
        return model


def test_a_diverged_run_reports_the_diverged_error_and_goes_on() -> None:
    problem = _Exploding(max_steps=3)
    assert curve(problem, GOOD) == [(1, DIVERGED_ERROR), (2, DIVERGED_ERROR), (3, DIVERGED_ERROR)]
    assert problem.test_error(GOOD) == DIVERGED_ERROR


def test_params_are_validated_against_the_space() -> None:
    with pytest.raises(InvalidParameterError, match="width"):
        curve(DigitsMLP(max_steps=1), {**GOOD, "width": 1000})
    with pytest.raises(InvalidParameterError, match="missing"):
        curve(DigitsMLP(max_steps=1), {k: v for k, v in GOOD.items() if k != "depth"})


def test_get_by_name() -> None:
    assert isinstance(get("digits-mlp"), DigitsMLP)
    assert isinstance(get("digits-cnn"), DigitsCNN)
    assert get("digits-cnn", max_steps=4).max_steps == 4
    with pytest.raises(InvalidParameterError, match="digits-cnn.*digits-mlp"):
        get("nope")
    problem = get_curve_problem("digits-mlp")
    assert isinstance(problem, DigitsMLP) and problem.name == "digits-mlp"
    assert isinstance(get_curve_problem("digits-cnn"), DigitsCNN)


def test_importing_the_module_imports_neither_torch_nor_sklearn() -> None:
    code = (
        "import sys, selftune.benchmarks.curves_torch as m; m.DigitsMLP(); "
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_split_is_fixed_stratified_and_scaled() -> None:
    data = curves_torch._digits()
    assert curves_torch._digits() is data  # cached
    sizes = [len(data.y_train), len(data.y_valid), len(data.y_test)]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 360
    for x in (data.x_train, data.x_valid, data.x_test):
        assert x.shape[1:] == (1, 8, 8) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for y in (data.y_valid, data.y_test):
        counts = torch.bincount(y, minlength=10)
        assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # ~36 of each class


def test_asha_study_end_to_end() -> None:
    problem = DigitsMLP(max_steps=4)
    study = selftune.create_study(
        storage="memory",
        space=problem.space,
        sampler=selftune.RandomSampler(seed=0),
        scheduler=ASHAScheduler(min_resource=1, reduction_factor=3),
    )
    study.optimize(problem.objective(seed=0), trials=6, progress=False)
    trials = study.trials
    assert len(trials) == 6
    states = {t.state for t in trials}
    assert selftune.TrialState.STOPPED in states
    assert states <= {selftune.TrialState.STOPPED, selftune.TrialState.COMPLETE}
    for t in trials:
        steps = sorted(t.intermediate)
        assert steps == list(range(1, len(steps) + 1))
        assert all(0.0 <= v <= 1.0 for v in t.intermediate.values())
        if t.state is selftune.TrialState.COMPLETE:
            assert steps[-1] == problem.max_steps and t.value == t.intermediate[problem.max_steps]
