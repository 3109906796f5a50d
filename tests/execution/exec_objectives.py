"""Objectives for the executor tests, importable by worker processes (module-level, picklable by reference).

Behaviour that must happen once (a crash, a hang) is keyed on a marker file in the directory named by the
environment variable ``EXEC_MARKERS``: the first attempt creates it and misbehaves, a retry finds it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import selftune


def _first_time(name: str) -> bool:
    marker = Path(os.environ["EXEC_MARKERS"]) / name
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def quadratic(trial: selftune.Trial) -> float:
    x = trial.float("x", -2.0, 2.0)
    time.sleep(0.01)
    return (x - 0.5) ** 2


def crash_in_trial_3(trial: selftune.Trial) -> float:
    """Trial 3 saves a checkpoint at step 2, then its worker dies (SIGKILL) at step 3, once."""
    x = trial.float("x", -2.0, 2.0)
    start = 0
    if trial.resume_step is not None:
        state = trial.load_checkpoint()
        assert state["step"] == trial.resume_step
        start = trial.resume_step + 1
        trial.set_attr("resumed_from", trial.resume_step)
    for step in range(start, 5):
        trial.report(x * x + 1.0 / (step + 1), step)
        trial.save_checkpoint({"step": step, "x": x})
        if trial.number == 3 and step == 2 and _first_time("crash"):
            os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def hang_once(trial: selftune.Trial) -> float:
    """The first trial that finds no marker hangs far past any trial timeout."""
    x = trial.float("x", -2.0, 2.0)
    if trial.number == 2 and _first_time("hang"):
        time.sleep(300)
    return x * x


def raise_in_trial_2(trial: selftune.Trial) -> float:
    x = trial.float("x", -2.0, 2.0)
    if trial.number == 2:
        raise KeyError("no such column: 'lr'")
    time.sleep(0.3)  # the other worker is still busy when the run stops
    return x * x


def value_error_sometimes(trial: selftune.Trial) -> float:
    x = trial.float("x", -2.0, 2.0)
    if trial.number % 3 == 0:
        raise ValueError(f"diverged at x={x}")
    return x * x


def eat_memory_in_trial_1(trial: selftune.Trial) -> float:
    x = trial.float("x", -2.0, 2.0)
    if trial.number == 1:
        hog = bytearray(4 * 2**30)  # 4 GiB, over the worker's address-space limit
        return float(len(hog))
    return x * x


def seeds_and_workers(trial: selftune.Trial) -> float:
    x = trial.float("x", 0.0, 1.0)
    trial.set_attr("pid", os.getpid())
    time.sleep(0.02)
    return x


def slow(trial: selftune.Trial) -> float:
    x = trial.float("x", -2.0, 2.0)
    time.sleep(0.3)
    return x * x


class SumOfSeenSampler(selftune.samplers.Sampler):
    """Proposes x = (sum of the COMPLETE values it sees, + 0.5 per pending trial) mod 1: a proposal that
    depends on exactly which results its history held, so an explanation can be checked against it."""

    def __init__(self) -> None:
        self.seed = 0

    def propose(self, history, space, n=1, *, rng=None):  # type: ignore[no-untyped-def]
        total = sum(float(r.value) for r in history.complete) + 0.5 * len(history.pending)
        return [{"x": total % 1.0} for _ in range(n)]

    def propose_param(self, history, name, param, *, rng=None):  # type: ignore[no-untyped-def]
        raise AssertionError("the space is declared")


def noisy_value(trial: selftune.Trial) -> float:
    time.sleep(0.1 + 0.1 * ((trial.number * 7919) % 13) / 13)
    return ((trial.number * 0.6180339887) % 1.0) + trial.params["x"] * 1e-3
