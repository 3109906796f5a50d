"""Schedulers decide *when*: after each ``trial.report(value, step)``, whether the trial goes on.

>>> from selftune.schedulers import ASHAScheduler
>>> ASHAScheduler(min_resource=1, reduction_factor=3)
ASHAScheduler(min_resource=1, max_resource=None, reduction_factor=3.0, min_early_stopping_rate=0, variant='stopping')
"""

from __future__ import annotations

from selftune.schedulers._base import CONTINUE, Action, Decision, Scheduler, value_at
from selftune.schedulers._fidelity import fidelity_view
from selftune.schedulers.asha import ASHAScheduler
from selftune.schedulers.hyperband import HyperbandScheduler
from selftune.schedulers.median import MedianStopping, PercentileStopping
from selftune.schedulers.pb2 import PB2
from selftune.schedulers.pbt import PopulationBasedTraining, ScheduleReplay
from selftune.schedulers.synchronous import SuccessiveHalvingScheduler

__all__ = [
    "Scheduler",
    "Decision",
    "Action",
    "CONTINUE",
    "MedianStopping",
    "PercentileStopping",
    "ASHAScheduler",
    "SuccessiveHalvingScheduler",
    "HyperbandScheduler",
    "PopulationBasedTraining",
    "PB2",
    "ScheduleReplay",
    "fidelity_view",
    "value_at",
]
