"""SQL storage on SQLAlchemy Core: SQLite (default, WAL) and PostgreSQL (psycopg 3).

Concurrency rules:
- every change runs in a write transaction that first bumps the study's ``seq`` (``UPDATE ... RETURNING``),
  which locks the study row on PostgreSQL and, with ``BEGIN IMMEDIATE``, the database on SQLite. Changes of
  one study therefore commit in ``seq`` order, so a reader that has seen ``seq = s`` never misses an
  earlier change: :meth:`SQLStorage.read_trials` reads only rows with ``seq > cursor``.
- trial numbers come from the study row's ``next_number`` counter, backed by a unique constraint.
- heartbeats and the reaper use the database's clock, so workers on machines with skewed clocks agree.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError

from selftune.exceptions import (
    MissingDependencyError,
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
    retry_fixed,
)
from selftune.storage._statements import Statements
from selftune.trial import TrialRecord, TrialState

__all__ = ["SQLStorage", "mask_url"]

_SCHEMA_LOCK_KEY = 0x5E1F7A4E  # pg_advisory_xact_lock key for creating the schema


def mask_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL too broken to parse is shown without its credentials part
        text = str(url)
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return text


class SQLStorage(Storage):
    """Storage in an SQL database: ``sqlite:///path.db`` or ``postgresql://user@host:port/db``."""

    def __init__(self, url: str, *, busy_timeout: float = 60.0) -> None:
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
            self._engine = self._sqlite_engine(sa_url, busy_timeout)
        elif backend == "postgresql":
            self._engine = self._postgres_engine(sa_url)
        else:
            raise StorageURLError(
                f"unsupported storage URL {self.url!r}; expected sqlite:///path.db, postgresql://... or memory"
            )
        self.dialect = backend
        db = sa_url.database if backend == "sqlite" else None
        self._sqlite_file = None if not db or db == ":memory:" or db.startswith("file:") else os.path.abspath(db)
        self._init_schema()
        self._q = Statements(self._now())

    def artifact_root(self) -> str | None:
        """Beside an SQLite file: ``<file>.artifacts``; none for PostgreSQL (give a shared path)."""
        return None if self._sqlite_file is None else self._sqlite_file + ".artifacts"

    # -- engines ----------------------------------------------------------------------------------------
    @staticmethod
    def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
        if url.database in (None, "", ":memory:"):
            raise StorageURLError("an SQLite storage needs a file path (sqlite:///path.db); use 'memory' for memory")
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, pool_pre_ping=False
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # a read-then-write needs the write lock from the start, or concurrent writers deadlock
            write = conn.get_execution_options().get("selftune_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @staticmethod
    def _postgres_engine(url: URL) -> Engine:
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        try:
            return sa.create_engine(url, pool_size=4, max_overflow=4)
        except (ModuleNotFoundError, NoSuchModuleError) as exc:
            raise MissingDependencyError(
                f"PostgreSQL storage needs psycopg ({exc}); install it with: pip install 'selftune[postgres]'"
            ) from None

    # -- transactions -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        try:
            conn = self._engine.connect()
        except OperationalError as exc:
            raise StorageURLError(f"cannot connect to storage {self.url!r}: {_first_line(exc)}") from None
        with conn:
            if write:
                conn.execution_options(selftune_write=True)
                with conn.begin():
                    yield conn
            elif self.dialect == "postgresql":
                # Reads need no transaction: changes of a study commit in seq order (see the module doc), so
                # statement-level snapshots never show a change without the earlier ones.
                conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            else:
                with conn.begin():  # SQLite: a deferred BEGIN costs no I/O and gives one WAL snapshot
                    yield conn

    def _now(self) -> Any:
        """The database clock in seconds since the epoch, as an SQL expression."""
        if self.dialect == "postgresql":
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Double)
        return (sa.func.julianday("now") - 2440587.5) * 86400.0

    def _init_schema(self) -> None:
        with self._tx(write=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            if not sa.inspect(conn).has_table(S.version.name):
                S.metadata.create_all(conn)
                conn.execute(sa.insert(S.version).values(id=1, schema_version=S.SCHEMA_VERSION))
                return
            found = conn.execute(sa.select(S.version.c.schema_version)).scalar()
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
        for tid, name, value in self._children(conn, S.trial_params, ("name", "value"), rows, where):
            params.setdefault(tid, {})[name] = loads(value)
        for tid, step, value in self._children(conn, S.trial_values, ("step", "value"), rows, where):
            values.setdefault(tid, {})[int(step)] = float(value)
        system: dict[int, dict[str, Any]] = {}
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
        try:
            with self._tx(write=True) as conn:
                row = conn.execute(sa.insert(S.studies).values(**values).returning(S.studies)).one()
        except IntegrityError:
            raise StudyExistsError(f"a study named {name!r} exists already in {self.url}") from None
        return self._info(row)

    def get_study(self, name: str) -> StudyInfo:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(S.studies).where(S.studies.c.name == name)).first()
        if row is None:
            raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
        return self._info(row)

    def list_studies(self) -> list[StudySummary]:
        t = S.trials.c
        with self._tx(write=False) as conn:
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
        out = []
        for r in rows:
            lo, hi = best.get(r.id, (None, None))
            out.append(StudySummary(self._info(r), counts.get(r.id, {}), lo if r.direction == "minimize" else hi))
        return out

    def delete_study(self, name: str) -> None:
        with self._tx(write=True) as conn:
            sid = conn.execute(sa.select(S.studies.c.id).where(S.studies.c.name == name)).scalar()
            if sid is None:
                raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
            ids = sa.select(S.trials.c.id).where(S.trials.c.study_id == sid).scalar_subquery()
            for child in (S.trial_params, S.trial_values, S.trial_attrs):
                conn.execute(sa.delete(child).where(child.c.trial_id.in_(ids)))
            conn.execute(sa.delete(S.trials).where(S.trials.c.study_id == sid))
            conn.execute(sa.delete(S.params).where(S.params.c.study_id == sid))
            conn.execute(sa.delete(S.studies).where(S.studies.c.id == sid))

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"study attribute {key!r}")
        with self._tx(write=True) as conn:
            self._bump(conn, study_id)
            attrs = loads(conn.execute(sa.select(S.studies.c.attrs).where(S.studies.c.id == study_id)).scalar())
            attrs[key] = loads(text)
            conn.execute(sa.update(S.studies).where(S.studies.c.id == study_id).values(attrs=dumps(attrs, "attrs")))

    # -- parameter registry -------------------------------------------------------------------------------
    def define_param(self, study_id: int, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        check_key("a parameter name", name)
        p = S.params.c
        where = (p.study_id == study_id) & (p.name == name)
        with self._tx(write=False) as conn:
            found = conn.execute(sa.select(p.spec).where(where)).scalar()
        if found is not None:
            return dict(loads(found))
        with self._tx(write=True) as conn:
            self._bump(conn, study_id)  # serialises concurrent first definitions
            found = conn.execute(sa.select(p.spec).where(where)).scalar()
            if found is not None:
                return dict(loads(found))
            text = dumps(dict(spec), f"domain of parameter {name!r}")
            conn.execute(sa.insert(S.params).values(study_id=study_id, name=name, spec=text))
            return dict(loads(text))

    def get_params(self, study_id: int) -> dict[str, dict[str, Any]]:
        p = S.params.c
        with self._tx(write=False) as conn:
            return {n: loads(s) for n, s in conn.execute(sa.select(p.name, p.spec).where(p.study_id == study_id))}

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
        with self._tx(write=True) as conn:
            _tid, number = self._insert_trial(conn, study_id, TrialState.WAITING, fixed=text, created_at=now)
        return TrialRecord(number=number, state=TrialState.WAITING, created_at=now, fixed=loads(text))

    def start_trial(
        self, study_id: int, worker: str, params: Mapping[str, Any] | None = None, *, claim: bool = True
    ) -> TrialRecord:
        t = S.trials.c
        now = time.time()
        clean = {k: dumps(v, f"parameter {k!r}") for k, v in (params or {}).items()}
        for k in clean:
            check_key("a parameter name", k)
        with self._tx(write=True) as conn:
            while claim:
                waiting = conn.execute(self._q.first_waiting, {"b_sid": study_id}).scalar()
                if waiting is None:
                    break
                seq, _ = self._bump(conn, study_id)
                claimed = conn.execute(
                    self._q.claim, {"b_id": waiting, "b_now": now, "b_worker": worker, "b_seq": seq}
                ).rowcount
                if claimed == 1:  # exactly one worker takes it
                    return self._records(conn, t.id == waiting)[0]
            tid, number = self._insert_trial(
                conn, study_id, TrialState.RUNNING, created_at=now, started_at=now, worker=worker,
            )
            if clean:
                conn.execute(
                    sa.insert(S.trial_params), [{"trial_id": tid, "name": k, "value": v} for k, v in clean.items()]
                )
        return TrialRecord(
            number=number, state=TrialState.RUNNING, params={k: loads(v) for k, v in clean.items()},
            created_at=now, started_at=now, worker=worker,
        )

    def set_trial_params(self, study_id: int, number: int, params: Mapping[str, Any]) -> None:
        rows = _param_rows(number, params)
        try:
            with self._tx(write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                tid = self._touch_running(conn, study_id, number, seq)
                conn.execute(sa.insert(S.trial_params), [{"trial_id": tid, **r} for r in rows])
        except IntegrityError:
            raise TrialStateError(f"trial {number}: one of {list(params)} is set already") from None

    def report(self, study_id: int, number: int, step: int, value: float) -> None:
        try:
            with self._tx(write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                tid = self._touch_running(conn, study_id, number, seq)
                conn.execute(sa.insert(S.trial_values).values(trial_id=tid, step=int(step), value=float(value)))
        except IntegrityError:
            raise TrialStateError(f"trial {number}: step {step} is reported already") from None

    def set_trial_attr(self, study_id: int, number: int, key: str, value: Any) -> None:
        check_key("an attribute key", key)
        text = dumps(value, f"trial {number}: attribute {key!r}")
        a = S.trial_attrs.c
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)
            tid = self._touch_running(conn, study_id, number, seq)
            conn.execute(sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key == key))
            conn.execute(sa.insert(S.trial_attrs).values(trial_id=tid, key=key, value=text))

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
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)
            row = conn.execute(
                self._q.finish,
                {
                    "b_sid": study_id, "b_number": number, "b_allowed": allowed, "b_state": state.value,
                    "b_value": value, "b_reason": reason, "b_tb": traceback, "b_now": time.time(), "b_seq": seq,
                },
            ).first()
            if row is None:
                self._raise_not_running(conn, study_id, number)

    def pause_trial(self, study_id: int, number: int) -> None:
        t = S.trials.c
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)
            row = conn.execute(
                sa.update(S.trials)
                .where(t.study_id == study_id, t.number == number, t.state == TrialState.RUNNING.value)
                .values(state=TrialState.PAUSED.value, heartbeat_at=None, seq=seq)
                .returning(t.id)
            ).first()
            if row is None:
                self._raise_not_running(conn, study_id, number)

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
        t, v = S.trials.c, S.trial_values.c
        new_params = None if params is None else _param_rows(number, params)
        new_attrs = None if system_attrs is None else _system_rows(number, system_attrs)
        cond = [t.study_id == study_id, t.number == number, t.state == TrialState.PAUSED.value]
        at = sa.func.coalesce(sa.select(sa.func.max(v.step)).where(v.trial_id == t.id).scalar_subquery(), -1)
        if last_step is not None:
            cond.append(at == int(last_step))
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)
            row = conn.execute(
                sa.update(S.trials)
                .where(*cond)
                .values(state=TrialState.RUNNING.value, worker=worker, heartbeat_at=self._now(), seq=seq)
                .returning(t.id)
            ).first()
            if row is None:
                found = conn.execute(
                    sa.select(t.state, at).where(t.study_id == study_id, t.number == number)
                ).first()
                if found is None:
                    raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
                if found[0] == TrialState.PAUSED.value:
                    raise TrialStateError(
                        f"trial {number} is PAUSED at step {found[1]}, not at step {last_step}; it was not resumed"
                    )
                raise TrialStateError(f"trial {number} is {found[0]}, not PAUSED; it cannot be resumed")
            tid = int(row[0])
            if new_params is not None:  # an exploit: the trial goes on with another member's parameters
                conn.execute(sa.delete(S.trial_params).where(S.trial_params.c.trial_id == tid))
                if new_params:
                    conn.execute(sa.insert(S.trial_params), [{"trial_id": tid, **r} for r in new_params])
            if new_attrs:
                a = S.trial_attrs.c
                conn.execute(sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key.in_([r["key"] for r in new_attrs])))
                conn.execute(sa.insert(S.trial_attrs), [{"trial_id": tid, **r} for r in new_attrs])
            return self._records(conn, t.id == tid)[0]

    def retry_trial(self, study_id: int, number: int, max_attempts: int) -> TrialRecord | None:
        t = S.trials.c
        now = time.time()
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)  # serialises concurrent retries of the same trial
            found = self._records(conn, (t.study_id == study_id) & (t.number == number))
            if not found:
                raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
            fixed = retry_fixed(found[0], max_attempts)
            if fixed is None:
                return None
            text = dumps(fixed, f"trial {number}: retried parameters")
            _tid, new = self._insert_trial(conn, study_id, TrialState.WAITING, fixed=text, created_at=now)
            old = conn.execute(
                sa.update(S.trials).where(t.study_id == study_id, t.number == number).values(seq=seq).returning(t.id)
            ).scalar_one()
            conn.execute(sa.insert(S.trial_attrs).values(trial_id=old, key=RETRIED_AS_KEY, value=dumps(new, "number")))
        return TrialRecord(number=new, state=TrialState.WAITING, created_at=now, fixed=loads(text))

    def heartbeat(self, study_id: int, numbers: Sequence[int]) -> list[int]:
        if not numbers:
            return []
        with self._tx(write=True) as conn:
            alive = {n for (n,) in conn.execute(self._q.heartbeat, {"b_sid": study_id, "b_numbers": list(numbers)})}
        return [n for n in numbers if n not in alive]

    def reap(self, study_id: int, grace: float) -> list[int]:
        t = S.trials.c
        stale = (
            (t.study_id == study_id)
            & (t.state == TrialState.RUNNING.value)
            & (t.heartbeat_at < self._now() - float(grace))
        )
        with self._tx(write=False) as conn:
            if conn.execute(sa.select(t.id).where(stale).limit(1)).first() is None:
                return []
        with self._tx(write=True) as conn:
            seq, _ = self._bump(conn, study_id)
            reaped = conn.execute(
                sa.update(S.trials)
                .where(stale)
                .values(state=TrialState.FAILED.value, reason=HEARTBEAT_LOST, finished_at=self._now(), seq=seq)
                .returning(t.number)
            ).all()
        return sorted(int(n) for (n,) in reaped)

    def read_trials(self, study_id: int, cursor: int = 0) -> tuple[list[TrialRecord], int]:
        t = S.trials.c
        with self._tx(write=False) as conn:
            records, top = self._records(conn, (t.study_id == study_id) & (t.seq > cursor), with_seq=True)
        return records, max(cursor, top)

    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        t = S.trials.c
        with self._tx(write=False) as conn:
            found = self._records(conn, (t.study_id == study_id) & (t.number == number))
        if not found:
            raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
        return found[0]


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def _param_rows(number: int, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for k, v in params.items():
        check_key("a parameter name", k)
        rows.append({"name": k, "value": dumps(v, f"trial {number}: parameter {k!r}")})
    return rows


def _system_rows(number: int, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    check_system_attrs(number, attrs)
    return [{"key": k, "value": dumps(v, f"trial {number}: attribute {k!r}")} for k, v in attrs.items()]
