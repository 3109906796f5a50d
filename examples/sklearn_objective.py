"""Tune an SVC on scikit-learn's bundled digits data set (3-fold cross-validated accuracy).

Works both ways:

- with a declared space (``examples/spec.yaml``): ``trial.params`` already holds C, kernel and gamma;
- define-by-run: the objective defines the same parameters itself.

Run it from the command line with ``selftune run examples/spec.yaml``, or as a script::

    python examples/sklearn_objective.py
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_SAMPLES = 600  # a stratified-enough random subsample keeps a trial well under a second


@lru_cache(maxsize=1)
def _data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(y))[:N_SAMPLES]
    return X[idx] / 16.0, y[idx]


def objective(trial) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    params = trial.params
    if params:  # a declared space chose every active parameter already
        C = params["C"]
        kernel = params["kernel"]
        gamma = params.get("gamma", "scale")
    else:  # define-by-run: the same domains as examples/spec.yaml
        C = trial.float("C", 1e-3, 1e3, log=True)
        kernel = trial.choice("kernel", ["rbf", "linear"])
        gamma = trial.float("gamma", 1e-4, 1.0, log=True) if kernel == "rbf" else "scale"
    X, y = _data()
    model = SVC(C=C, kernel=kernel, gamma=gamma)
    return float(cross_val_score(model, X, y, cv=3, n_jobs=1).mean())


if __name__ == "__main__":
    import selftune

    study = selftune.create_study(
        "digits-svm-script", storage="memory", direction="maximize", sampler=selftune.SobolSampler(seed=0)
    )
    study.optimize(objective, trials=20)
    print(f"best accuracy {study.best_value:.4f} with {study.best_params}")
