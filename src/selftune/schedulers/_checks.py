"""Argument checks shared by the schedulers: one error template naming the argument and the rule."""

from __future__ import annotations

import math
import numbers
from typing import Any

from selftune.exceptions import InvalidParameterError


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidParameterError(f"`{name}` must be an integer >= {low}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (low <= float(value) <= high):
        raise InvalidParameterError(f"`{name}` must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def check_factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and float(value) > 1):
        raise InvalidParameterError(f"`reduction_factor` must be a number > 1, got {value!r}")
    return float(value)
