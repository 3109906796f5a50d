"""Trials as a DataFrame, CSV or JSON."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftune._imports import require
from selftune.exceptions import InvalidParameterError
from selftune.trial import TrialRecord

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["rows", "to_dataframe", "export"]


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()


def rows(records: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """One flat dict per trial: number, state, value, params_*, user_attrs_*, times, worker, reason."""
    names: dict[str, None] = {}
    attrs: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.params))
        attrs.update(dict.fromkeys(r.user_attrs))
    out = []
    for r in records:
        row: dict[str, Any] = {"number": r.number, "state": r.state.value, "value": r.value}
        for n in names:
            row[f"params_{n}"] = r.params.get(n)
        for a in attrs:
            row[f"user_attrs_{a}"] = r.user_attrs.get(a)
        row.update(
            started_at=_iso(r.started_at),
            finished_at=_iso(r.finished_at),
            duration=r.duration,
            worker=r.worker,
            reason=r.reason,
        )
        out.append(row)
    return out


def to_dataframe(records: Sequence[TrialRecord]) -> Any:
    """A pandas DataFrame with one row per trial."""
    pd = require("pandas", "pandas")
    return pd.DataFrame(rows(records))


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(study: Study, path: Path, format: str | None = None) -> Path:
    """Write ``study``'s trials to ``path`` (CSV or JSON), atomically."""
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "json"):
        raise InvalidParameterError(f"export format must be 'csv' or 'json', got {fmt!r} (from {str(path)!r})")
    records = study.trials
    if fmt == "csv":
        table = rows(records)

        def write(f: Any) -> None:
            cols: dict[str, None] = {}
            for r in table:
                cols.update(dict.fromkeys(r))
            w = csv.DictWriter(f, fieldnames=list(cols) or ["number"])
            w.writeheader()
            for r in table:
                w.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()})

    else:
        doc = {
            "study": study.name,
            "direction": study.direction,
            "space": None if study.space is None else study.space.to_json(),
            "trials": [r.to_json() for r in records],
        }

        def write(f: Any) -> None:
            json.dump(doc, f, indent=2)

    _atomic_write(path, write)
    return path
