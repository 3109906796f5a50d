"""A private PostgreSQL server for tests that stop, start and restart it (never the shared one on 5432).

``PgServer`` runs ``initdb`` into a fresh directory under the system temp dir, listens on a free port of
127.0.0.1 with trust authentication, and offers :meth:`~PgServer.stop`, :meth:`~PgServer.start` and
:meth:`~PgServer.restart`. PostgreSQL refuses to run as root, so as root the server programs run as the
``postgres`` OS user (``runuser -u postgres --``), which owns the directory.

:func:`private_pg` yields a started server and removes it afterwards. Where the server programs are missing it
skips the test, or fails it when ``SELFTUNE_REQUIRE_POSTGRES_SERVER`` is set (CI sets it).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PgServer", "private_pg", "server_bin_dir"]

REQUIRE_ENV = "SELFTUNE_REQUIRE_POSTGRES_SERVER"


def server_bin_dir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None if there is none."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in Path(p).parent.name.split(".")]
    )
    for d in reversed(candidates):
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        real = Path(os.path.realpath(found)).parent
        if (real / "postgres").exists():
            return real
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port (trust auth, superuser ``postgres``)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="selftune-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.running = False
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                "\n# selftune test server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 200\n"
                "shared_buffers = 16MB\n"
                "fsync = off\n"  # only clean shutdowns here: a fast stop writes everything out
                "full_page_writes = off\n"
                "logging_collector = off\n"
            )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> None:
        cmd = [str(self.bin / program), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections (a few tries on a port taken meanwhile)."""
        for attempt in range(3):
            try:
                self._run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                    "-o", f"-p {self.port}", "start",
                )
                self.running = True
                return
            except RuntimeError:
                if attempt == 2 or "already in use" not in (self.log.read_text() if self.log.exists() else ""):
                    raise
                self.port = _free_port()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends the sessions and checkpoints; ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server if it runs and remove its directory."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def private_pg() -> Iterator[PgServer]:
    """A started private server, removed afterwards (the body of a fixture)."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        why = "no PostgreSQL server programs (initdb, pg_ctl, postgres) on this machine"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but there are {why}")
        pytest.skip(f"{why} (set {REQUIRE_ENV}=1 to make this an error)")
    server = PgServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
