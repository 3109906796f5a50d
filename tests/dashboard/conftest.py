"""Fixtures for the dashboard and report tests: a storage with studies, a read-only client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_helpers import fill, make_client

import selftune
from selftune.storage import MemoryStorage, Storage


@pytest.fixture
def storage() -> Iterator[Storage]:
    """A memory storage with study 'alpha' (25 trials, some FAILED, one RUNNING) and an empty 'empty'."""
    st = MemoryStorage()
    study = selftune.create_study("alpha", storage=st, sampler=selftune.RandomSampler(seed=0))
    fill(study, 25)
    trial = study.ask()  # left RUNNING
    trial.float("x", -5.0, 5.0)
    selftune.create_study("empty", storage=st, direction="maximize")
    yield st
    study.close()


@pytest.fixture
def client(storage: Storage) -> Any:
    """A read-only dashboard (no token) of ``storage``."""
    return make_client(storage)
