"""Connections to the SQL database behind :class:`~selftune.storage.sql.SQLStorage`: engines, transactions,
and reconnecting after a lost connection.

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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, NoSuchModuleError

from selftune.exceptions import InvalidParameterError, MissingDependencyError, StorageURLError

__all__ = ["Connected", "mask_url", "sqlite_engine", "postgres_engine", "first_line", "RECONNECT_TIMEOUT_ENV"]

logger = logging.getLogger("selftune")

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


class Call:
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


def sqlite_engine(url: URL, busy_timeout: float) -> Engine:
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
        _use_wal(cur, busy_timeout)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # a read-then-write needs the write lock from the start, or concurrent writers deadlock
        write = conn.get_execution_options().get("selftune_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine

def _use_wal(cur: Any, busy_timeout: float) -> None:
    """Put the database in WAL mode if it is not yet. The switch takes an exclusive lock and SQLite can refuse
    it at once ("database is locked", without waiting on the busy timeout) while other connections open a new
    file at the same moment; it is retried, re-reading the mode, until ``busy_timeout`` has passed."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)


def postgres_engine(url: URL) -> Engine:
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


class Connected:
    """The connection half of :class:`~selftune.storage.sql.SQLStorage`: transactions on its engine, and
    :meth:`_run`, which repeats an operation on a new connection while PostgreSQL is unreachable."""

    #: ``time.monotonic()`` when an operation last succeeded after this storage had lost its connection
    #: (None: never lost); the heartbeat thread waits a grace period of working storage after it to reap
    reconnected_at: float | None = None
    #: the longest sleep between two reconnection attempts (seconds)
    backoff_max: float = BACKOFF_MAX

    _engine: Engine
    dialect: str
    url: str

    def _init_connection(self, reconnect_timeout: float | None, *, wait_connect: bool = False) -> None:
        self.reconnect_timeout = _reconnect_timeout(reconnect_timeout)
        # a storage that never connected fails at once (its URL is likely wrong), unless its URL is known to
        # work (``wait_connect``: a worker process started by a driver waits out an outage at its first connection)
        self._connected = wait_connect
        self._down_since: float | None = None  # monotonic time of the first failure of an ongoing outage
        self._outage_lock = threading.Lock()
        self._jitter = random.Random()

    # -- transactions -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self, call: Call, write: bool) -> Iterator[Connection]:
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
    def _tx_one(self, call: Call) -> Iterator[Connection]:
        """PostgreSQL: a connection in autocommit mode for one data-modifying statement (its own transaction:
        a connection lost while it runs may have committed it)."""
        call.connecting = True
        conn = self._engine.connect()
        call.connecting = False
        with conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            call.commit_started = True
            yield conn

    def _one_shot(self, call: Call, statement: Any, params: Mapping[str, Any]) -> Any:
        """Run one of :class:`PostgresOneShot`'s statements; its first row, or None when its fast path does not
        apply (then nothing was written and the caller's general transaction runs)."""
        with self._tx_one(call) as conn:
            row = conn.execute(statement, params).first()
        if row is None:
            call.commit_started = False
        return row

    def _run(self, body: Callable[[Call], _T], *, retry: bool = True, lost: Any = None) -> _T:
        """Run one storage operation ``body(call)``, reconnecting while the connection is lost (see the module
        doc). With ``retry=False`` a lost connection returns ``lost`` instead of retrying."""
        call = Call()
        while True:
            call.commit_started = False
            try:
                out = body(call)
            except DBAPIError as exc:
                reconnectable = self._connected and self.dialect == "postgresql" and _connection_error(exc)
                if not reconnectable:
                    if call.connecting:
                        call.connecting = False
                        raise StorageURLError(f"cannot connect to storage {self.url!r}: {first_line(exc)}") from None
                    raise
                call.connecting = False
                self._wait_reconnect(call, exc, retry)
                if not retry:
                    return lost
            else:
                if self._down_since is not None:
                    self._mark_up()
                return out

    def _wait_reconnect(self, call: Call, exc: DBAPIError, retry: bool) -> None:
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
                    self.url, first_line(exc), self.reconnect_timeout,
                )
        if not retry:
            return
        waited = now - call.first_failure
        if waited >= self.reconnect_timeout:
            raise StorageURLError(
                f"lost the connection to storage {self.url!r} and could not reconnect: tried for {waited:.1f} s "
                f"(reconnect_timeout={self.reconnect_timeout:g} s; set it with ${RECONNECT_TIMEOUT_ENV} or "
                f"SQLStorage(..., reconnect_timeout=...)); last error: {first_line(exc)}"
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


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
