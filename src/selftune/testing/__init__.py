"""Conformance suites shipped with selftune: every storage, sampler and scheduler (built-in or plugin) passes them.

Needs pytest (``pip install selftune[dev]``).
"""

from __future__ import annotations

from selftune.testing.samplers import MIXED_SPACE, SamplerConformance
from selftune.testing.schedulers import SchedulerConformance, curve_history
from selftune.testing.storages import HOSTILE_NAMES, StorageConformance

__all__ = [
    "StorageConformance",
    "SamplerConformance",
    "SchedulerConformance",
    "HOSTILE_NAMES",
    "MIXED_SPACE",
    "curve_history",
]
