"""Tune a PyTorch MLP on scikit-learn's digits with ASHA early stopping (about a minute on 2 CPU cores).

    pip install -e '.[examples,torch]'
    python examples/mlp_asha.py

Each trial trains for up to 27 epochs and reports the validation error after each; ASHA stops the worst
two thirds at epochs 1, 3 and 9, and TPE proposes new configurations from the highest epoch with enough data.
The study lives in selftune.db: rerun the script and it resumes to the same budget.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import selftune  # noqa: E402
from selftune.schedulers import ASHAScheduler  # noqa: E402

EPOCHS = 27
X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)
X_train, X_val = torch.tensor(X_train, dtype=torch.float32), torch.tensor(X_val, dtype=torch.float32)
y_train, y_val = torch.tensor(y_train), torch.tensor(y_val)


def objective(trial: selftune.Trial) -> float:
    lr = trial.float("lr", 1e-4, 1e-1, log=True)
    width = trial.int("width", 16, 256, log=True)
    depth = trial.int("depth", 1, 3)
    dropout = trial.float("dropout", 0.0, 0.5)
    batch = trial.choice("batch_size", [16, 32, 64, 128])
    torch.manual_seed(trial.number)
    layers: list[torch.nn.Module] = []
    size = 64
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        size = width
    model = torch.nn.Sequential(*layers, torch.nn.Linear(size, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    error = 1.0
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for idx in torch.randperm(len(X_train)).split(batch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X_train[idx]), y_train[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            error = (model(X_val).argmax(1) != y_val).float().mean().item()
        trial.report(error, epoch)
        if trial.should_stop():
            raise selftune.StopTrial()
    return error


if __name__ == "__main__":
    torch.set_num_threads(1)
    study = selftune.create_study(
        "digits-mlp-asha",
        storage="sqlite:///selftune.db",
        sampler=selftune.TPESampler(seed=0),
        scheduler=ASHAScheduler(min_resource=1, max_resource=EPOCHS, reduction_factor=3),
    )
    study.optimize(objective, trials=int(os.environ.get("SELFTUNE_EXAMPLE_TRIALS", "60")))
    stopped = sum(t.state is selftune.TrialState.STOPPED for t in study.trials)
    epochs = sum(len(t.intermediate) for t in study.trials)
    print(f"best validation error {study.best_value:.4f} with {study.best_params}")
    print(f"{stopped} of {len(study.trials)} trials stopped early; {epochs} epochs trained "
          f"(no early stopping: {len(study.trials) * EPOCHS})")
