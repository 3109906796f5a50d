"""Bayesmark-style scikit-learn HPO problems on the data sets bundled with scikit-learn (group ``sklearn``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selftune.benchmarks.problems import Problem
from selftune.space import Choice, Float, Int, Space

__all__ = ["SklearnProblem", "CLASSIFICATION_DATASETS", "REGRESSION_DATASETS", "SKLEARN_MODELS"]

CLASSIFICATION_DATASETS = ("digits", "breast_cancer", "wine", "iris")
REGRESSION_DATASETS = ("diabetes",)
SKLEARN_MODELS = ("mlp", "svm", "rf", "linear")
_DATA_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}
#: digits is subsampled so that one evaluation stays well under a second
_MAX_ROWS = 500


def _load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    if dataset not in _DATA_CACHE:
        from sklearn import datasets

        loader = getattr(datasets, f"load_{dataset}")
        X, y = loader(return_X_y=True)
        X = np.asarray(X, dtype=float)
        if dataset in REGRESSION_DATASETS:
            y = (y - y.mean()) / y.std()
        if len(X) > _MAX_ROWS:
            idx = np.random.default_rng(0).permutation(len(X))[:_MAX_ROWS]
            X, y = X[idx], y[idx]
        _DATA_CACHE[dataset] = (X, y)
    return _DATA_CACHE[dataset]


def _sklearn_space(model: str, regression: bool) -> Space:
    if model == "mlp":
        return Space(
            {
                "hidden": Int(8, 64, log=True),
                "alpha": Float(1e-6, 1e-1, log=True),
                "learning_rate_init": Float(1e-4, 1e-1, log=True),
                "batch_size": Int(32, 256, log=True),
                "activation": Choice(["relu", "tanh"]),
            }
        )
    if model == "svm":
        params: dict[str, Any] = {
            "C": Float(1e-3, 1e3, log=True),
            "kernel": Choice(["rbf", "poly", "linear"]),
            "gamma": Float(1e-4, 1e1, log=True, when={"kernel": ["rbf", "poly"]}),
            "degree": Int(2, 4, when={"kernel": "poly"}),
        }
        if regression:
            params["epsilon"] = Float(1e-3, 1.0, log=True)
        return Space(params)
    if model == "rf":
        return Space(
            {
                "n_estimators": Int(8, 64, log=True),
                "max_depth": Int(2, 16),
                "min_samples_leaf": Int(1, 16, log=True),
                "max_features": Float(0.1, 1.0),
            }
        )
    if model == "linear":
        if regression:
            return Space(
                {
                    "alpha": Float(1e-5, 1e1, log=True),
                    "l1_ratio": Float(0.0, 1.0),
                    "fit_intercept": Choice([True, False]),
                }
            )
        return Space(
            {
                "C": Float(1e-4, 1e3, log=True),
                "l1_ratio": Float(0.0, 1.0),
                "class_weight": Choice([None, "balanced"]),
            }
        )
    raise ValueError(f"unknown model {model!r}")


def _estimator(model: str, regression: bool, p: Mapping[str, Any]) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "mlp":
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        cls = MLPRegressor if regression else MLPClassifier
        est = cls(
            hidden_layer_sizes=(int(p["hidden"]),),
            alpha=float(p["alpha"]),
            learning_rate_init=float(p["learning_rate_init"]),
            batch_size=int(p["batch_size"]),
            activation=p["activation"],
            max_iter=20,
            random_state=0,
        )
    elif model == "svm":
        from sklearn.svm import SVC, SVR

        kw: dict[str, Any] = {"C": float(p["C"]), "kernel": p["kernel"], "max_iter": 20000}
        if "gamma" in p:
            kw["gamma"] = float(p["gamma"])
        if "degree" in p:
            kw["degree"] = int(p["degree"])
        est = SVR(epsilon=float(p["epsilon"]), **kw) if regression else SVC(**kw)
    elif model == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if regression else RandomForestClassifier
        est = cls(
            n_estimators=int(p["n_estimators"]),
            max_depth=int(p["max_depth"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            max_features=float(p["max_features"]),
            random_state=0,
            n_jobs=1,
        )
        return est  # trees need no scaling
    else:
        if regression:
            from sklearn.linear_model import ElasticNet

            est = ElasticNet(
                alpha=float(p["alpha"]),
                l1_ratio=float(p["l1_ratio"]),
                fit_intercept=bool(p["fit_intercept"]),
                max_iter=2000,
                random_state=0,
            )
        else:
            from sklearn.linear_model import LogisticRegression

            est = LogisticRegression(
                C=float(p["C"]),
                l1_ratio=float(p["l1_ratio"]),
                class_weight=p["class_weight"],
                solver="saga",
                max_iter=50,
                random_state=0,
            )
    return make_pipeline(StandardScaler(), est)


@dataclass(repr=False)
class SklearnProblem(Problem):
    """Tune ``model`` on ``dataset``: 3-fold cross-validated error (or MSE), deterministic in the parameters."""

    model: str
    dataset: str
    name: str = ""
    group: str = "sklearn"
    budget: int = 0
    _space: Space | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.model not in SKLEARN_MODELS:
            raise ValueError(f"model must be one of {SKLEARN_MODELS}, got {self.model!r}")
        if self.dataset not in CLASSIFICATION_DATASETS + REGRESSION_DATASETS:
            raise ValueError(f"unknown data set {self.dataset!r}")
        self.name = self.name or f"sklearn-{self.model}-{self.dataset}"
        self.budget = self.budget or 10 * len(self.space) + 20

    @property
    def regression(self) -> bool:
        return self.dataset in REGRESSION_DATASETS

    @property
    def space(self) -> Space:
        if self._space is None:
            self._space = _sklearn_space(self.model, self.regression)
        return self._space

    def evaluate(self, params: Mapping[str, Any]) -> float:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

        X, y = _load(self.dataset)
        est = _estimator(self.model, self.regression, params)
        if self.regression:
            cv: Any = KFold(3, shuffle=True, random_state=0)
            scoring = "neg_mean_squared_error"
        else:
            cv = StratifiedKFold(3, shuffle=True, random_state=0)
            scoring = "accuracy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = cross_val_score(est, X, y, cv=cv, scoring=scoring, n_jobs=1, error_score=np.nan)
        score = float(np.mean(scores))
        if not math.isfinite(score):
            return 1.0 if not self.regression else 10.0  # a diverged fit: worse than any sensible model
        value = -score if self.regression else 1.0 - score
        return float(min(value, 10.0))


