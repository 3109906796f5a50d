"""selftune: hyperparameter optimization with durable studies.

>>> import selftune
>>> def objective(trial):
...     x = trial.float("x", -10, 10)
...     return (x - 2) ** 2
>>> study = selftune.create_study(storage="memory", sampler=selftune.SobolSampler(seed=0))
>>> study.optimize(objective, trials=20, progress=False)
>>> round(study.best_params["x"], 1) == round(study.best_params["x"], 1)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selftune import protocol
from selftune.exceptions import (
    InvalidParameterError,
    InvalidValueError,
    MissingDependencyError,
    NoCompleteTrialError,
    ParameterConflictError,
    SchemaVersionError,
    SelftuneError,
    StopTrial,
    StorageError,
    StorageURLError,
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialReapedError,
    TrialStateError,
    UnsupportedDecisionError,
)
from selftune.history import History
from selftune.samplers import AutoSampler, CMAESSampler, RandomSampler, Sampler, SobolSampler, TPESampler
from selftune.schedule import Exploit, Schedule
from selftune.schedulers import (
    PB2,
    ASHAScheduler,
    Decision,
    HyperbandScheduler,
    MedianStopping,
    PercentileStopping,
    PopulationBasedTraining,
    Scheduler,
    ScheduleReplay,
)
from selftune.space import Choice, Float, Int, Param, Space
from selftune.storage import MemoryStorage, Storage, get_storage
from selftune.study import Study, create_study, delete_study, list_studies, load_study
from selftune.trial import Trial, TrialRecord, TrialState

__version__ = "0.1.0"

if TYPE_CHECKING:
    from selftune.samplers.gp import GPSampler


def __getattr__(name: str) -> Any:
    if name == "GPSampler":  # lazily, like selftune.samplers.GPSampler
        from selftune.samplers.gp import GPSampler

        return GPSampler
    raise AttributeError(f"module 'selftune' has no attribute {name!r}")


__all__ = [
    "Study",
    "create_study",
    "load_study",
    "delete_study",
    "list_studies",
    "Trial",
    "TrialRecord",
    "TrialState",
    "Space",
    "Param",
    "Float",
    "Int",
    "Choice",
    "History",
    "Sampler",
    "AutoSampler",
    "RandomSampler",
    "SobolSampler",
    "TPESampler",
    "CMAESSampler",
    "GPSampler",
    "Scheduler",
    "Decision",
    "MedianStopping",
    "PercentileStopping",
    "ASHAScheduler",
    "HyperbandScheduler",
    "PopulationBasedTraining",
    "PB2",
    "ScheduleReplay",
    "Schedule",
    "Exploit",
    "protocol",
    "Storage",
    "MemoryStorage",
    "get_storage",
    "SelftuneError",
    "InvalidParameterError",
    "ParameterConflictError",
    "InvalidValueError",
    "StorageError",
    "StorageURLError",
    "SchemaVersionError",
    "StudyNotFoundError",
    "StudyExistsError",
    "TrialNotFoundError",
    "NoCompleteTrialError",
    "TrialStateError",
    "TrialReapedError",
    "StopTrial",
    "UnsupportedDecisionError",
    "MissingDependencyError",
]
