"""Output helpers of the ``selftune`` command: the console, values, parameters, times, trial counts."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from selftune.space import Space
from selftune.trial import TrialRecord, TrialState

__all__ = [
    "new_console",
    "line",
    "fmt_value",
    "fmt_param",
    "fmt_params",
    "fmt_time",
    "fmt_duration",
    "fmt_counts",
    "count_states",
    "ordered",
    "json_number",
    "rank_complete",
]

_STATE_ORDER = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.STOPPED, TrialState.FAILED)


def new_console() -> Any:
    """A rich console that neither highlights nor wraps."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def line(console: Any, text: str) -> None:
    """Print ``text`` as it is: no markup, no highlighting, no wrapping."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def ordered(params: Mapping[str, Any], space: Space | None) -> dict[str, Any]:
    """``params`` in the declared space's order (when there is one), the others after them."""
    if space is None:
        return dict(params)
    out = {k: params[k] for k in space if k in params}
    out.update({k: v for k, v in params.items() if k not in out})
    return out


def fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_param(v)}" for k, v in params.items()) or "-"


def fmt_time(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s"


def fmt_counts(counts: Mapping[str, int]) -> str:
    """``"20 (18 complete, 2 failed)"``: the total, then the non-zero states in life-cycle order."""
    total = sum(counts.values())
    known = [s.value for s in _STATE_ORDER]
    parts = [f"{counts[s]} {s.lower()}" for s in known if counts.get(s)]
    parts += [f"{n} {s}" for s, n in counts.items() if str(s) not in known and n]
    return f"{total} ({', '.join(parts)})" if parts else str(total)


def count_states(records: Sequence[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state.value] = counts.get(r.state.value, 0) + 1
    return counts


def json_number(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "inf" if x > 0 else ("-inf" if x < 0 else "nan")


def rank_complete(records: Sequence[TrialRecord], direction: str) -> list[TrialRecord]:
    """COMPLETE trials, best first (earliest first on ties)."""
    sign = 1.0 if direction == "minimize" else -1.0
    complete = [r for r in records if r.state is TrialState.COMPLETE and r.value is not None]
    return sorted(complete, key=lambda r: (sign * float(r.value), r.number))  # type: ignore[arg-type]
