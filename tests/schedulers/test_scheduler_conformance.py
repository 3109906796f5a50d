"""The built-in schedulers pass the shipped scheduler conformance suite."""

from __future__ import annotations

import pytest

from selftune.schedulers import (
    ASHAScheduler,
    HyperbandScheduler,
    MedianStopping,
    PercentileStopping,
    SuccessiveHalvingScheduler,
)
from selftune.testing import SchedulerConformance
from selftune.testing.schedulers import MAX_STEP


class TestMedianStopping(SchedulerConformance):
    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: MedianStopping(startup_trials=3)


class TestPercentileStopping(SchedulerConformance):
    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: PercentileStopping(25.0, warmup_steps=2, interval_steps=2)


class TestASHA(SchedulerConformance):
    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: ASHAScheduler(min_resource=1, reduction_factor=3)


class TestASHAWithMaxResource(SchedulerConformance):
    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: ASHAScheduler(min_resource=2, max_resource=MAX_STEP, reduction_factor=2)


class TestASHAPromotion(SchedulerConformance):
    stops_bad_trials = False  # it pauses them at the rung; only the end of the study stops them

    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: ASHAScheduler(min_resource=1, max_resource=MAX_STEP, reduction_factor=3, variant="promotion")


class TestHyperbandPromotion(SchedulerConformance):
    stops_bad_trials = False

    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: HyperbandScheduler(min_resource=1, max_resource=MAX_STEP, reduction_factor=3, variant="promotion")


class TestHyperband(SchedulerConformance):
    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: HyperbandScheduler(min_resource=1, max_resource=MAX_STEP, reduction_factor=3)


class TestSuccessiveHalving(SchedulerConformance):
    stops_bad_trials = False  # waits for the cohort's WAITING trials, which never report in these histories

    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: SuccessiveHalvingScheduler(max_resource=MAX_STEP, cohort_size=9)


class TestSynchronousHyperband(SchedulerConformance):
    stops_bad_trials = False

    @pytest.fixture
    def make_scheduler(self):  # type: ignore[no-untyped-def]
        return lambda: HyperbandScheduler(max_resource=MAX_STEP, synchronous=True)
