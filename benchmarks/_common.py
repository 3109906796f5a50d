"""Helpers shared by the storage benchmarks (``storage_throughput.py``, ``throughput.py``): throwaway
databases, the environment block of a report, quiet logging, progress lines and writing a docs section."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: only for filling a study fast: commits without waiting for fsync
PG_FAST_FILL = "options=-c%20synchronous_commit%3Doff"
DOCS_HEADER = (
    "# Benchmarks\n\nNumbers measured on real machines by the scripts in `benchmarks/`; each section names "
    "its script, machine, versions and date.\n"
)


def quiet() -> None:
    """Silence selftune's and (if installed) Optuna's logging and Optuna's experimental warnings."""
    logging.getLogger("selftune").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        optuna.logging.disable_default_handler()
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def fast_fill_url(url: str) -> str:
    """``url`` with PostgreSQL's synchronous commit off (for filling a study before measuring)."""
    return f"{url}{'&' if '?' in url else '?'}{PG_FAST_FILL}" if url.startswith("postgresql") else url


class Databases:
    """Throwaway PostgreSQL databases on the server at ``admin_url`` and SQLite files in a temporary
    directory, all removed by :meth:`close`."""

    def __init__(self, admin_url: str | None, prefix: str = "bench") -> None:
        self.prefix = prefix
        self.tmp = Path(tempfile.mkdtemp(prefix="selftune-bench-"))
        self.names: list[str] = []
        self.engine: Any = None
        self.base = ""
        if admin_url is not None:
            import sqlalchemy as sa

            self.base = admin_url.rsplit("/", 1)[0]
            self.engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def new(self, storage: str, tag: str) -> str:
        """A new empty database (``storage`` "postgresql") or SQLite file ("sqlite"); its URL."""
        name = f"{self.prefix}_{tag.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        if storage == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        assert self.engine is not None, "PostgreSQL was not requested"
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return f"{self.base}/{name}"

    def drop(self, url: str) -> None:
        """Drop one database (or SQLite file) made by :meth:`new`."""
        name = url.rsplit("/", 1)[-1]
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(url.removeprefix("sqlite:///") + suffix).unlink()
            return
        if name in self.names:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.names.remove(name)

    def server_version(self) -> str:
        """The PostgreSQL server's version, or "not measured"."""
        if self.engine is None:
            return "not measured"
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("SHOW server_version").scalar())

    def close(self) -> None:
        """Drop every database made here and remove the SQLite files."""
        if self.engine is not None:
            with self.engine.connect() as conn:
                for name in self.names:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


def load_average() -> str:
    """The load averages over 1 / 5 / 15 minutes (other work on the machine skews the numbers)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def environment(dbs: Databases | None, modules: Sequence[str] = ("optuna", "psycopg")) -> dict[str, str]:
    """Date, machine, load and versions (selftune with its commit, ``modules``, Python, SQLAlchemy, NumPy,
    SQLite, the PostgreSQL server) for a report's header."""
    import numpy
    import sqlalchemy

    import selftune

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = m.group(1).strip() if m else cpu
    mem = ""
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
        mem = f", {int(m.group(1)) / 2**20:.0f} GiB RAM" if m else ""
    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    versions = {"selftune": f"{selftune.__version__} ({commit})"}
    for mod in modules:
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    versions.update(
        python=platform.python_version(), sqlalchemy=sqlalchemy.__version__, numpy=numpy.__version__,
        sqlite=sqlite3.sqlite_version, postgresql=dbs.server_version() if dbs is not None else "not measured",
    )
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}",
        "load": load_average(),
        **versions,
    }


@contextlib.contextmanager
def step(what: str) -> Iterator[list[str]]:
    """Print ``what ...`` and, when the block ends, its seconds and any notes the block appended."""
    t0 = time.perf_counter()
    print(f"  {what} ...", end="", flush=True, file=sys.stderr)
    note: list[str] = []
    yield note
    print(f" {time.perf_counter() - t0:.1f} s {' '.join(note)}".rstrip(), file=sys.stderr, flush=True)


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section under ``heading`` (up to the next ``## `` heading) in ``path``, or append it; the
    file is created if missing."""
    text = path.read_text() if path.exists() else DOCS_HEADER
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == heading), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
