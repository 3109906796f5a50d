"""A toy problem whose optimal hyperparameter schedule is known, for the population based training tests.

The "model" is one number ``x`` that grows by ``h`` per step in the first half of training and by ``1 - h``
in the second: the best schedule is ``h = 1`` then ``h = 0`` (final value ``STEPS``), while the best constant
``h`` only reaches ``STEPS / 2``. Checkpoints are JSON bytes, and every save and load is logged in ``EVENTS``
so tests can check that an exploit takes over exactly the source's weights.
"""

from __future__ import annotations

import json
from typing import Any

import selftune

STEPS = 40
HALF = STEPS // 2
EVENTS: list[tuple[Any, ...]] = []


def gain(h: float, step: int) -> float:
    return h if step < HALF else 1.0 - h


def objective(trial: selftune.Trial) -> float:
    trial.float("h", 0.0, 1.0)
    x, start = 0.0, 0
    ck = trial.load_checkpoint()
    if ck is not None:
        state = json.loads(ck)
        EVENTS.append(("load", trial.number, state))
        x, start = state["x"], state["step"] + 1
        assert start == trial.resume_step + 1
    for step in range(start, STEPS):
        x += gain(trial.params["h"], step)
        trial.report(x, step)
        if trial.should_stop():
            state = {"x": x, "step": step, "owner": trial.number, "h": trial.params["h"]}
            trial.save_checkpoint(json.dumps(state).encode(), step=step)
            EVENTS.append(("save", trial.number, step, state))
            raise selftune.StopTrial()
    return x


def pbt(**kw: Any) -> selftune.PopulationBasedTraining:
    args: dict[str, Any] = {"population_size": 8, "interval": 4, "hyperparams": ["h"], "max_step": STEPS - 1, "seed": 3}
    args.update(kw)
    return selftune.PopulationBasedTraining(**args)
