"""An honest evaluation protocol: tune on some seeds, report on others.

A configuration picked as the best of many noisy trials looks better than it is (the winner's curse), and
a schedule found by population based training was selected on its own training seeds. Report instead the
mean and a confidence interval of fresh runs on **test seeds** disjoint from the tuning seeds
(how-to-autorl, Eimer et al. 2023)::

    study.optimize(objective, trials=64)
    result = selftune.protocol.evaluate(objective, study, seeds=10)   # the best trial, 10 test seeds
    print(result[0])        # "trial 17: 0.9712 ± 0.0041 (95% CI, 10 test seeds)"

The objective reads its seed from :attr:`selftune.Trial.seed`: while tuning it is the trial's number
(0, 1, 2, ...); test seeds start at :data:`TEST_SEED_BASE` unless given, and :func:`evaluate` refuses test
seeds that a tuning trial used. A candidate with a schedule (a PBT member) is replayed step by step with
:class:`~selftune.schedulers.ScheduleReplay`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selftune.exceptions import InvalidParameterError, SelftuneError
from selftune.schedule import Schedule
from selftune.space import Space
from selftune.trial import Trial, TrialRecord, TrialState

__all__ = ["evaluate", "Evaluation", "TEST_SEED_BASE", "test_seeds"]

#: the first default test seed; tuning seeds are trial numbers, far below it
TEST_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class Evaluation:
    """One candidate re-run on test seeds: the values, their mean and a Student-t confidence interval."""

    label: str
    schedule: Schedule
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    confidence: float

    @property
    def mean(self) -> float:
        """The mean over test seeds."""
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """The sample standard deviation over test seeds (0 for one seed)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    @property
    def half_width(self) -> float:
        """Half the width of the confidence interval (inf for one seed)."""
        n = len(self.values)
        if n < 2:
            return math.inf
        from scipy import stats

        return float(stats.t.ppf(0.5 + self.confidence / 2, n - 1) * self.std / math.sqrt(n))

    @property
    def interval(self) -> tuple[float, float]:
        """The confidence interval of the mean."""
        return self.mean - self.half_width, self.mean + self.half_width

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        low, high = self.interval
        return {
            "label": self.label,
            "schedule": self.schedule.to_json(),
            "seeds": list(self.seeds),
            "values": list(self.values),
            "mean": self.mean,
            "std": self.std,
            "confidence": self.confidence,
            "interval": [low if math.isfinite(low) else None, high if math.isfinite(high) else None],
        }

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.mean:.6g} ± {self.half_width:.2g} "
            f"({self.confidence:.0%} CI, {len(self.values)} test seed{'s' if len(self.values) != 1 else ''})"
        )


def test_seeds(n: int, base: int = TEST_SEED_BASE) -> list[int]:
    """``n`` default test seeds: ``base, base + 1, ...``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"`seeds` must be an integer >= 1 or a list of seeds, got {n!r}")
    return list(range(base, base + n))


def _candidates(candidates: Any) -> tuple[list[tuple[str, Schedule]], set[int], str | None, Space | None]:
    """(label, schedule) pairs, the tuning seeds they came from, and the study's direction and space if known."""
    from selftune.study import Study

    tuning: set[int] = set()
    direction: str | None = None
    space: Space | None = None
    if isinstance(candidates, Study):
        direction, space = candidates.direction, candidates.space
        tuning = {r.seed for r in candidates.trials if r.state is not TrialState.WAITING}
        candidates = [candidates.best]
    elif isinstance(candidates, TrialRecord | Schedule | Mapping):
        candidates = [candidates]
    out: list[tuple[str, Schedule]] = []
    for c in candidates:
        if isinstance(c, TrialRecord):
            out.append((f"trial {c.number}", c.schedule))
            tuning.add(c.seed)
        elif isinstance(c, Schedule):
            out.append((f"schedule {len(out)}", c))
        elif isinstance(c, Mapping):
            out.append((f"config {len(out)}", Schedule.constant(c)))
        else:
            raise InvalidParameterError(
                "evaluate() takes a Study (its best trial), TrialRecords, Schedules or dicts of parameters; "
                f"got {type(c).__name__}"
            )
    if not out:
        raise InvalidParameterError("evaluate() needs at least one candidate")
    return out, tuning, direction, space


def evaluate(
    objective: Callable[[Trial], Any],
    candidates: Any,
    seeds: int | Sequence[int] = 5,
    *,
    direction: str | None = None,
    confidence: float = 0.95,
    tuning_seeds: Sequence[int] = (),
    space: Space | None = None,
    artifacts: str | None = None,
) -> list[Evaluation]:
    """Re-run each candidate once per test seed and return its :class:`Evaluation`.

    ``candidates``: a study (its best trial), trial records (a PBT member's schedule is replayed), schedules
    or dicts of parameters, alone or in a list. ``seeds``: a number of default test seeds or the seeds
    themselves; they must differ from every tuning seed (those of the study's trials, of the given records,
    and ``tuning_seeds``). ``space``: the declared space of the tuning study (a study's own by default), for
objectives that read ``trial.params``. Each run is a one-trial in-memory study whose trial has the candidate's parameters
    and :attr:`~selftune.Trial.seed` set to the test seed; a run that fails raises, naming the candidate and
    the seed.
    """
    from selftune.samplers import RandomSampler
    from selftune.schedulers import ScheduleReplay
    from selftune.study import create_study

    pairs, tuning, study_direction, study_space = _candidates(candidates)
    space = space if space is not None else study_space
    tuning |= {int(s) for s in tuning_seeds}
    if isinstance(seeds, bool):
        raise InvalidParameterError(f"`seeds` must be an integer >= 1 or a list of seeds, got {seeds!r}")
    seed_list = test_seeds(seeds) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise InvalidParameterError("evaluate() needs at least one test seed")
    for s in seed_list:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise InvalidParameterError(f"test seeds must be integers >= 0, got {s!r}")
    if len(set(seed_list)) != len(seed_list):
        raise InvalidParameterError(f"test seeds must be distinct, got {seed_list}")
    reused = sorted(set(seed_list) & tuning)
    if reused:
        raise InvalidParameterError(
            f"test seeds {reused[:10]} were used while tuning; an honest estimate needs seeds the tuning never saw "
            f"(the default test seeds start at {TEST_SEED_BASE})"
        )
    if not (0.0 < confidence < 1.0):
        raise InvalidParameterError(f"`confidence` must be in (0, 1), got {confidence!r}")
    direction = direction or study_direction or "minimize"
    results = []
    for label, schedule in pairs:
        values = []
        for seed in seed_list:
            scheduler = ScheduleReplay(schedule) if len(schedule) > 1 else None
            study = create_study(
                f"{label} seed {seed}", storage="memory", direction=direction, scheduler=scheduler,
                sampler=RandomSampler(seed=0), space=space,
                artifacts=artifacts,
            )
            try:
                study.enqueue(schedule.at(0), seed=int(seed))
                study.optimize(objective, trials=1, progress=False)
                record = study.trials[0]
            finally:
                study.close()
            if record.state is not TrialState.COMPLETE or record.value is None:
                raise SelftuneError(
                    f"evaluate(): {label} with test seed {seed} ended {record.state}"
                    + (f" ({record.reason})" if record.reason else "")
                )
            values.append(float(record.value))
        results.append(Evaluation(label, schedule, tuple(int(s) for s in seed_list), tuple(values), confidence))
    return results
