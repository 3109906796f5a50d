"""Importances on synthetic functions whose importances are known, the exact fANOVA arithmetic, errors."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

import selftune
from selftune.analysis import METHODS, fanova_importance, importance, ped_anova_importance
from selftune.analysis.importance import _INACTIVE, _Measure, _tree_fractions
from selftune.exceptions import InvalidParameterError, MissingDependencyError, NoCompleteTrialError
from selftune.history import History
from selftune.space import Choice, Float, Int, Param, Space
from selftune.trial import TrialRecord, TrialState

UNIT3 = {f"x{i}": Float(0.0, 1.0) for i in range(3)}


def sample_history(
    f: Callable[[dict[str, Any]], float],
    params: Mapping[str, Param],
    *,
    n: int = 400,
    seed: int = 0,
    direction: str = "minimize",
    registered: bool = True,
) -> History:
    """``n`` uniform random points of the unit cube decoded into ``params`` (conditions respected)."""
    space = Space(dict(params))
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        p = space.decode(rng.random(len(space)))
        records.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=p, value=float(f(p))))
    return History(records, direction=direction, params=dict(params) if registered else None)


def linear(p: dict[str, Any]) -> float:
    return 10 * p["x0"] + 1 * p["x1"] + 0 * p["x2"]


@pytest.fixture(scope="module")
def linear_history() -> History:
    return sample_history(linear, UNIT3)


def assert_normalised(scores: dict[str, float]) -> None:
    assert math.isclose(sum(scores.values()), 1.0, rel_tol=1e-9)
    assert all(v >= 0 for v in scores.values())
    assert list(scores.values()) == sorted(scores.values(), reverse=True)


def test_fanova_linear_function_known_shares(linear_history: History) -> None:
    # Var(10 x0) : Var(x1) : Var(0 x2) = 100 : 1 : 0, so the true shares are 0.990, 0.0099, 0
    scores = fanova_importance(linear_history)
    assert_normalised(scores)
    assert list(scores) == ["x0", "x1", "x2"]
    assert scores["x0"] > 0.95
    assert 0.001 < scores["x1"] < 0.03
    assert scores["x2"] < 0.005


def test_ped_anova_linear_function_ranks_and_shares(linear_history: History) -> None:
    scores = ped_anova_importance(linear_history)
    assert_normalised(scores)
    assert list(scores) == ["x0", "x1", "x2"]
    assert scores["x0"] > 0.9
    assert scores["x2"] < 0.02


def test_methods_agree_on_the_ranking_and_dispatch(linear_history: History) -> None:
    by_method = {m: importance(linear_history, m) for m in METHODS}
    assert [list(s) for s in by_method.values()] == [["x0", "x1", "x2"]] * 2
    assert importance(linear_history, "PED_ANOVA") == by_method["ped-anova"]
    assert importance(linear_history) == by_method["fanova"]


def test_categorical_that_sets_the_value_dominates() -> None:
    level = {"a": 0.0, "b": 5.0, "c": 10.0, "d": 2.0}
    params = {"c": Choice(["a", "b", "c", "d"]), "x": Float(0.0, 1.0), "k": Int(1, 8)}
    h = sample_history(lambda p: level[p["c"]] + 0.1 * p["x"], params, n=300)
    fa = fanova_importance(h)
    pa = ped_anova_importance(h)
    assert list(fa)[0] == "c" and fa["c"] > 0.95 and fa["k"] < 0.01
    # PED-ANOVA: the top 10% are all "a" (divergence 3) and hold x < 0.4 (about 1.5)
    assert list(pa)[0] == "c" and pa["c"] > 0.6 and pa["k"] < 0.15  # k: sampling noise in 8 bins


def test_log_scaled_parameter_is_measured_in_log_space() -> None:
    # the value depends on log10(lr) only: in the unit cube (log space) lr explains it all
    params = {"lr": Float(1e-5, 1e-1, log=True), "x": Float(0.0, 1.0), "units": Int(1, 1024, log=True)}
    h = sample_history(lambda p: (math.log10(p["lr"]) + 3) ** 2 + 0.05 * p["x"], params, n=300)
    fa = fanova_importance(h)
    pa = ped_anova_importance(h)
    assert list(fa)[0] == "lr" and fa["lr"] > 0.95
    assert list(pa)[0] == "lr" and pa["lr"] > 0.7
    assert fa["units"] < 0.02


def test_conditional_parameters_use_an_inactive_state() -> None:
    params = {
        "opt": Choice(["adam", "sgd"]),
        "momentum": Float(0.0, 1.0, when={"opt": "sgd"}),
        "x": Float(0.0, 1.0),
    }

    def f(p: dict[str, Any]) -> float:  # adam: 1; sgd: 4 * momentum (0..4); x: a little
        return (4 * p["momentum"] if p["opt"] == "sgd" else 1.0) + 0.1 * p["x"]

    h = sample_history(f, params, n=300)
    for scores in (fanova_importance(h), ped_anova_importance(h)):
        assert_normalised(scores)
        assert set(scores) == set(params)
        assert list(scores)[-1] == "x"
        assert scores["momentum"] > 0.4


def test_fanova_is_deterministic_under_the_seed(linear_history: History) -> None:
    a = fanova_importance(linear_history, seed=3, n_trees=16)
    assert a == fanova_importance(linear_history, seed=3, n_trees=16)
    assert a != fanova_importance(linear_history, seed=4, n_trees=16)
    assert ped_anova_importance(linear_history) == ped_anova_importance(linear_history)


def test_direction_does_not_change_fanova_but_picks_the_top_for_ped_anova() -> None:
    lo = sample_history(linear, UNIT3, n=200)
    hi = sample_history(linear, UNIT3, n=200, direction="maximize")
    assert fanova_importance(lo, n_trees=16) == fanova_importance(hi, n_trees=16)
    assert list(ped_anova_importance(hi)) == ["x0", "x1", "x2"]  # the top is now x0 near 1


def test_params_subset_is_reported_renormalised(linear_history: History) -> None:
    for method in METHODS:
        scores = importance(linear_history, method, params=["x2", "x1"])
        assert set(scores) == {"x1", "x2"} and list(scores)[0] == "x1"
        assert_normalised(scores)


def test_constant_objective_gives_zeros() -> None:
    h = sample_history(lambda p: 1.0, UNIT3, n=30)
    for method in METHODS:
        assert set(importance(h, method).values()) == {0.0}


def test_domains_inferred_without_registered_params() -> None:
    params = {"c": Choice(["a", "b"]), "x": Float(0.0, 1.0)}
    h = sample_history(lambda p: (p["c"] == "b") * 3 + p["x"], params, n=200, registered=False)
    assert list(fanova_importance(h, n_trees=16)) == ["c", "x"]  # variance: 9/4 against 1/12
    # PED-ANOVA looks at the top 10%: all c == "a" (divergence 1), but also x < 0.2 (about 4)
    assert list(ped_anova_importance(h)) == ["x", "c"]


def test_exact_main_effects_on_a_discrete_domain() -> None:
    # on a finite product domain fANOVA is plain arithmetic: enumerate every point and compare
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    k = (3, 4, 5)
    atoms = [list((np.arange(m) + 0.5) / m) for m in k]
    atoms[2].append(_INACTIVE)  # feature 2 is conditional: inactive with weight 0.3
    weights = [np.full(3, 1 / 3), np.full(4, 1 / 4), np.r_[np.full(5, 0.7 / 5), 0.3]]
    X = np.column_stack([rng.choice(a, size=200) for a in atoms])
    y = np.sin(5 * X[:, 0]) + X[:, 1] * X[:, 2] + (X[:, 2] < 0) + rng.normal(0, 0.1, 200)
    tree = DecisionTreeRegressor(max_depth=6, random_state=0).fit(X, y)
    measures = [_Measure(0.0, np.array(a), w) for a, w in zip(atoms, weights, strict=True)]
    got = _tree_fractions(tree, measures, [0, 1, 2])
    assert got is not None

    grid = np.array(list(itertools.product(*atoms)))
    w = np.prod(np.array(list(itertools.product(*weights))), axis=1)
    f = tree.predict(grid)
    mean = w @ f
    total = w @ (f - mean) ** 2
    for j in range(3):
        effect = 0.0
        for a, wa in zip(atoms[j], weights[j], strict=True):
            on = grid[:, j] == a
            effect += wa * ((w[on] @ f[on]) / w[on].sum() - mean) ** 2
        assert got[j] == pytest.approx(effect / total, rel=1e-9, abs=1e-12)


def test_through_a_real_study() -> None:
    study = selftune.create_study(storage="memory", sampler=selftune.RandomSampler(seed=0))

    def objective(trial: selftune.Trial) -> float:
        x = trial.float("x", -5, 5)
        lr = trial.float("lr", 1e-4, 1.0, log=True)
        trial.choice("unused", ["a", "b"])
        if x > 4.5:
            raise ValueError("a failure")
        return x**2 + 0.1 * math.log10(lr) ** 2

    study.optimize(objective, trials=60, progress=False, catch=ValueError)
    study.tell(study.ask(), math.inf)  # a non-finite value is left out
    assert any(t.state is TrialState.FAILED for t in study.trials)
    for method in METHODS:
        scores = importance(study, method)
        assert set(scores) == {"x", "lr", "unused"} and list(scores)[0] == "x"
    study.close()


def test_errors(linear_history: History) -> None:
    empty = History([], params=UNIT3)
    one = History(linear_history.trials[:1], params=UNIT3)
    for method in METHODS:
        for h in (empty, one):
            with pytest.raises(NoCompleteTrialError, match="at least 2"):
                importance(h, method)
        with pytest.raises(InvalidParameterError, match="unknown parameter 'nope'"):
            importance(linear_history, method, params=["x0", "nope"])
        with pytest.raises(InvalidParameterError, match="list of parameter names"):
            importance(linear_history, method, params="x0")
        with pytest.raises(InvalidParameterError):
            importance(linear_history, method, params=[])
    with pytest.raises(InvalidParameterError, match="unknown importance method 'shap'"):
        importance(linear_history, "shap")
    with pytest.raises(InvalidParameterError, match="n_trees"):
        fanova_importance(linear_history, n_trees=0)
    with pytest.raises(InvalidParameterError, match="target_quantile"):
        ped_anova_importance(linear_history, target_quantile=1.5)
    with pytest.raises(TypeError):
        importance(linear_history, "ped-anova", seed=0)  # fANOVA's option
    with pytest.raises(TypeError, match="Study or History"):
        importance(object())


def test_fanova_names_the_extra_without_scikit_learn(
    linear_history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(MissingDependencyError, match=r"selftune\[examples\]"):
        fanova_importance(linear_history)
    assert ped_anova_importance(linear_history)  # needs no scikit-learn
