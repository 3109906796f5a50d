"""Samplers decide *what* to try: each proposes parameter values from a read-only History."""

from __future__ import annotations

from selftune.samplers._base import Sampler
from selftune.samplers.cmaes import CMAESSampler
from selftune.samplers.qmc import SobolSampler
from selftune.samplers.random import RandomSampler
from selftune.samplers.tpe import TPESampler

__all__ = ["Sampler", "RandomSampler", "SobolSampler", "TPESampler", "CMAESSampler"]
