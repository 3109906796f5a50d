"""The built-in samplers pass the shipped sampler conformance suite."""

from __future__ import annotations

import pytest

from selftune.samplers import AutoSampler, CMAESSampler, RandomSampler, SobolSampler, TPESampler
from selftune.testing import SamplerConformance


class TestRandomSampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: RandomSampler(seed=seed)


class TestSobolSampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: SobolSampler(seed=seed)


class TestTPESampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: TPESampler(seed=seed, n_startup=3)


class TestUnivariateTPESampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: TPESampler(seed=seed, n_startup=3, multivariate=False)


class TestCMAESSampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: CMAESSampler(seed=seed, fallback=TPESampler(seed=seed, n_startup=3))


class TestAutoSampler(SamplerConformance):
    @pytest.fixture
    def make_sampler(self):  # type: ignore[no-untyped-def]
        return lambda seed: AutoSampler(seed=seed, n_startup=3)
