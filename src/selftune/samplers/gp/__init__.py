"""Gaussian-process Bayesian optimisation (NumPy/SciPy only): :class:`GPSampler`."""

from __future__ import annotations

from selftune.samplers.gp.sampler import GPSampler

__all__ = ["GPSampler"]
