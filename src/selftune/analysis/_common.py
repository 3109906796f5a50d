"""What the importance measures and the plots share: reading a study, parameter domains, value labels."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from selftune.exceptions import InvalidParameterError
from selftune.history import History
from selftune.space import Choice, Float, Int, Param
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = [
    "as_history",
    "domains",
    "select_params",
    "finite_complete",
    "value_of",
    "is_log",
    "is_categorical",
    "choice_labels",
    "thin",
]


def as_history(study: Study | History) -> History:
    """A :class:`History` snapshot of ``study`` (a :class:`~selftune.study.Study` or a History already)."""
    if isinstance(study, History):
        return study
    read = getattr(study, "history", None)
    if callable(read):
        history = read()
        if isinstance(history, History):
            return history
    raise TypeError(f"expected a selftune Study or History, got {type(study).__name__}")


def _infer(values: Sequence[Any]) -> Param:
    """A domain for a parameter the history holds values of but no definition (a hand-built History)."""
    real = [v for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    nums = [float(v) for v in real]
    if real and len(real) == len(values) and all(math.isfinite(v) for v in nums):
        if all(isinstance(v, numbers.Integral) for v in real):
            return Int(round(min(nums)), round(max(nums)))
        return Float(min(nums), max(nums))
    distinct: list[Any] = []
    for v in values:
        if Choice._index(v, distinct) is None:
            distinct.append(v)
    return Choice(tuple(distinct))


def domains(history: History) -> dict[str, Param]:
    """Every parameter's domain: the registered ones, then any seen in a trial (inferred), in that order."""
    out: dict[str, Param] = dict(history.params)
    seen: dict[str, list[Any]] = {}
    for r in history.trials:
        for k, v in r.params.items():
            if k not in out:
                seen.setdefault(k, []).append(v)
    for k, values in seen.items():
        out[k] = _infer(values)
    return out


def finite_complete(history: History) -> list[TrialRecord]:
    """The COMPLETE trials whose value is a finite number, by number."""
    return [
        r for r in history.trials
        if r.state is TrialState.COMPLETE and r.value is not None and math.isfinite(r.value)
    ]


def value_of(record: TrialRecord) -> float:
    """The trial's value as a float (NaN when it has none)."""
    return math.nan if record.value is None else float(record.value)


def select_params(
    known: Mapping[str, Param], records: Sequence[TrialRecord], params: Iterable[str] | None
) -> list[str]:
    """The parameters to analyse: ``params`` checked against ``known``, or every known one some trial of
    ``records`` sets, in declaration order."""
    if params is None:
        used = {k for r in records for k in r.params}
        return [k for k in known if k in used]
    if isinstance(params, str):
        raise InvalidParameterError(f"`params` must be a list of parameter names, got the string {params!r}")
    names = list(params)
    if not names:
        raise InvalidParameterError("`params` must name at least one parameter")
    for name in names:
        if name not in known:
            raise InvalidParameterError(f"unknown parameter {name!r}; the study knows {list(known)!r}")
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"`params` names a parameter twice: {names!r}")
    return names


def is_log(param: Param) -> bool:
    """True for a log-scaled Float or Int."""
    return isinstance(param, Float | Int) and bool(param.log) and param.low != param.high


def is_categorical(param: Param) -> bool:
    """True for a :class:`Choice`."""
    return isinstance(param, Choice)


def choice_labels(param: Choice) -> list[str]:
    """Distinct display labels for the choices (strings as they are, other values as JSON)."""
    labels = [c if isinstance(c, str) else json.dumps(c, sort_keys=True) for c in param.choices]
    if len(set(labels)) < len(labels):  # e.g. "1" and 1: show every choice as JSON
        labels = [json.dumps(c, sort_keys=True) for c in param.choices]
    return labels


def thin(n: int, max_points: int, keep: Iterable[int] = ()) -> np.ndarray:
    """Sorted indices into ``range(n)``: all of them if ``n <= max_points``, else ``keep`` plus evenly
    spaced others, ``max_points`` in all (or just ``keep`` if it holds more). Deterministic."""
    if n <= max_points:
        return np.arange(n)
    kept = np.unique(np.asarray(list(keep), dtype=int))
    take = max_points - kept.size
    if take <= 0:
        return kept
    rest = np.setdiff1d(np.arange(n), kept)
    pick = rest[np.linspace(0, rest.size - 1, min(take, rest.size)).round().astype(int)]
    return np.union1d(kept, pick)
