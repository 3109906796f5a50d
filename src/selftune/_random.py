"""Randomness as a function of (seed, ask position): each ask gets its own reproducible generator."""

from __future__ import annotations

import numpy as np

__all__ = ["ask_rng", "stable_hash"]


def stable_hash(text: str) -> int:
    """FNV-1a of ``text``: a hash that is the same in every process (``hash()`` of a str is salted)."""
    h = 2166136261
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def ask_rng(seed: int | None, position: int, salt: tuple[int, ...] = ()) -> np.random.Generator:
    """The generator for the ask at ``position``: reproducible under a seed, fresh entropy without one.

    Under a seed, a counter-based Philox stream keyed by (seed, position): independent streams, and
    cheaper to build than hashing a seed sequence on every ask.
    """
    if seed is None:
        return _UNSEEDED
    key = ((int(seed) % 2**64) << 64) | (int(position) % 2**64)
    words = [int(x) % 2**64 for x in salt[:2]] + [0] * (2 - len(salt[:2]))
    return np.random.Generator(np.random.Philox(key=key, counter=[0, 0, *words]))


_UNSEEDED = np.random.default_rng()
