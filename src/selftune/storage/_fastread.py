"""A faster full read of a study's trials from an :class:`~selftune.storage.sql.SQLStorage`, for the dashboard.

:meth:`SQLStorage.read_trials` builds each record from SQLAlchemy rows and decodes every JSON value on its
own (about 2 s for 100,000 trials of 4 parameters on an idle core; much more on a busy one). This reads the
same tables with the database driver's cursor (tuples, no per-row objects) and decodes all the JSON values of
one column with a single ``json.loads`` of a JSON array, so the first read of a big study takes a fraction of
that. Same contract as ``read_trials``: the trials changed after ``cursor`` (all of them from 0), by number,
and the new cursor. One read transaction (SQLite: one WAL snapshot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import operator
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from selftune.schedule import SYSTEM_PREFIX
from selftune.storage import _schema as S
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.storage import Storage
    from selftune.storage.sql import SQLStorage

__all__ = ["read_trials_fast", "trial_reader"]

_STATES = {s.value: s for s in TrialState}
_FIELDS = ("number", "state", "params", "value", "intermediate", "user_attrs", "created_at", "started_at",
           "finished_at", "worker", "reason", "traceback", "fixed", "system_attrs")
_by_number = operator.itemgetter(1)
_POSITIONAL = tuple(f.name for f in dataclasses.fields(TrialRecord)) == _FIELDS
#: up to this many changed trials, children are read by trial id (the usual incremental read)
_BY_ID = 500


def _decode_all(texts: Sequence[str]) -> list[Any]:
    """Every JSON text of ``texts`` decoded, with one parse of a JSON array (NaN and ±Infinity allowed)."""
    if not texts:
        return []
    out: list[Any] = json.loads("[" + ",".join(texts) + "]")
    return out


#: a trial's parameters as one JSON object, aggregated by the database from their JSON texts (no float is
#: formatted by the database: the texts are concatenated as written)
_PARAMS_OBJECT = {
    "sqlite": "(SELECT '{{' || group_concat(json_quote(c.name) || ':' || c.value, ',') || '}}' FROM {p} c "
              "WHERE c.trial_id = t.id)",
    "postgresql": "(SELECT '{{' || string_agg(to_json(c.name)::text || ':' || c.value, ',') || '}}' FROM {p} c "
                  "WHERE c.trial_id = t.id)",
}
_aggregate_ok: dict[str, bool] = {}


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: building 100,000 records (no cycles among them) otherwise triggers
    collections that walk every object again and again (a quarter of the read's time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_trials_fast(storage: SQLStorage, study_id: int, cursor: int = 0) -> tuple[list[TrialRecord], int]:
    """The trials of study ``study_id`` changed after ``cursor`` (every trial from 0), and the new cursor."""
    with _no_gc():  # a lost PostgreSQL connection is retried like every storage operation
        return storage._run(lambda _call: _read(storage, study_id, cursor))


def _read(storage: SQLStorage, study_id: int, cursor: int) -> tuple[list[TrialRecord], int]:
    engine = storage._engine
    dialect = engine.dialect.name
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    t, p, v, a = S.trials.name, S.trial_params.name, S.trial_values.name, S.trial_attrs.name
    where = f"t.study_id = {mark} AND t.seq > {mark}"
    columns = ("t.id, t.number, t.state, t.value, t.fixed, t.created_at, t.started_at, t.finished_at, t.worker, "
               "t.reason, t.traceback, t.seq")
    aggregate = _PARAMS_OBJECT.get(dialect) if _aggregate_ok.get(dialect, True) else None
    with engine.connect() as conn, conn.begin():  # SQLite: BEGIN (the storage's hook); one snapshot
        dbapi: Any = conn.connection.dbapi_connection
        cur = dbapi.cursor()
        try:
            rows: list[Any] | None = None
            if aggregate is not None:
                try:
                    cur.execute(f"SELECT {columns}, {aggregate.format(p=p)} FROM {t} t WHERE {where}",
                                (study_id, cursor))
                    rows = cur.fetchall()
                except Exception:  # noqa: BLE001 - no JSON functions (an old SQLite): read the rows instead
                    if dialect != "sqlite":
                        raise
                    _aggregate_ok[dialect] = False
            if rows is None:
                cur.execute(f"SELECT {columns}, NULL FROM {t} t WHERE {where}", (study_id, cursor))
                rows = cur.fetchall()
            if not rows:
                return [], cursor
            rows.sort(key=_by_number)  # by seq as read, nearly by number already: cheaper here than in SQL
            children: list[list[tuple[Any, ...]]] = []
            tables = [(v, "c.step, c.value"), (a, "c.key, c.value")]
            if aggregate is None or not _aggregate_ok.get(dialect, True):
                tables.append((p, "c.name, c.value"))
            for table, cols in tables:
                if len(rows) <= _BY_ID:
                    ids = [r[0] for r in rows]
                    cur.execute(f"SELECT c.trial_id, {cols} FROM {table} c WHERE c.trial_id IN "
                                f"({', '.join([mark] * len(ids))})", ids)
                else:
                    cur.execute(f"SELECT c.trial_id, {cols} FROM {table} c JOIN {t} t ON c.trial_id = t.id "
                                f"WHERE {where}", (study_id, cursor))
                children.append(cur.fetchall())
        finally:
            cur.close()
    value_rows, attr_rows = children[0], children[1]
    if len(children) == 3:
        params = _group(children[2], _decode_all([r[2] for r in children[2]]))
    else:
        objects = [r[12] for r in rows if r[12] is not None]
        params = dict(zip([r[0] for r in rows if r[12] is not None], _decode_all(objects), strict=True))
    values: dict[int, dict[int, float]] = {}
    for tid, step, value in value_rows:
        values.setdefault(tid, {})[int(step)] = float(value)
    user: dict[int, dict[str, Any]] = {}
    system: dict[int, dict[str, Any]] = {}
    for (tid, key, _), decoded in zip(attr_rows, _decode_all([r[2] for r in attr_rows]), strict=True):
        (system if key.startswith(SYSTEM_PREFIX) else user).setdefault(tid, {})[key] = decoded
    fixed_rows = [r for r in rows if r[4] is not None]
    fixed = dict(zip([r[0] for r in fixed_rows], _decode_all([r[4] for r in fixed_rows]), strict=True))
    get_p, get_v, get_u, get_f, get_s = params.get, values.get, user.get, fixed.get, system.get
    if _POSITIONAL:  # the fields in the order read (about twice as fast as keywords for 100,000 records)
        records = [
            TrialRecord(number, _STATES[state], get_p(tid) or {}, None if value is None else float(value),
                        get_v(tid) or {}, get_u(tid) or {}, created, started, finished, worker, reason, traceback,
                        get_f(tid) or {}, get_s(tid) or {})
            for tid, number, state, value, _, created, started, finished, worker, reason, traceback, *_ in rows
        ]
    else:  # pragma: no cover - TrialRecord gained or reordered fields: keywords, the others at their defaults
        records = [
            TrialRecord(number=number, state=_STATES[state], params=get_p(tid) or {},
                        value=None if value is None else float(value), intermediate=get_v(tid) or {},
                        user_attrs=get_u(tid) or {}, created_at=created, started_at=started, finished_at=finished,
                        worker=worker, reason=reason, traceback=traceback, fixed=get_f(tid) or {},
                        system_attrs=get_s(tid) or {})
            for tid, number, state, value, _, created, started, finished, worker, reason, traceback, *_ in rows
        ]
    return records, max(cursor, max(int(r[11]) for r in rows))


def _group(rows: Iterable[tuple[Any, ...]], decoded: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """``{trial_id: {name: value}}`` from rows ``(trial_id, name, _)`` and their decoded values."""
    out: dict[int, dict[str, Any]] = {}
    for (tid, name, _), value in zip(rows, decoded, strict=True):
        found = out.get(tid)
        if found is None:
            out[tid] = {name: value}
        else:
            found[name] = value
    return out


def trial_reader(storage: Storage) -> Callable[[int, int], tuple[list[TrialRecord], int]]:
    """``read(study_id, cursor)``: :func:`read_trials_fast` for an SQL storage, else ``storage.read_trials``."""
    sql = sys.modules.get("selftune.storage.sql")  # not imported: not an SQL storage (and no SQLAlchemy import)
    if sql is not None and isinstance(storage, sql.SQLStorage) and hasattr(storage, "_engine"):
        return lambda study_id, cursor: read_trials_fast(storage, study_id, cursor)
    return storage.read_trials
