"""Samplers decide *what* to try: each proposes parameter values from a read-only History."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selftune.samplers._base import Sampler
from selftune.samplers.auto import AutoSampler
from selftune.samplers.cmaes import CMAESSampler
from selftune.samplers.qmc import SobolSampler
from selftune.samplers.random import RandomSampler
from selftune.samplers.tpe import TPESampler

__all__ = ["Sampler", "AutoSampler", "RandomSampler", "SobolSampler", "TPESampler", "CMAESSampler", "GPSampler"]

if TYPE_CHECKING:
    from selftune.samplers.gp import GPSampler


def __getattr__(name: str) -> Any:
    if name == "GPSampler":  # imported on first use: its SciPy modules cost most of a second to import
        from selftune.samplers.gp import GPSampler

        return GPSampler
    raise AttributeError(f"module 'selftune.samplers' has no attribute {name!r}")
