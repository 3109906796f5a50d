"""Every backend passes the shipped storage conformance suite."""

from __future__ import annotations

import pytest

from selftune.storage import MemoryStorage, Storage
from selftune.storage.sql import SQLStorage
from selftune.testing import StorageConformance


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


class TestSQLiteStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path) -> Storage:  # type: ignore[no-untyped-def]
        s = SQLStorage(f"sqlite:///{tmp_path / 'conformance.db'}")
        yield s  # type: ignore[misc]
        s.close()


@pytest.mark.postgres
class TestPostgresStorage(StorageConformance):
    @pytest.fixture
    def storage(self, pg_url: str) -> Storage:
        s = SQLStorage(pg_url)
        yield s  # type: ignore[misc]
        s.close()
