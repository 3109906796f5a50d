"""Population based training (Jaderberg et al., 2017) and the replay of a learned schedule.

The population is the study's first ``population_size`` trials. Every ``interval`` steps a member is *ready*:
it pauses (its objective saves a checkpoint and raises :class:`~selftune.StopTrial`), and when it is
resumed the scheduler decides, from the stored curves alone:

- a member in the bottom ``quantile`` at that step **exploits**: it takes over the checkpoint of a member
  drawn from the top ``quantile`` and **explores** that member's hyperparameters: each one is resampled from
  its domain with probability ``resample_probability``, otherwise multiplied by a factor drawn from
  ``factors`` (0.8 or 1.2) and clipped to its bounds (snapped to its grid; integers move at least one step;
  numeric choices move to a neighbouring choice, other choices are only resampled);
- the others continue unchanged.

Members are compared on their values at the same step (their first report at or after it), not on whatever
each reported last. ``synchronous=True`` waits until every running member has reached the step (the
paper's generations); the default asynchronous variant decides as soon as the member is resumed. In both,
paused members at the lowest step are resumed first and, while the population is not complete, new members
start before paused ones resume, so a few workers time-share a larger population fairly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from selftune.exceptions import InvalidParameterError
from selftune.history import History
from selftune.schedule import Schedule
from selftune.schedulers._base import CONTINUE, Action, Decision, Scheduler, value_at
from selftune.schedulers._checks import check_float, check_int
from selftune.space import Choice, Float, Int, Param
from selftune.trial import TrialRecord, TrialState

__all__ = ["PopulationBasedTraining", "ScheduleReplay", "perturb", "fitness_at"]


def perturb(param: Param, value: Any, factor: float) -> Any:
    """``value`` multiplied by ``factor``, kept inside ``param``'s domain.

    Floats are clipped to ``[low, high]`` and snapped to their grid; integers move at least one grid step in
    the factor's direction; choices that are all numbers move to the neighbouring choice in sorted order
    (other choices are returned unchanged: they have no order to perturb along).
    """
    up = factor > 1.0
    if isinstance(param, Choice):
        options = list(param.choices)
        if not all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in options):
            return value
        ordered = sorted(options, key=float)
        i = ordered.index(value) if value in ordered else 0
        return ordered[min(i + 1, len(ordered) - 1)] if up else ordered[max(i - 1, 0)]
    if isinstance(param, Int):
        low, high, step = int(param.low), int(param.high), int(param.step)
        v = int(value)
        k = round((v * factor - low) / step)
        moved = low + k * step
        if moved == v and factor != 1.0:
            moved = v + step if up else v - step
        return int(min(max(moved, low), high))
    if isinstance(param, Float):
        lo, hi = float(param.low), float(param.high)
        x = min(max(float(value) * factor, lo), hi)
        if param.step is not None:
            x = min(max(lo + round((x - lo) / float(param.step)) * float(param.step), lo), hi)
        return x
    raise InvalidParameterError(f"cannot perturb a parameter of type {type(param).__name__}")


def fitness_at(trial: TrialRecord, step: int, window: int = 1) -> tuple[int, float] | None:
    """``(s, value)``: the member's first report at a step ``s >= step`` and, with ``window > 1``, the mean of
    its reports at steps in ``(s - window, s]`` (those it made itself: an exploit's jump leaves a gap); None if
    it has no report at or after ``step``."""
    found = value_at(trial, step)
    if found is None or window <= 1:
        return found
    s = found[0]
    values = [v for k, v in trial.intermediate.items() if s - window < k <= s]
    return s, math.fsum(values) / len(values)


def _rank_at(history: History, step: int, window: int = 1) -> list[tuple[float, int, TrialRecord]]:
    """Members with a value at ``step`` (any state but FAILED), best first, as ``(loss, number, record)``."""
    out = []
    for r in history.trials:
        if r.state in (TrialState.FAILED, TrialState.WAITING):
            continue
        found = fitness_at(r, step, window)
        if found is not None:
            out.append((history.sign * found[1], r.number, r))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


class PopulationBasedTraining(Scheduler):
    """Population based training: bottom members copy top members' checkpoints and explore their
    hyperparameters every ``interval`` steps.

    Args:
        population_size: how many members (the study's first trials) train together; give ``optimize`` the
            same number as its ``trials`` budget.
        interval: steps between two ready points (the paper's and Ray Tune's ``perturbation_interval``).
        hyperparams: the names of the parameters PBT may change while training (learning rate, weight
            decay, ...). Others (architecture, batch size if the checkpoint depends on it) stay as sampled.
        quantile: the bottom and top fraction of the population (0.25 as in the reference code, 0.2 in the
            paper); at most half the population.
        resample_probability: chance that an explored value is drawn afresh from its domain (0.25).
        factors: perturbation factors, one drawn per parameter (0.8, 1.2).
        synchronous: wait for every running member at each ready step (generations) instead of deciding as
            soon as a member is resumed.
        max_step: the last step of training, if known: no pause there.
        window: members are ranked on the mean of their reports in the last ``window`` steps up to the ready
            step (1: the value at that step, as the reference code). A noisy validation metric makes spurious
            copies (the paper's t-test selection exists for this); ``window=interval`` averages each member's
            reports since its previous ready point.
        seed: the seed of the exploration; decisions are functions of (seed, trial, step) and the stored
            curves, so any worker, after any crash, decides the same.
    """

    #: trials must save a checkpoint before they pause: exploits copy it
    needs_checkpoints = True

    def __init__(
        self,
        population_size: int,
        interval: int,
        hyperparams: Sequence[str],
        *,
        quantile: float = 0.25,
        resample_probability: float = 0.25,
        factors: Sequence[float] = (0.8, 1.2),
        synchronous: bool = False,
        max_step: int | None = None,
        window: int = 1,
        seed: int = 0,
    ) -> None:
        self.population_size = check_int("population_size", population_size, 2)
        self.interval = check_int("interval", interval, 1)
        if isinstance(hyperparams, str) or not isinstance(hyperparams, Sequence) or not hyperparams:
            raise InvalidParameterError(
                f"`hyperparams` must be a non-empty list of parameter names PBT may change, got {hyperparams!r}"
            )
        self.hyperparams = tuple(str(h) for h in hyperparams)
        self.quantile = check_float("quantile", quantile, 0.0, 0.5)
        if self.quantile == 0.0:
            raise InvalidParameterError("`quantile` must be a number in (0, 0.5], got 0")
        self.resample_probability = check_float("resample_probability", resample_probability, 0.0, 1.0)
        fs = tuple(factors)
        if not fs or any(
            isinstance(f, bool) or not isinstance(f, numbers.Real) or not (math.isfinite(f) and f > 0) for f in fs
        ):
            raise InvalidParameterError(f"`factors` must be positive numbers, e.g. (0.8, 1.2), got {factors!r}")
        self.factors = tuple(float(f) for f in fs)
        self.synchronous = bool(synchronous)
        self.max_step = None if max_step is None else check_int("max_step", max_step, 1)
        self.window = check_int("window", window, 1)
        self.seed = check_int("seed", seed, 0)

    # -- when a member is ready --------------------------------------------------------------------------
    def _ready(self, trial: TrialRecord) -> bool:
        steps = sorted(trial.intermediate)
        if not steps:
            return False
        step = steps[-1]
        if self.max_step is not None and step >= self.max_step:
            return False
        prev = steps[-2] if len(steps) > 1 else 0
        lineage = trial.lineage
        if lineage:  # an exploit jumps to the source's step: count the interval from there
            prev = max(prev, lineage[-1].source_step)
        return step // self.interval > max(prev, 0) // self.interval

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        """PAUSE at every ready step (the decision to exploit is made when the member is resumed)."""
        if self._ready(trial):
            return Decision.pause(f"ready at step {trial.last_step}: waits for the population's decision")
        return CONTINUE

    # -- what a paused member does -------------------------------------------------------------------------
    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        """Decide for the paused members at the lowest step, once the population allows it."""
        paused = [r for r in history.trials if r.state is TrialState.PAUSED and r.last_step is not None]
        if not paused:
            return {}
        started = sum(1 for r in history.trials if r.state is not TrialState.WAITING)
        if not final and started < self.population_size:
            return {}  # start every member before any resumes: a few workers share the population fairly
        step = min(r.last_step for r in paused if r.last_step is not None)
        if self.synchronous and any(
            r.state is TrialState.RUNNING and (r.last_step is None or r.last_step < step) for r in history.trials
        ):
            return {}  # a generation: every running member reaches the step first
        ranked = _rank_at(history, step, self.window)
        return {r.number: self.decide(r, step, history, ranked) for r in paused if r.last_step == step}

    def decide(
        self,
        trial: TrialRecord,
        step: int,
        history: History,
        ranked: list[tuple[float, int, TrialRecord]] | None = None,
    ) -> Decision:
        """CONTINUE, or EXPLOIT a top member with explored hyperparameters, for ``trial`` ready at ``step``
        (``ranked``: the members' ranking at ``step``, if already computed)."""
        if ranked is None:
            ranked = _rank_at(history, step, self.window)
        n = len(ranked)
        k = min(math.ceil(n * self.quantile), n // 2)
        numbers_ = [number for _, number, _ in ranked]
        if k == 0 or trial.number not in numbers_:
            return Decision(Action.CONTINUE, f"step {step}: {n} member(s) to compare with, too few")
        rank = numbers_.index(trial.number)
        if rank < n - k:
            return Decision(Action.CONTINUE, f"step {step}: rank {rank + 1} of {n}, not in the bottom {k}")
        rng = np.random.default_rng([self.seed, trial.number, step])
        source = ranked[int(rng.integers(k))][2]
        params = self.new_params(trial, source, step, history, rng)
        changed = ", ".join(f"{h}={params[h]!r}" for h in self.hyperparams if h in params)
        return Decision.exploit(
            source.number,
            params,
            f"step {step}: rank {rank + 1} of {n} (bottom {k}); takes over trial {source.number} "
            f"(rank {numbers_.index(source.number) + 1}) with {changed}",
        )

    def new_params(
        self, trial: TrialRecord, source: TrialRecord, step: int, history: History, rng: np.random.Generator
    ) -> dict[str, Any]:
        """The parameters ``trial`` goes on with after taking over ``source`` at ``step``: PBT explores the
        source's (PB2 overrides this with its GP bandit)."""
        return self.explore(source.params, history.params, rng)

    def explore(self, params: Mapping[str, Any], domains: Mapping[str, Param], rng: np.random.Generator) -> dict[str, Any]:
        """``params`` with each of :attr:`hyperparams` resampled or perturbed (in name order, one draw each)."""
        out = dict(params)
        for name in sorted(self.hyperparams):
            if name not in params:
                continue
            domain = domains.get(name)
            if domain is None:
                raise InvalidParameterError(f"population based training: hyperparameter {name!r} has no known domain")
            if rng.random() < self.resample_probability:
                out[name] = domain.from_unit(float(rng.random()))
            else:
                out[name] = perturb(domain, params[name], self.factors[int(rng.integers(len(self.factors)))])
        return out


class ScheduleReplay(Scheduler):
    """Train a new trial with a learned :class:`~selftune.schedule.Schedule` (like Ray Tune's PBT replay).

    Start the trial with the schedule's first parameters (``study.enqueue(schedule.at(0))``); at each change
    the trial pauses after the step before it and goes on from its own checkpoint with the next parameters.
    """

    needs_checkpoints = True

    def __init__(self, schedule: Schedule | TrialRecord) -> None:
        self.schedule = schedule.schedule if isinstance(schedule, TrialRecord) else schedule
        if not isinstance(self.schedule, Schedule):
            raise InvalidParameterError(f"ScheduleReplay needs a Schedule or a TrialRecord, got {schedule!r}")

    def on_report(self, trial: TrialRecord, history: History) -> Decision:
        """PAUSE after the step before a change of parameters."""
        step = trial.last_step
        if step is None:
            return CONTINUE
        upcoming = self.schedule.at(step + 1)
        if any(trial.params.get(k) != v for k, v in upcoming.items()):
            return Decision.pause(f"the schedule changes its parameters at step {step + 1}")
        return CONTINUE

    def on_paused(self, history: History, final: bool) -> dict[int, Decision]:
        """Resume every paused trial with the parameters the schedule gives its next step."""
        return {
            r.number: Decision.exploit(r.number, self.schedule.at(r.last_step + 1), "replayed schedule")
            for r in history.trials
            if r.state is TrialState.PAUSED and r.last_step is not None
        }
