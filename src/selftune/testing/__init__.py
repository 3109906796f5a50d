"""Conformance suites shipped with selftune: every storage and sampler (built-in or plugin) passes them.

Needs pytest (``pip install selftune[dev]``).
"""

from __future__ import annotations

from selftune.testing.samplers import MIXED_SPACE, SamplerConformance
from selftune.testing.storages import HOSTILE_NAMES, StorageConformance

__all__ = ["StorageConformance", "SamplerConformance", "HOSTILE_NAMES", "MIXED_SPACE"]
