"""SQL storage on SQLAlchemy Core: SQLite (default, WAL) and PostgreSQL (psycopg 3).

Concurrency rules:
- every change runs in a write transaction that first bumps the study's ``seq`` (``UPDATE ... RETURNING``),
  which locks the study row on PostgreSQL and, with ``BEGIN IMMEDIATE``, the database on SQLite. Changes of
  one study therefore commit in ``seq`` order, so a reader that has seen ``seq = s`` never misses an
  earlier change: :meth:`SQLStorage.read_trials` reads only rows with ``seq > cursor``.
- trial numbers come from the study row's ``next_number`` counter, backed by a unique constraint.
- heartbeats and the reaper use the database's clock, so workers on machines with skewed clocks agree.

A lost connection to PostgreSQL is survived by repeating the operation on a new connection, and a write whose
COMMIT outcome is unknown recognises its own earlier success: see :mod:`selftune.storage._connection`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from selftune.exceptions import (
    SchemaVersionError,
    StorageURLError,
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialStateError,
)
from selftune.schedule import SYSTEM_PREFIX
from selftune.storage import _schema as S
from selftune.storage._base import (
    HEARTBEAT_LOST,
    RETRIED_AS_KEY,
    BudgetSpentError,
    Storage,
    StudyInfo,
    StudySummary,
    check_finish,
    check_key,
    check_study_name,
    check_system_attrs,
    dumps,
    finish_allowed,
    finished_error,
    loads,
    not_paused_error,
    retry_fixed,
)
from selftune.storage._connection import (
    RECONNECT_TIMEOUT_ENV,
    Call,
    Connected,
    mask_url,
    postgres_engine,
    sqlite_engine,
)
from selftune.storage._statements import PostgresOneShot, Statements
from selftune.trial import TrialRecord, TrialState

__all__ = ["SQLStorage", "mask_url", "RECONNECT_TIMEOUT_ENV"]

logger = logging.getLogger("selftune")

_SCHEMA_LOCK_KEY = 0x5E1F7A4E  # pg_advisory_xact_lock key for creating the schema


class SQLStorage(Connected, Storage):
    """Storage in an SQL database: ``sqlite:///path.db`` or ``postgresql://user@host:port/db``."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 60.0,
        reconnect_timeout: float | None = None,
        wait_connect: bool = False,
    ) -> None:
        """``reconnect_timeout``: how long (seconds) an operation on PostgreSQL keeps reconnecting after its
        connection is lost before it raises; default ``$SELFTUNE_RECONNECT_TIMEOUT`` or 60. 0 never retries.
        ``wait_connect``: the URL is known to work (a worker process its driver started), so a PostgreSQL
        server that refuses the first connection is an outage, waited out as a lost connection is; by default
        the first connection fails at once (a wrong URL is the likely cause)."""
        self._init_connection(reconnect_timeout, wait_connect=wait_connect)
        try:
            sa_url = make_url(url)
        except ArgumentError:
            raise StorageURLError(
                f"malformed storage URL {mask_url(url)!r}; expected sqlite:///path.db, "
                "postgresql://user:password@host:port/database or memory"
            ) from None
        self.url = mask_url(sa_url)
        backend = sa_url.get_backend_name()
        if backend == "sqlite":
            self._engine = sqlite_engine(sa_url, busy_timeout)
        elif backend == "postgresql":
            self._engine = postgres_engine(sa_url)
        else:
            raise StorageURLError(
                f"unsupported storage URL {self.url!r}; expected sqlite:///path.db, postgresql://... or memory"
            )
        self.dialect = backend
        db = sa_url.database if backend == "sqlite" else None
        self._sqlite_file = None if not db or db == ":memory:" or db.startswith("file:") else os.path.abspath(db)
        self._init_schema()
        self._connected = True
        self._q = Statements(self._now())
        self._one = PostgresOneShot() if self.dialect == "postgresql" else None

    def artifact_root(self) -> str | None:
        """Beside an SQLite file: ``<file>.artifacts``; none for PostgreSQL (give a shared path)."""
        return None if self._sqlite_file is None else self._sqlite_file + ".artifacts"

    def _now(self) -> Any:
        """The database clock in seconds since the epoch, as an SQL expression."""
        if self.dialect == "postgresql":
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Double)
        return (sa.func.julianday("now") - 2440587.5) * 86400.0

    def _init_schema(self) -> None:
        def body(call: Call) -> int | None:
            with self._tx(call, write=True) as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                if not sa.inspect(conn).has_table(S.version.name):
                    S.metadata.create_all(conn)
                    conn.execute(sa.insert(S.version).values(id=1, schema_version=S.SCHEMA_VERSION))
                    return S.SCHEMA_VERSION
                return conn.execute(sa.select(S.version.c.schema_version)).scalar()

        found = self._run(body)
        if found is None or found > S.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"storage {self.url!r} has selftune schema version {found}, newer than this selftune's "
                f"{S.SCHEMA_VERSION}; upgrade selftune to use it"
            )

    def close(self) -> None:
        self._engine.dispose()

    # -- helpers ------------------------------------------------------------------------------------------
    def _bump(self, conn: Connection, study_id: int, new_number: bool = False) -> tuple[int, int]:
        """Take the study's lock by bumping its ``seq``; optionally draw the next trial number."""
        q = self._q.bump_number if new_number else self._q.bump
        row = conn.execute(q, {"b_sid": study_id}).first()
        if row is None:
            raise StudyNotFoundError(f"no study with id {study_id} in {self.url}")
        return int(row[0]), int(row[1])

    def _touch_running(self, conn: Connection, study_id: int, number: int, seq: int) -> int:
        """Set ``seq`` on a RUNNING trial and return its row id, or raise why not."""
        row = conn.execute(self._q.touch, {"b_sid": study_id, "b_number": number, "b_seq": seq}).first()
        if row is None:
            self._raise_not_running(conn, study_id, number)
        return int(row[0])  # type: ignore[index]

    def _raise_not_running(self, conn: Connection, study_id: int, number: int) -> None:
        t = S.trials.c
        found = conn.execute(
            sa.select(t.state, t.reason).where(t.study_id == study_id, t.number == number)
        ).first()
        if found is None:
            raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
        raise finished_error(number, TrialState(found[0]), found[1])

    def _trial_row(self, conn: Connection, study_id: int, number: int) -> Any:
        t = S.trials.c
        return conn.execute(sa.select(S.trials).where(t.study_id == study_id, t.number == number)).first()

    def _written(self, call: Call, where: Any) -> TrialRecord | None:
        """After a COMMIT of unknown outcome: the trial matching ``where`` that the lost attempt wrote, if any."""
        if not call.maybe_committed:
            return None
        with self._tx(call, write=False) as conn:
            found = self._records(conn, where)
        return found[0] if found else None

    @overload
    def _records(self, conn: Connection, where: Any) -> list[TrialRecord]: ...

    @overload
    def _records(self, conn: Connection, where: Any, with_seq: Literal[True]) -> tuple[list[TrialRecord], int]: ...

    def _records(self, conn: Connection, where: Any, with_seq: bool = False) -> Any:
        """Full records of the trials matching ``where`` (a condition on the trials table).

        With ``with_seq``, also the highest ``seq`` among them (0 if none).
        """
        t = S.trials.c
        rows = conn.execute(sa.select(S.trials).where(where).order_by(t.number)).all()
        if not rows:
            return ([], 0) if with_seq else []
        params: dict[int, dict[str, Any]] = {}
        values: dict[int, dict[int, float]] = {}
        attrs: dict[int, dict[str, Any]] = {}
        system: dict[int, dict[str, Any]] = {}
        if self._one is not None and len(rows) <= 500:  # PostgreSQL, a few trials: one round trip for all three
            for tid, kind, key, value in conn.execute(self._one.children, {"b_ids": [r.id for r in rows]}):
                if kind == 0:
                    params.setdefault(tid, {})[key] = loads(value)
                elif kind == 1:
                    values.setdefault(tid, {})[int(key)] = float(value)  # PostgreSQL's text of a double is exact
                else:
                    (system if key.startswith(SYSTEM_PREFIX) else attrs).setdefault(tid, {})[key] = loads(value)
        else:
            for tid, name, value in self._children(conn, S.trial_params, ("name", "value"), rows, where):
                params.setdefault(tid, {})[name] = loads(value)
            for tid, step, value in self._children(conn, S.trial_values, ("step", "value"), rows, where):
                values.setdefault(tid, {})[int(step)] = float(value)
            for tid, key, value in self._children(conn, S.trial_attrs, ("key", "value"), rows, where):
                (system if key.startswith(SYSTEM_PREFIX) else attrs).setdefault(tid, {})[key] = loads(value)
        records = [
            TrialRecord(
                number=r.number,
                state=TrialState(r.state),
                params=params.get(r.id, {}),
                value=r.value,
                intermediate=values.get(r.id, {}),
                user_attrs=attrs.get(r.id, {}),
                created_at=r.created_at,
                started_at=r.started_at,
                finished_at=r.finished_at,
                worker=r.worker,
                reason=r.reason,
                traceback=r.traceback,
                fixed=loads(r.fixed) or {},
                system_attrs=system.get(r.id, {}),
            )
            for r in rows
        ]
        return (records, max(int(r.seq) for r in rows)) if with_seq else records

    @staticmethod
    def _children(conn: Connection, table: sa.Table, cols: tuple[str, str], rows: Any, where: Any) -> Any:
        """Rows ``(trial_id, *cols)`` of a child table for the trials in ``rows``.

        A few trials (the usual incremental read): by primary key, so the index is used whatever the
        planner's statistics say. Many (a first read): one join, which the planner runs as a hash join.
        """
        sel = sa.select(table.c.trial_id, table.c[cols[0]], table.c[cols[1]])
        if len(rows) <= 500:
            return conn.execute(sel.where(table.c.trial_id.in_([r.id for r in rows])))
        t = S.trials.c
        return conn.execute(sel.select_from(S.trials.join(table, table.c.trial_id == t.id)).where(where))

    @staticmethod
    def _info(row: Any) -> StudyInfo:
        return StudyInfo(row.id, row.name, row.direction, loads(row.space), row.created_at, loads(row.attrs))

    # -- studies ------------------------------------------------------------------------------------------
    def create_study(self, name: str, direction: str, space: Mapping[str, Any] | None) -> StudyInfo:
        check_study_name(name)
        values = {
            "name": name,
            "direction": direction,
            "space": None if space is None else dumps(space, "space"),
            "attrs": "{}",
            "created_at": time.time(),
            "next_number": 0,
            "seq": 0,
        }

        def body(call: Call) -> StudyInfo:
            try:
                with self._tx(call, write=True) as conn:
                    row = conn.execute(sa.insert(S.studies).values(**values).returning(S.studies)).one()
            except IntegrityError:
                if call.maybe_committed:  # our lost COMMIT may have created it: same name, our created_at
                    with self._tx(call, write=False) as conn:
                        mine = conn.execute(sa.select(S.studies).where(S.studies.c.name == name)).first()
                    if mine is not None and mine.created_at == values["created_at"]:
                        return self._info(mine)
                raise StudyExistsError(f"a study named {name!r} exists already in {self.url}") from None
            return self._info(row)

        return self._run(body)

    def get_study(self, name: str) -> StudyInfo:
        def body(call: Call) -> Any:
            with self._tx(call, write=False) as conn:
                return conn.execute(sa.select(S.studies).where(S.studies.c.name == name)).first()

        row = self._run(body)
        if row is None:
            raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
        return self._info(row)

    def list_studies(self) -> list[StudySummary]:
        t = S.trials.c

        def body(call: Call) -> tuple[Any, dict[int, dict[str, int]], dict[int, tuple[Any, Any]]]:
            with self._tx(call, write=False) as conn:
                rows = conn.execute(sa.select(S.studies).order_by(S.studies.c.id)).all()
                counts: dict[int, dict[str, int]] = {}
                for sid, state, n in conn.execute(
                    sa.select(t.study_id, t.state, sa.func.count()).group_by(t.study_id, t.state)
                ):
                    counts.setdefault(sid, {})[state] = int(n)
                best = {
                    sid: (lo, hi)
                    for sid, lo, hi in conn.execute(
                        sa.select(t.study_id, sa.func.min(t.value), sa.func.max(t.value))
                        .where(t.state == TrialState.COMPLETE.value)
                        .group_by(t.study_id)
                    )
                }
            return rows, counts, best

        rows, counts, best = self._run(body)
        out = []
        for r in rows:
            lo, hi = best.get(r.id, (None, None))
            out.append(StudySummary(self._info(r), counts.get(r.id, {}), lo if r.direction == "minimize" else hi))
        return out

    def delete_study(self, name: str) -> None:
        def body(call: Call) -> None:
            with self._tx(call, write=True) as conn:
                sid = conn.execute(sa.select(S.studies.c.id).where(S.studies.c.name == name)).scalar()
                if sid is None:
                    if call.maybe_committed:  # our lost COMMIT deleted it
                        return
                    raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
                ids = sa.select(S.trials.c.id).where(S.trials.c.study_id == sid).scalar_subquery()
                for child in (S.trial_params, S.trial_values, S.trial_attrs):
                    conn.execute(sa.delete(child).where(child.c.trial_id.in_(ids)))
                conn.execute(sa.delete(S.trials).where(S.trials.c.study_id == sid))
                conn.execute(sa.delete(S.params).where(S.params.c.study_id == sid))
                conn.execute(sa.delete(S.studies).where(S.studies.c.id == sid))

        self._run(body)

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"study attribute {key!r}")

        def body(call: Call) -> None:  # idempotent: sets the key again
            with self._tx(call, write=True) as conn:
                self._bump(conn, study_id)
                attrs = loads(conn.execute(sa.select(S.studies.c.attrs).where(S.studies.c.id == study_id)).scalar())
                attrs[key] = loads(text)
                conn.execute(
                    sa.update(S.studies).where(S.studies.c.id == study_id).values(attrs=dumps(attrs, "attrs"))
                )

        self._run(body)

    # -- parameter registry -------------------------------------------------------------------------------
    def define_param(self, study_id: int, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        check_key("a parameter name", name)
        p = S.params.c
        where = (p.study_id == study_id) & (p.name == name)

        def body(call: Call) -> dict[str, Any]:  # idempotent: the first definition wins
            with self._tx(call, write=False) as conn:
                found = conn.execute(sa.select(p.spec).where(where)).scalar()
            if found is not None:
                return dict(loads(found))
            with self._tx(call, write=True) as conn:
                self._bump(conn, study_id)  # serialises concurrent first definitions
                found = conn.execute(sa.select(p.spec).where(where)).scalar()
                if found is not None:
                    return dict(loads(found))
                text = dumps(dict(spec), f"domain of parameter {name!r}")
                conn.execute(sa.insert(S.params).values(study_id=study_id, name=name, spec=text))
                return dict(loads(text))

        return self._run(body)

    def get_params(self, study_id: int) -> dict[str, dict[str, Any]]:
        p = S.params.c

        def body(call: Call) -> dict[str, dict[str, Any]]:
            with self._tx(call, write=False) as conn:
                return {n: loads(s) for n, s in conn.execute(sa.select(p.name, p.spec).where(p.study_id == study_id))}

        return self._run(body)

    # -- trials -------------------------------------------------------------------------------------------
    def _insert_trial(
        self,
        conn: Connection,
        study_id: int,
        state: TrialState,
        *,
        created_at: float,
        started_at: float | None = None,
        worker: str | None = None,
        fixed: str | None = None,
    ) -> tuple[int, int]:
        seq, next_number = self._bump(conn, study_id, new_number=True)
        number = next_number - 1
        tid = conn.execute(
            self._q.insert_trial,
            {
                "b_sid": study_id, "b_number": number, "b_state": state.value, "b_seq": seq,
                "b_created": created_at, "b_started": started_at, "b_worker": worker, "b_fixed": fixed,
                "b_beat": started_at is not None,
            },
        ).scalar_one()
        return int(tid), number

    def enqueue_trial(self, study_id: int, fixed: Mapping[str, Any]) -> TrialRecord:
        text = dumps(dict(fixed), "enqueued parameters")
        now = time.time()
        t = S.trials.c

        def body(call: Call) -> int:
            # our lost COMMIT may have enqueued it already (it may even be claimed since): created_at is ours
            mine = self._written(call, (t.study_id == study_id) & (t.created_at == now) & (t.fixed == text))
            if mine is not None:
                return mine.number
            with self._tx(call, write=True) as conn:
                return self._insert_trial(conn, study_id, TrialState.WAITING, fixed=text, created_at=now)[1]

        number = self._run(body)
        return TrialRecord(number=number, state=TrialState.WAITING, created_at=now, fixed=loads(text))

    def start_trial(
        self,
        study_id: int,
        worker: str,
        params: Mapping[str, Any] | None = None,
        *,
        claim: bool = True,
        budget: int | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> TrialRecord:
        t = S.trials.c
        now = time.time()
        clean = {k: dumps(v, f"parameter {k!r}") for k, v in (params or {}).items()}
        for k in clean:
            check_key("a parameter name", k)
        system = {} if system_attrs is None else {r["key"]: r["value"] for r in _system_rows(-1, system_attrs)}

        def body(call: Call) -> TrialRecord | int:
            # our lost COMMIT may have claimed or created it: this worker, started at our ``now``
            mine = self._written(call, (t.study_id == study_id) & (t.worker == worker) & (t.started_at == now))
            if mine is not None:
                return mine
            if self._one is not None and not claim:  # PostgreSQL: one statement when nothing is to be claimed
                row = self._one_shot(call, self._one.start, {
                    "b_sid": study_id, "b_budget": budget, "b_retried": RETRIED_AS_KEY, "b_now": now,
                    "b_worker": worker, "b_names": list(clean), "b_values": list(clean.values()),
                    "b_keys": list(system), "b_attrs": list(system.values()),
                })
                if row is not None:
                    return int(row[0])
            with self._tx(call, write=True) as conn:
                if budget is not None:
                    _, next_number = self._bump(conn, study_id)  # the study's lock first: the check holds
                    waiting, retried = conn.execute(self._q.unstarted, {"b_sid": study_id}).one()
                    started = next_number - int(waiting) - int(retried)
                    if started >= budget:
                        raise BudgetSpentError(f"study id {study_id} has {started} started trials (budget {budget})")
                while claim:
                    waiting = conn.execute(self._q.first_waiting, {"b_sid": study_id}).scalar()
                    if waiting is None:
                        break
                    seq, _ = self._bump(conn, study_id)
                    claimed = conn.execute(
                        self._q.claim, {"b_id": waiting, "b_now": now, "b_worker": worker, "b_seq": seq}
                    ).rowcount
                    if claimed == 1:  # exactly one worker takes it
                        if system:
                            self._put_system(conn, waiting, system)
                        return self._records(conn, t.id == waiting)[0]
                tid, number = self._insert_trial(
                    conn, study_id, TrialState.RUNNING, created_at=now, started_at=now, worker=worker,
                )
                if clean:
                    conn.execute(
                        sa.insert(S.trial_params), [{"trial_id": tid, "name": k, "value": v} for k, v in clean.items()]
                    )
                if system:
                    self._put_system(conn, tid, system)
            return number

        out = self._run(body)
        if isinstance(out, TrialRecord):
            return out
        return TrialRecord(
            number=out, state=TrialState.RUNNING, params={k: loads(v) for k, v in clean.items()},
            created_at=now, started_at=now, worker=worker, system_attrs={k: loads(v) for k, v in system.items()},
        )

    @staticmethod
    def _put_system(conn: Connection, tid: int, system: Mapping[str, str]) -> None:
        """Set system attributes (JSON texts) on the trial with row id ``tid``."""
        a = S.trial_attrs.c
        conn.execute(sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key.in_(list(system))))
        conn.execute(sa.insert(S.trial_attrs), [{"trial_id": tid, "key": k, "value": v} for k, v in system.items()])

    def set_trial_params(self, study_id: int, number: int, params: Mapping[str, Any]) -> None:
        rows = _param_rows(number, params)
        p = S.trial_params.c

        def body(call: Call) -> None:
            try:
                if self._one is not None:  # PostgreSQL: one statement; no row: not RUNNING (the general path says)
                    if self._one_shot(call, self._one.set_params, {
                        "b_sid": study_id, "b_number": number, "b_names": [r["name"] for r in rows],
                        "b_values": [r["value"] for r in rows],
                    }) is not None:
                        return
                with self._tx(call, write=True) as conn:
                    seq, _ = self._bump(conn, study_id)
                    tid = self._touch_running(conn, study_id, number, seq)
                    conn.execute(sa.insert(S.trial_params), [{"trial_id": tid, **r} for r in rows])
            except IntegrityError:
                if call.maybe_committed:  # our lost COMMIT may have stored them: equal values are ours
                    with self._tx(call, write=False) as conn:
                        row = self._trial_row(conn, study_id, number)
                        stored = {} if row is None else dict(
                            conn.execute(sa.select(p.name, p.value).where(p.trial_id == row.id)).all()
                        )
                    if all(r["name"] in stored and loads(stored[r["name"]]) == loads(r["value"]) for r in rows):
                        return
                raise TrialStateError(f"trial {number}: one of {list(params)} is set already") from None

        self._run(body)

    def report(self, study_id: int, number: int, step: int, value: float) -> None:
        v = S.trial_values.c

        def body(call: Call) -> None:
            try:
                if self._one is not None:  # PostgreSQL: one statement; no row: not RUNNING (the general path says)
                    if self._one_shot(call, self._one.report, {
                        "b_sid": study_id, "b_number": number, "b_step": int(step), "b_value": float(value),
                    }) is not None:
                        return
                with self._tx(call, write=True) as conn:
                    seq, _ = self._bump(conn, study_id)
                    tid = self._touch_running(conn, study_id, number, seq)
                    conn.execute(sa.insert(S.trial_values).values(trial_id=tid, step=int(step), value=float(value)))
            except IntegrityError:
                if call.maybe_committed:  # our lost COMMIT may have stored it: the same value is ours
                    with self._tx(call, write=False) as conn:
                        row = self._trial_row(conn, study_id, number)
                        stored = None if row is None else conn.execute(
                            sa.select(v.value).where(v.trial_id == row.id, v.step == int(step))
                        ).scalar()
                    if stored is not None and float(stored) == float(value):
                        return
                raise TrialStateError(f"trial {number}: step {step} is reported already") from None

        self._run(body)

    def set_trial_attr(self, study_id: int, number: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"trial {number}: attribute {key!r}")
        a = S.trial_attrs.c

        def body(call: Call) -> None:  # idempotent: replaces the key
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                tid = self._touch_running(conn, study_id, number, seq)
                conn.execute(sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key == key))
                conn.execute(sa.insert(S.trial_attrs).values(trial_id=tid, key=key, value=text))

        self._run(body)

    def finish_trial(
        self,
        study_id: int,
        number: int,
        state: TrialState,
        value: float | None = None,
        reason: str | None = None,
        traceback: str | None = None,
    ) -> None:
        check_finish(number, state, value)
        allowed = [st.value for st in finish_allowed(state)]

        def body(call: Call) -> None:
            if self._one is not None:  # PostgreSQL: one statement; no row: not RUNNING, the general path says why
                if self._one_shot(call, self._one.finish, {
                    "b_sid": study_id, "b_number": number, "b_allowed": allowed, "b_state": state.value,
                    "b_value": value, "b_reason": reason, "b_tb": traceback,
                }) is not None:
                    return
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                row = conn.execute(
                    self._q.finish,
                    {
                        "b_sid": study_id, "b_number": number, "b_allowed": allowed, "b_state": state.value,
                        "b_value": value, "b_reason": reason, "b_tb": traceback, "b_seq": seq,
                    },
                ).first()
                if row is None:
                    if call.maybe_committed:  # our lost COMMIT may have finished it: the same outcome is ours
                        found = self._trial_row(conn, study_id, number)
                        if (
                            found is not None
                            and found.state == state.value
                            and found.reason == reason
                            and (found.value == value if value is not None else found.value is None)
                        ):
                            return
                    self._raise_not_running(conn, study_id, number)

        self._run(body)

    def stop_paused_trial(
        self, study_id: int, number: int, last_step: int, value: float | None, reason: str | None
    ) -> None:
        check_finish(number, TrialState.STOPPED, value)
        t = S.trials.c
        cond, at = _paused_at(study_id, number, last_step)

        def body(call: Call) -> None:
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                row = conn.execute(
                    sa.update(S.trials)
                    .where(*cond)
                    .values(state=TrialState.STOPPED.value, value=value, reason=reason, finished_at=self._now(),
                            seq=seq)
                    .returning(t.id)
                ).first()
                if row is None:
                    state, step, why = self._paused_miss(conn, study_id, number, at, t.reason)
                    if call.maybe_committed and state is TrialState.STOPPED and why == reason:
                        return  # our lost COMMIT stopped it
                    raise not_paused_error(number, state, step, last_step, "stopped")

        self._run(body)

    def _paused_miss(
        self, conn: Connection, study_id: int, number: int, at: Any, column: Any
    ) -> tuple[TrialState, int, Any]:
        """Why a change conditioned on PAUSED at a step matched no row: the trial's state, latest step and
        ``column``; :class:`TrialNotFoundError` if there is no such trial."""
        t = S.trials.c
        found = conn.execute(sa.select(t.state, at, column).where(t.study_id == study_id, t.number == number)).first()
        if found is None:
            raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
        return TrialState(found[0]), int(found[1]), found[2]

    def pause_trial(self, study_id: int, number: int) -> None:
        t = S.trials.c

        def body(call: Call) -> None:
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                row = conn.execute(
                    sa.update(S.trials)
                    .where(t.study_id == study_id, t.number == number, t.state == TrialState.RUNNING.value)
                    .values(state=TrialState.PAUSED.value, heartbeat_at=None, seq=seq)
                    .returning(t.id)
                ).first()
                if row is None:
                    if call.maybe_committed:  # our lost COMMIT may have paused it
                        found = self._trial_row(conn, study_id, number)
                        if found is not None and found.state == TrialState.PAUSED.value:
                            return
                    self._raise_not_running(conn, study_id, number)

        self._run(body)

    def resume_trial(
        self,
        study_id: int,
        number: int,
        worker: str,
        *,
        last_step: int | None = None,
        params: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> TrialRecord:
        t = S.trials.c
        new_params = None if params is None else _param_rows(number, params)
        new_attrs = None if system_attrs is None else _system_rows(number, system_attrs)
        cond, at = _paused_at(study_id, number, last_step)

        def body(call: Call) -> TrialRecord:
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                row = conn.execute(
                    sa.update(S.trials)
                    .where(*cond)
                    .values(state=TrialState.RUNNING.value, worker=worker, heartbeat_at=self._now(), seq=seq)
                    .returning(t.id)
                ).first()
                if row is None:
                    state, step, owner = self._paused_miss(conn, study_id, number, at, t.worker)
                    if call.maybe_committed and state is TrialState.RUNNING and owner == worker:
                        # our lost COMMIT resumed it
                        return self._records(conn, (t.study_id == study_id) & (t.number == number))[0]
                    raise not_paused_error(number, state, step, last_step, "resumed")
                tid = int(row[0])
                if new_params is not None:  # an exploit: the trial goes on with another member's parameters
                    conn.execute(sa.delete(S.trial_params).where(S.trial_params.c.trial_id == tid))
                    if new_params:
                        conn.execute(sa.insert(S.trial_params), [{"trial_id": tid, **r} for r in new_params])
                if new_attrs:
                    a = S.trial_attrs.c
                    conn.execute(
                        sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key.in_([r["key"] for r in new_attrs]))
                    )
                    conn.execute(sa.insert(S.trial_attrs), [{"trial_id": tid, **r} for r in new_attrs])
                return self._records(conn, t.id == tid)[0]

        return self._run(body)

    def retry_trial(self, study_id: int, number: int, max_attempts: int) -> TrialRecord | None:
        t = S.trials.c
        now = time.time()

        def body(call: Call) -> TrialRecord | None:
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)  # serialises concurrent retries of the same trial
                found = self._records(conn, (t.study_id == study_id) & (t.number == number))
                if not found:
                    raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
                retried_as = found[0].system_attrs.get(RETRIED_AS_KEY)
                if call.maybe_committed and retried_as is not None:
                    # retried already: by our lost COMMIT if the retry's created_at is ours
                    again = self._records(conn, (t.study_id == study_id) & (t.number == int(retried_as)))
                    if again and again[0].created_at == now:
                        r = again[0]
                        return TrialRecord(number=r.number, state=TrialState.WAITING, created_at=now, fixed=r.fixed)
                fixed = retry_fixed(found[0], max_attempts)
                if fixed is None:
                    return None
                text = dumps(fixed, f"trial {number}: retried parameters")
                _tid, new = self._insert_trial(conn, study_id, TrialState.WAITING, fixed=text, created_at=now)
                old = conn.execute(
                    sa.update(S.trials).where(t.study_id == study_id, t.number == number).values(seq=seq).returning(t.id)
                ).scalar_one()
                conn.execute(
                    sa.insert(S.trial_attrs).values(trial_id=old, key=RETRIED_AS_KEY, value=dumps(new, "number"))
                )
            return TrialRecord(number=new, state=TrialState.WAITING, created_at=now, fixed=loads(text))

        return self._run(body)

    def heartbeat(self, study_id: int, numbers: Sequence[int]) -> list[int]:
        if not numbers:
            return []

        def body(call: Call) -> set[int]:  # idempotent
            with self._tx(call, write=True) as conn:
                return {n for (n,) in conn.execute(self._q.heartbeat, {"b_sid": study_id, "b_numbers": list(numbers)})}

        alive = self._run(body)
        return [n for n in numbers if n not in alive]

    def reap(self, study_id: int, grace: float) -> list[int]:
        """Never retried: a lost connection reaps nothing this time (see the module doc)."""
        t = S.trials.c
        stale = (
            (t.study_id == study_id)
            & (t.state == TrialState.RUNNING.value)
            & (t.heartbeat_at < self._now() - float(grace))
        )

        def body(call: Call) -> list[int]:
            reconnecting = self._down_since is not None  # after an outage every heartbeat is stale
            with self._tx(call, write=False) as conn:
                if conn.execute(sa.select(t.id).where(stale).limit(1)).first() is None or reconnecting:
                    return []
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                reaped = conn.execute(
                    sa.update(S.trials)
                    .where(stale)
                    .values(state=TrialState.FAILED.value, reason=HEARTBEAT_LOST, finished_at=self._now(), seq=seq)
                    .returning(t.number)
                ).all()
            return sorted(int(n) for (n,) in reaped)

        return self._run(body, retry=False, lost=[])

    def read_trials(self, study_id: int, cursor: int = 0) -> tuple[list[TrialRecord], int]:
        t = S.trials.c

        def body(call: Call) -> tuple[list[TrialRecord], int]:
            with self._tx(call, write=False) as conn:
                return self._records(conn, (t.study_id == study_id) & (t.seq > cursor), with_seq=True)

        records, top = self._run(body)
        return records, max(cursor, top)

    def trial_seqs(self, study_id: int) -> dict[int, int]:
        t = S.trials.c

        def body(call: Call) -> dict[int, int]:
            with self._tx(call, write=False) as conn:
                return {int(n): int(q) for n, q in conn.execute(sa.select(t.number, t.seq).where(t.study_id == study_id))}

        return self._run(body)

    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        t = S.trials.c

        def body(call: Call) -> list[TrialRecord]:
            with self._tx(call, write=False) as conn:
                return self._records(conn, (t.study_id == study_id) & (t.number == number))

        found = self._run(body)
        if not found:
            raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
        return found[0]


def _paused_at(study_id: int, number: int, last_step: int | None) -> tuple[list[Any], Any]:
    """The WHERE of a change to trial ``number`` only while it is PAUSED at ``last_step`` (any step if None),
    and the expression of its latest step (-1 for none)."""
    t, v = S.trials.c, S.trial_values.c
    at = sa.func.coalesce(sa.select(sa.func.max(v.step)).where(v.trial_id == t.id).scalar_subquery(), -1)
    cond = [t.study_id == study_id, t.number == number, t.state == TrialState.PAUSED.value]
    if last_step is not None:
        cond.append(at == int(last_step))
    return cond, at


def _param_rows(number: int, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for k, v in params.items():
        check_key("a parameter name", k)
        rows.append({"name": k, "value": dumps(v, f"trial {number}: parameter {k!r}")})
    return rows


def _system_rows(number: int, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    check_system_attrs(number, attrs)
    return [{"key": k, "value": dumps(v, f"trial {number}: attribute {k!r}")} for k, v in attrs.items()]
