"""Storages: where studies live. SQLite by default, PostgreSQL for many machines, memory on request.

``get_storage`` turns what a user passes (a URL, a path, ``"memory"``, ``None`` or a :class:`Storage`)
into a storage object.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from selftune.exceptions import StorageURLError
from selftune.storage._base import Storage, StudyInfo, StudySummary
from selftune.storage.memory import MemoryStorage

if TYPE_CHECKING:
    from selftune.storage.sql import SQLStorage

__all__ = ["Storage", "StudyInfo", "StudySummary", "MemoryStorage", "SQLStorage", "get_storage", "DEFAULT_STORAGE"]

#: Used when no storage is given and ``SELFTUNE_STORAGE`` is unset: an SQLite file in the working directory.
DEFAULT_STORAGE = "sqlite:///selftune.db"


def __getattr__(name: str) -> object:
    if name == "SQLStorage":  # imported lazily: SQLAlchemy costs ~100 ms to import
        from selftune.storage.sql import SQLStorage

        return SQLStorage
    raise AttributeError(name)


def get_storage(storage: str | os.PathLike[str] | Storage | None = None, *, wait_connect: bool = False) -> Storage:
    """Return the storage named by ``storage``.

    - ``None``: ``$SELFTUNE_STORAGE`` if set, else ``sqlite:///selftune.db``;
    - ``"memory"`` (or ``":memory:"``): a fresh in-memory storage;
    - ``"sqlite:///path.db"`` or a path ending in ``.db``/``.sqlite``/``.sqlite3``: an SQLite file;
    - ``"postgresql://user:password@host:port/database"``: PostgreSQL (``pip install selftune[postgres]``).

    ``wait_connect``: see :class:`~selftune.storage.sql.SQLStorage` (worker processes started by a driver).
    """
    if isinstance(storage, Storage):
        return storage
    if storage is None:
        storage = os.environ.get("SELFTUNE_STORAGE") or DEFAULT_STORAGE
    text = os.fspath(storage)
    if not isinstance(text, str) or not text.strip():
        raise StorageURLError(f"a storage must be a URL, a path or 'memory', got {storage!r}")
    if text in ("memory", ":memory:", "memory://"):
        return MemoryStorage()
    if "://" not in text:
        if text.endswith((".db", ".sqlite", ".sqlite3")):
            text = "sqlite:///" + text
        else:
            raise StorageURLError(
                f"unrecognised storage {text!r}; expected sqlite:///path.db, postgresql://user@host/db, "
                "a path ending in .db, or 'memory'"
            )
    from selftune.storage.sql import SQLStorage

    return SQLStorage(text, wait_connect=wait_connect)
