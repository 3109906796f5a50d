"""Population based training of a PyTorch MLP on scikit-learn's digits (a couple of minutes on 2 CPU cores).

    pip install -e '.[examples,torch]'
    python examples/pbt_digits.py

Eight members train together. Every 2 epochs each one pauses (saving a checkpoint); the bottom quarter take
over the weights of a top-quarter member and explore its learning rate and weight decay (×0.8 or ×1.2,
clipped to the bounds, or resampled). The result is a *schedule*: the learning rate and weight decay by
epoch. Then the honest part: the best member's schedule is replayed on test seeds it was never tuned on and
scored on a held-out test split, next to the best member's first configuration kept constant.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import selftune  # noqa: E402

EPOCHS = int(os.environ.get("SELFTUNE_EXAMPLE_EPOCHS", "24"))
POPULATION = int(os.environ.get("SELFTUNE_EXAMPLE_POPULATION", "8"))
TEST_SEEDS = int(os.environ.get("SELFTUNE_EXAMPLE_TEST_SEEDS", "5"))

X, y = load_digits(return_X_y=True)
X_rest, X_test, y_rest, y_test = train_test_split(X / 16.0, y, test_size=0.2, stratify=y, random_state=0)
X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=0)
data = {k: torch.tensor(v, dtype=torch.float32 if k.startswith("X") else torch.int64) for k, v in
        {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "X_test": X_test, "y_test": y_test}.items()}


def error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) != y).float().mean().item()


def train(trial: selftune.Trial, split: str) -> float:
    lr = trial.float("lr", 1e-4, 0.3, log=True)  # PBT may change these two while the model trains
    weight_decay = trial.float("weight_decay", 1e-6, 1e-1, log=True)
    width = trial.int("width", 32, 256, log=True)  # these stay as first sampled: they shape the weights
    torch.manual_seed(trial.seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    start = 1
    state = trial.load_checkpoint()  # None at first; after an exploit, the weights of the member it copied
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = trial.resume_step + 1
    for group in opt.param_groups:  # the values in force now (an exploit changes them)
        group["lr"], group["weight_decay"] = lr, weight_decay
    for epoch in range(start, EPOCHS + 1):
        torch.manual_seed(trial.seed * 1000 + epoch)  # pausing and resuming changes nothing
        model.train()
        for idx in torch.randperm(len(data["X_train"])).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data["X_train"][idx]), data["y_train"][idx]).backward()
            opt.step()
        trial.report(error(model, data["X_val"], data["y_val"]), epoch)
        if trial.should_stop():  # a ready point: save, and give the worker back
            trial.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict()}, step=epoch)
            raise selftune.StopTrial()
    return error(model, data[f"X_{split}"], data[f"y_{split}"])


def objective(trial: selftune.Trial) -> float:
    """Tuning: the validation error."""
    return train(trial, "val")


def test_objective(trial: selftune.Trial) -> float:
    """Reporting: the held-out test error."""
    return train(trial, "test")


if __name__ == "__main__":
    torch.set_num_threads(1)
    pbt = selftune.PopulationBasedTraining(
        population_size=POPULATION, interval=2, hyperparams=["lr", "weight_decay"], max_step=EPOCHS, seed=0
    )
    study = selftune.create_study(
        "digits-mlp-pbt", storage="sqlite:///selftune.db", scheduler=pbt, sampler=selftune.RandomSampler(seed=0)
    )
    study.optimize(objective, trials=POPULATION)
    best = study.best
    print(f"best member: trial {best.number}, validation error {best.value:.4f}")
    print("its schedule (from epoch: lr, weight decay):")
    for start, params in best.schedule:
        print(f"  epoch {max(start, 1):>3}: lr {params['lr']:.4g}, weight decay {params['weight_decay']:.3g}")
    for e in best.lineage:
        print(f"  lineage: at epoch {e.step} it took over trial {e.source} at epoch {e.source_step}")
    schedule, constant = selftune.protocol.evaluate(
        test_objective, [best, best.schedule.at(0)], seeds=TEST_SEEDS, tuning_seeds=range(POPULATION)
    )
    print(f"test error, the learned schedule:              {schedule}")
    print(f"test error, the schedule's first config fixed: {constant}")
