"""SQL storage on SQLAlchemy Core: SQLite (default, WAL) and PostgreSQL (psycopg 3).

Concurrency rules:
- every change runs in a write transaction that first bumps the study's ``seq`` (``UPDATE ... RETURNING``),
  which locks the study row on PostgreSQL and, with ``BEGIN IMMEDIATE``, the database on SQLite. Changes of
  one study therefore commit in ``seq`` order, so a reader that has seen ``seq = s`` never misses an
  earlier change: :meth:`SQLStorage.read_trials` reads only rows with ``seq > cursor``.
- trial numbers come from the study row's ``next_number`` counter, backed by a unique constraint.
- heartbeats and the reaper use the database's clock, so workers on machines with skewed clocks agree.

Connection loss (PostgreSQL):
- every operation runs in :meth:`SQLStorage._run`: when the connection is lost or the server cannot be
  reached (a restart, a dropped TCP connection: psycopg ``OperationalError`` without an SQL state or with
  class 08, 57P01-57P03, 53300, or anything SQLAlchemy flags as a disconnect) the whole operation runs
  again on a new connection after a jittered exponential backoff (at once, then 0.05 s doubling to 2 s)
  until ``reconnect_timeout`` seconds (default 60, or ``$SELFTUNE_RECONNECT_TIMEOUT``) have passed since its
  first failure; then :class:`~selftune.exceptions.StorageURLError` names the URL (password masked) and how
  long it tried. Nothing else is retried (integrity errors, state errors, SQL errors).
- a disconnect invalidates the pool, so stale pooled connections (the server restarted while this process
  was idle) cost one failed statement and an immediate retry, never an error. No ``pool_pre_ping``: it would
  add a round trip to every transaction.
- a storage that has never connected fails at once (``cannot connect``): a URL that never answered is far
  more likely wrong than restarting.
- TCP keepalives and ``tcp_user_timeout`` (unless the URL sets them) turn a silently dropped connection into an
  error within about 30 s instead of a hang; ``connect_timeout`` is 10 s.
- SQLite has no server to lose; its lock waits are bounded by ``busy_timeout`` and nothing is retried.

Writes whose COMMIT outcome is unknown (the connection died while committing; only then, since a
connection lost before COMMIT rolls the transaction back) are retried so that a second application is
recognised rather than refused or doubled:
- ``finish_trial``: the trial already finished in the same state with the same value and reason: success;
- ``report``: the step is stored with the same value: success; ``set_trial_params``: every value is stored
  and equal: success; ``pause_trial``: the trial is PAUSED: success; ``resume_trial``: RUNNING by this worker:
  its record; ``delete_study``: the study is gone: success; ``create_study``: a study of that name with our
  ``created_at``: its info;
- ``start_trial``, ``enqueue_trial`` and ``retry_trial`` look for the trial their first attempt may have
  written (same ``created_at``, and for ``start_trial`` the same worker and ``started_at``; ``time.time()``
  taken once per call) and return it instead of writing a second one, so none of them duplicates a trial.
  Were one ever duplicated anyway, nothing is lost: a started trial nobody runs is reaped FAILED after the
  grace period, and a duplicated WAITING trial is one more trial of the budget;
- ``set_trial_attr``, ``set_study_attr``, ``define_param`` and ``heartbeat`` are idempotent as they stand.
- ``reap`` is never retried, and reaps nothing in a call that finds this storage reconnecting: after an
  outage every heartbeat is stale. :attr:`SQLStorage.reconnected_at` tells the heartbeat thread when the
  last outage ended, so it waits a grace period of working storage before it reaps again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from selftune.exceptions import (
    InvalidParameterError,
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
    retry_fixed,
)
from selftune.storage._statements import PostgresOneShot, Statements
from selftune.trial import TrialRecord, TrialState

__all__ = ["SQLStorage", "mask_url", "RECONNECT_TIMEOUT_ENV"]

logger = logging.getLogger("selftune")

_SCHEMA_LOCK_KEY = 0x5E1F7A4E  # pg_advisory_xact_lock key for creating the schema
RECONNECT_TIMEOUT_ENV = "SELFTUNE_RECONNECT_TIMEOUT"
DEFAULT_RECONNECT_TIMEOUT = 60.0
BACKOFF_FIRST = 0.05  # seconds before the second retry (the first is immediate: a stale pooled connection)
BACKOFF_MAX = 2.0
# SQL states of a lost or refused connection: class 08 (connection exception), admin/crash shutdown, the
# server starting up or shutting down (57P03), too many clients while everyone reconnects (53300)
_CONNECTION_STATES = ("57P01", "57P02", "57P03", "53300")
# libpq settings unless the URL sets them: a silently dropped connection errors instead of hanging forever
_PG_CONNECT_DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}

_T = TypeVar("_T")


class _Call:
    """The state of one storage operation across its attempts."""

    __slots__ = ("attempts", "first_failure", "connecting", "commit_started", "maybe_committed")

    def __init__(self) -> None:
        self.attempts = 0
        self.first_failure: float | None = None
        self.connecting = False
        self.commit_started = False  # this attempt's write transaction reached its COMMIT
        self.maybe_committed = False  # an earlier attempt died in its COMMIT: its writes may be stored


def _reconnect_timeout(value: float | None) -> float:
    source = "reconnect_timeout"
    if value is None:
        text = os.environ.get(RECONNECT_TIMEOUT_ENV, "").strip()
        if not text:
            return DEFAULT_RECONNECT_TIMEOUT
        source = f"${RECONNECT_TIMEOUT_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise InvalidParameterError(f"{source} must be a number of seconds >= 0, got {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
        raise InvalidParameterError(f"{source} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _connection_error(exc: BaseException) -> bool:
    """Whether a PostgreSQL error means the connection is lost or cannot be made (worth reconnecting)."""
    if isinstance(exc, IntegrityError):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig  # type: ignore[assignment]
    try:
        import psycopg
    except ModuleNotFoundError:  # pragma: no cover - no PostgreSQL without it
        return False
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = getattr(exc, "sqlstate", None)
    if state is None:  # raised by the client: connection refused, reset, closed, timed out
        return True
    return state.startswith("08") or state in _CONNECTION_STATES


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

    #: ``time.monotonic()`` when an operation last succeeded after this storage had lost its connection
    #: (None: never lost); the heartbeat thread waits a grace period of working storage after it to reap
    reconnected_at: float | None = None
    #: the longest sleep between two reconnection attempts (seconds)
    backoff_max: float = BACKOFF_MAX

    def __init__(self, url: str, *, busy_timeout: float = 60.0, reconnect_timeout: float | None = None) -> None:
        """``reconnect_timeout``: how long (seconds) an operation on PostgreSQL keeps reconnecting after its
        connection is lost before it raises; default ``$SELFTUNE_RECONNECT_TIMEOUT`` or 60. 0 never retries."""
        self.reconnect_timeout = _reconnect_timeout(reconnect_timeout)
        self._connected = False  # a storage that never connected fails at once: its URL is likely wrong
        self._down_since: float | None = None  # monotonic time of the first failure of an ongoing outage
        self._outage_lock = threading.Lock()
        self._jitter = random.Random()
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
        self._connected = True
        self._q = Statements(self._now())
        self._one = PostgresOneShot() if self.dialect == "postgresql" else None

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
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            # switching to WAL takes a lock (and can fail at once under concurrent writers): only when needed
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
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
        connect_args = {k: v for k, v in _PG_CONNECT_DEFAULTS.items() if k not in url.query}
        try:
            engine = sa.create_engine(url, pool_size=4, max_overflow=4, connect_args=connect_args)
        except (ModuleNotFoundError, NoSuchModuleError) as exc:
            raise MissingDependencyError(
                f"PostgreSQL storage needs psycopg ({exc}); install it with: pip install 'selftune[postgres]'"
            ) from None

        @event.listens_for(engine, "handle_error")
        def _handle_error(ctx: Any) -> None:
            # e.g. "terminating connection due to administrator command" on a connection psycopg still
            # holds as open: a disconnect all the same, so the pool drops it and every older connection
            if not ctx.is_disconnect and _connection_error(ctx.original_exception):
                ctx.is_disconnect = True

        return engine

    # -- transactions -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, call: _Call, write: bool) -> Iterator[Connection]:
        """A connection in a transaction (``write``) or for reads, within the operation ``call`` of :meth:`_run`
        (which learns whether a lost connection died while connecting or while committing)."""
        call.connecting = True
        conn = self._engine.connect()
        call.connecting = False
        with conn:
            if write:
                conn.execution_options(selftune_write=True)
                with conn.begin():
                    yield conn
                    call.commit_started = True
            elif self.dialect == "postgresql":
                # Reads need no transaction: changes of a study commit in seq order (see the module doc), so
                # statement-level snapshots never show a change without the earlier ones.
                conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            else:
                with conn.begin():  # SQLite: a deferred BEGIN costs no I/O and gives one WAL snapshot
                    yield conn

    @contextlib.contextmanager
    def _tx_one(self, call: _Call) -> Iterator[Connection]:
        """PostgreSQL: a connection in autocommit mode for one data-modifying statement (its own transaction:
        a connection lost while it runs may have committed it)."""
        call.connecting = True
        conn = self._engine.connect()
        call.connecting = False
        with conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            call.commit_started = True
            yield conn

    def _one_shot(self, call: _Call, statement: Any, params: Mapping[str, Any]) -> Any:
        """Run one of :class:`PostgresOneShot`'s statements; its first row, or None when its fast path does not
        apply (then nothing was written and the caller's general transaction runs)."""
        with self._tx_one(call) as conn:
            row = conn.execute(statement, params).first()
        if row is None:
            call.commit_started = False
        return row

    def _run(self, body: Callable[[_Call], _T], *, retry: bool = True, lost: Any = None) -> _T:
        """Run one storage operation ``body(call)``, reconnecting while the connection is lost (see the module
        doc). With ``retry=False`` a lost connection returns ``lost`` instead of retrying."""
        call = _Call()
        while True:
            call.commit_started = False
            try:
                out = body(call)
            except DBAPIError as exc:
                reconnectable = self._connected and self.dialect == "postgresql" and _connection_error(exc)
                if not reconnectable:
                    if call.connecting:
                        call.connecting = False
                        raise StorageURLError(f"cannot connect to storage {self.url!r}: {_first_line(exc)}") from None
                    raise
                call.connecting = False
                self._wait_reconnect(call, exc, retry)
                if not retry:
                    return lost
            else:
                if self._down_since is not None:
                    self._mark_up()
                return out

    def _wait_reconnect(self, call: _Call, exc: DBAPIError, retry: bool) -> None:
        """Note a lost connection; sleep before the next attempt, or raise once ``reconnect_timeout`` is spent."""
        now = time.monotonic()
        if call.commit_started:
            call.maybe_committed = True
        if call.first_failure is None:
            call.first_failure = now
        with self._outage_lock:
            if self._down_since is None:
                self._down_since = now
                logger.warning(
                    "lost the connection to storage %r (%s); reconnecting for up to %g s",
                    self.url, _first_line(exc), self.reconnect_timeout,
                )
        if not retry:
            return
        waited = now - call.first_failure
        if waited >= self.reconnect_timeout:
            raise StorageURLError(
                f"lost the connection to storage {self.url!r} and could not reconnect: tried for {waited:.1f} s "
                f"(reconnect_timeout={self.reconnect_timeout:g} s; set it with ${RECONNECT_TIMEOUT_ENV} or "
                f"SQLStorage(..., reconnect_timeout=...)); last error: {_first_line(exc)}"
            ) from exc
        delay = 0.0 if call.attempts == 0 else min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (call.attempts - 1))
        call.attempts += 1
        if delay:
            time.sleep(min(delay * self._jitter.uniform(0.5, 1.0), self.reconnect_timeout - waited))

    def _mark_up(self) -> None:
        with self._outage_lock:
            if self._down_since is None:
                return
            now = time.monotonic()
            logger.warning("reconnected to storage %r after %.1f s", self.url, now - self._down_since)
            self._down_since = None
            self.reconnected_at = now

    def _now(self) -> Any:
        """The database clock in seconds since the epoch, as an SQL expression."""
        if self.dialect == "postgresql":
            return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Double)
        return (sa.func.julianday("now") - 2440587.5) * 86400.0

    def _init_schema(self) -> None:
        def body(call: _Call) -> int | None:
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

    def _written(self, call: _Call, where: Any) -> TrialRecord | None:
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

        def body(call: _Call) -> StudyInfo:
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
        def body(call: _Call) -> Any:
            with self._tx(call, write=False) as conn:
                return conn.execute(sa.select(S.studies).where(S.studies.c.name == name)).first()

        row = self._run(body)
        if row is None:
            raise StudyNotFoundError(f"no study named {name!r} in {self.url}")
        return self._info(row)

    def list_studies(self) -> list[StudySummary]:
        t = S.trials.c

        def body(call: _Call) -> tuple[Any, dict[int, dict[str, int]], dict[int, tuple[Any, Any]]]:
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
        def body(call: _Call) -> None:
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

        def body(call: _Call) -> None:  # idempotent: sets the key again
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

        def body(call: _Call) -> dict[str, Any]:  # idempotent: the first definition wins
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

        def body(call: _Call) -> dict[str, dict[str, Any]]:
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

        def body(call: _Call) -> int:
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

        def body(call: _Call) -> TrialRecord | int:
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

        def body(call: _Call) -> None:
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

        def body(call: _Call) -> None:
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

        def body(call: _Call) -> None:  # idempotent: replaces the key
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

        def body(call: _Call) -> None:
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

    def pause_trial(self, study_id: int, number: int) -> None:
        t = S.trials.c

        def body(call: _Call) -> None:
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
        t, v = S.trials.c, S.trial_values.c
        new_params = None if params is None else _param_rows(number, params)
        new_attrs = None if system_attrs is None else _system_rows(number, system_attrs)
        cond = [t.study_id == study_id, t.number == number, t.state == TrialState.PAUSED.value]
        at = sa.func.coalesce(sa.select(sa.func.max(v.step)).where(v.trial_id == t.id).scalar_subquery(), -1)
        if last_step is not None:
            cond.append(at == int(last_step))

        def body(call: _Call) -> TrialRecord:
            with self._tx(call, write=True) as conn:
                seq, _ = self._bump(conn, study_id)
                row = conn.execute(
                    sa.update(S.trials)
                    .where(*cond)
                    .values(state=TrialState.RUNNING.value, worker=worker, heartbeat_at=self._now(), seq=seq)
                    .returning(t.id)
                ).first()
                if row is None:
                    found = conn.execute(
                        sa.select(t.state, at, t.worker).where(t.study_id == study_id, t.number == number)
                    ).first()
                    if found is None:
                        raise TrialNotFoundError(f"study id {study_id} has no trial {number} in {self.url}")
                    if call.maybe_committed and found[0] == TrialState.RUNNING.value and found[2] == worker:
                        # our lost COMMIT resumed it
                        return self._records(conn, (t.study_id == study_id) & (t.number == number))[0]
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
                    conn.execute(
                        sa.delete(S.trial_attrs).where(a.trial_id == tid, a.key.in_([r["key"] for r in new_attrs]))
                    )
                    conn.execute(sa.insert(S.trial_attrs), [{"trial_id": tid, **r} for r in new_attrs])
                return self._records(conn, t.id == tid)[0]

        return self._run(body)

    def retry_trial(self, study_id: int, number: int, max_attempts: int) -> TrialRecord | None:
        t = S.trials.c
        now = time.time()

        def body(call: _Call) -> TrialRecord | None:
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

        def body(call: _Call) -> set[int]:  # idempotent
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

        def body(call: _Call) -> list[int]:
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

        def body(call: _Call) -> tuple[list[TrialRecord], int]:
            with self._tx(call, write=False) as conn:
                return self._records(conn, (t.study_id == study_id) & (t.seq > cursor), with_seq=True)

        records, top = self._run(body)
        return records, max(cursor, top)

    def trial_seqs(self, study_id: int) -> dict[int, int]:
        t = S.trials.c

        def body(call: _Call) -> dict[int, int]:
            with self._tx(call, write=False) as conn:
                return {int(n): int(q) for n, q in conn.execute(sa.select(t.number, t.seq).where(t.study_id == study_id))}

        return self._run(body)

    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        t = S.trials.c

        def body(call: _Call) -> list[TrialRecord]:
            with self._tx(call, write=False) as conn:
                return self._records(conn, (t.study_id == study_id) & (t.number == number))

        found = self._run(body)
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
