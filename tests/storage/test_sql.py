"""SQL-specific behaviour: schema creation races, schema versions, URLs and their errors."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import selftune
from selftune import SchemaVersionError, StorageURLError
from selftune.storage import get_storage
from selftune.storage.sql import SQLStorage


def _open_and_create(url: str, barrier, i: int, out) -> None:  # type: ignore[no-untyped-def]
    try:
        barrier.wait(timeout=30)
        study = selftune.create_study("race", storage=url)  # all create-or-resume the same study at once
        study.optimize(lambda t: t.float("x", 0, 1), trials=16, progress=False)
        out.put(("ok", i))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", repr(exc)))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_many_workers_start_against_an_empty_database(backend: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'race.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=_open_and_create, args=(url, barrier, i, out)) for i in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r for r in results if r[0] != "ok"] == []
    study = selftune.load_study("race", storage=url)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers))) and 16 <= len(numbers) <= 16 + 8
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM selftune_version")).scalar() == 1
    engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    selftune.create_study("s", storage=f"sqlite:///{path}").optimize(lambda t: 1.0, trials=1, progress=False)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE selftune_version SET schema_version = 99")
    with pytest.raises(SchemaVersionError, match="schema version 99, newer than this selftune's 1"):
        SQLStorage(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # nothing was touched
        assert conn.execute("SELECT count(*) FROM selftune_trials").fetchone() == (1,)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    SQLStorage(f"sqlite:///{path}").create_study("s", "minimize", None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:hunter2@localhost/db", "unsupported storage URL 'mysql://user:\\*\\*\\*@localhost/db'"),
        ("redis://:hunter2@localhost", "unsupported storage URL"),
        ("not a url", "unrecognised storage 'not a url'"),
        ("", "a storage must be"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StorageURLError, match=message) as err:
        get_storage(url)
    assert "hunter2" not in str(err.value)


def test_unreachable_postgres_hides_password() -> None:
    with pytest.raises(StorageURLError, match="cannot connect") as err:
        get_storage("postgresql://postgres:hunter2@127.0.0.1:1/nodb")
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_sqlite_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageURLError, match="cannot connect"):
        get_storage(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_plain_path_and_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plain.db"
    assert isinstance(get_storage(str(path)), SQLStorage)
    monkeypatch.setenv("SELFTUNE_STORAGE", f"sqlite:///{tmp_path / 'env.db'}")
    selftune.create_study("e").optimize(lambda t: 0.0, trials=1, progress=False)
    assert (tmp_path / "env.db").exists()
    monkeypatch.delenv("SELFTUNE_STORAGE")
    monkeypatch.chdir(tmp_path)
    selftune.create_study("d").optimize(lambda t: 0.0, trials=1, progress=False)
    assert (tmp_path / "selftune.db").exists()


def test_no_binary_columns() -> None:
    """Everything is JSON text or numbers: nothing in a storage could ever be unpickled."""
    from selftune.storage import _schema

    for table in _schema.metadata.tables.values():
        for col in table.columns:
            assert not isinstance(col.type, sa.LargeBinary | sa.PickleType), (table.name, col.name)
