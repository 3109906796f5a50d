"""Scoring: normalised scores, ranks, wins/losses and log-regret from the final values of runs.

The *final value* of a run is the true value of the best point it observed (for noisy problems the noiseless
value of the best noisy observation). For one problem:

* ``f*`` is the known optimum when the problem has one (bbob and noisy bbob; Branin, Hartmann-6) and
  otherwise the best final value of any optimiser in the comparison (mixint, sklearn).
* The **normalised score** of a run is ``100·(1 − (final − f*)/(median_random − f*))`` where
  ``median_random`` is the median final value of the ``random`` baseline over the seeds: 100 finds ``f*``,
  0 is as good as the typical random search, negative is worse. Scores below ``floor`` (−100) are clipped
  so one divergent run cannot dominate a group mean.
* **Ranks** are taken per problem on the mean score over seeds (1 is best, ties share the mean rank) and
  averaged over the problems of a group.
* **Wins/ties/losses** compare the reference optimiser's mean score on a problem with a peer's: a
  difference of at most ``tie`` points (default 1) is a tie.
* **log10 regret** is ``log10(max(final − f_opt, 1e-8))`` (problems with a known optimum).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "best_so_far",
    "normalised_score",
    "log10_regret",
    "f_star",
    "score_table",
    "mean_ranks",
    "group_means",
    "wins_losses",
]

BASELINE = "random"


def best_so_far(values: Sequence[float]) -> np.ndarray:
    """The running minimum of ``values``."""
    return np.minimum.accumulate(np.asarray(values, dtype=float)) if len(values) else np.empty(0)


def normalised_score(best: float, f_star: float, random_median: float, floor: float | None = -100.0) -> float:
    """``100·(1 − (best − f*)/(random_median − f*))``, clipped below at ``floor`` (None: no clipping).

    When random search already reaches ``f*`` (the denominator is 0), a run that also reaches it scores 100
    and any other run 0.
    """
    gap = random_median - f_star
    scale = max(abs(f_star), abs(random_median), 1.0)
    if not math.isfinite(best):
        score = -math.inf
    elif gap <= 1e-12 * scale:
        score = 100.0 if best - f_star <= 1e-12 * scale else 0.0
    else:
        score = 100.0 * (1.0 - (best - f_star) / gap)
    if floor is not None:
        score = max(score, floor)
    return float(score)


def log10_regret(best: float, optimum: float, eps: float = 1e-8) -> float:
    """``log10(max(best − optimum, eps))``."""
    return float(math.log10(max(best - optimum, eps)))


def f_star(finals: Mapping[str, Sequence[float]], optimum: float | None) -> float:
    """The reference minimum of a problem: its known optimum, else the best final value of any optimiser."""
    if optimum is not None:
        return float(optimum)
    vals = [v for vs in finals.values() for v in vs if math.isfinite(v)]
    return float(min(vals)) if vals else math.nan


def score_table(
    finals: Mapping[str, Mapping[str, Sequence[float]]],
    optima: Mapping[str, float | None],
    baseline: str = BASELINE,
    floor: float | None = -100.0,
) -> dict[str, dict[str, list[float]]]:
    """``{problem: {optimizer: [score per seed]}}`` from ``{problem: {optimizer: [final per seed]}}``.

    Problems without baseline runs are left out.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for problem, by_opt in finals.items():
        if baseline not in by_opt or not len(by_opt[baseline]):
            continue
        fs = f_star(by_opt, optima.get(problem))
        med = float(np.median(by_opt[baseline]))
        out[problem] = {
            opt: [normalised_score(v, fs, med, floor) for v in vals] for opt, vals in by_opt.items()
        }
    return out


def _mean_by_problem(scores: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, dict[str, float]]:
    return {p: {o: float(np.mean(v)) for o, v in by.items() if len(v)} for p, by in scores.items()}


def mean_ranks(
    scores: Mapping[str, Mapping[str, Sequence[float]]], groups: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """``{group: {optimizer: mean rank}}``; ranks per problem on the mean score (1 is best).

    Only optimisers with results on every problem of a group are ranked in it.
    """
    from scipy.stats import rankdata

    means = _mean_by_problem(scores)
    by_group: dict[str, list[str]] = defaultdict(list)
    for p in means:
        by_group[groups[p]].append(p)
    out: dict[str, dict[str, float]] = {}
    for g, probs in by_group.items():
        opts = sorted(set.intersection(*(set(means[p]) for p in probs)))
        ranks: dict[str, list[float]] = defaultdict(list)
        for p in probs:
            r = rankdata([-means[p][o] for o in opts], method="average")
            for o, rk in zip(opts, r, strict=True):
                ranks[o].append(float(rk))
        out[g] = {o: float(np.mean(v)) for o, v in ranks.items()}
    return out


def group_means(
    values: Mapping[str, Mapping[str, Sequence[float]]], groups: Mapping[str, str], reduce: str = "mean"
) -> dict[str, dict[str, float]]:
    """``{group: {optimizer: mean over problems of (mean or median over seeds)}}``."""
    red = np.mean if reduce == "mean" else np.median
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p, by in values.items():
        for o, v in by.items():
            if len(v):
                acc[groups[p]][o].append(float(red(v)))
    return {g: {o: float(np.mean(v)) for o, v in by.items()} for g, by in acc.items()}


def wins_losses(
    scores: Mapping[str, Mapping[str, Sequence[float]]],
    reference: str,
    tie: float = 1.0,
    problems: Iterable[str] | None = None,
) -> dict[str, tuple[int, int, int]]:
    """``{peer: (wins, ties, losses)}`` of ``reference`` against each other optimiser, one count per problem."""
    means = _mean_by_problem(scores)
    chosen = list(problems) if problems is not None else list(means)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for p in chosen:
        by = means.get(p, {})
        if reference not in by:
            continue
        for o, s in by.items():
            if o == reference:
                continue
            d = by[reference] - s
            out[o][0 if d > tie else (2 if d < -tie else 1)] += 1
    return {o: (w, t, loss) for o, (w, t, loss) in out.items()}


def summarize_latency(
    latency: Mapping[str, Mapping[Any, Sequence[float]]],
) -> dict[str, dict[int, tuple[float, float]]]:
    """``{optimizer: {level: (median, mean) seconds per ask}}``."""
    return {
        o: {int(k): (float(np.median(v)), float(np.mean(v))) for k, v in by.items() if len(v)}
        for o, by in latency.items()
    }
