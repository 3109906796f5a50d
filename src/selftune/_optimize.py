"""The optimize loop, kept out of the Study facade."""

from __future__ import annotations

import logging
import time
import traceback as tb
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from selftune._progress import Progress
from selftune._scheduling import resume, resume_next
from selftune.exceptions import (
    InvalidParameterError,
    StopTrial,
    TrialReapedError,
    TrialStateError,
)
from selftune.schedulers import Action
from selftune.trial import Trial, TrialRecord, TrialState, check_value

if TYPE_CHECKING:
    from selftune.study import Study

logger = logging.getLogger("selftune")

__all__ = ["run_optimize"]

_BUDGET_STATES = (
    TrialState.RUNNING,
    TrialState.PAUSED,
    TrialState.COMPLETE,
    TrialState.STOPPED,
    TrialState.FAILED,
)


def _check_args(trials: Any, timeout: Any, catch: Any) -> tuple[type[BaseException], ...]:
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 0):
        raise InvalidParameterError(f"`trials` must be an integer >= 0 or None, got {trials!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0):
        raise InvalidParameterError(f"`timeout` must be a number of seconds > 0 or None, got {timeout!r}")
    if trials is None and timeout is None:
        raise InvalidParameterError("optimize() needs `trials`, `timeout` or both, so that it ends")
    kinds = (catch,) if isinstance(catch, type) else tuple(catch)
    for k in kinds:
        if not (isinstance(k, type) and issubclass(k, BaseException)):
            raise InvalidParameterError(f"`catch` must hold exception classes, got {k!r}")
    return kinds


def run_optimize(
    study: Study,
    objective: Callable[[Trial], Any],
    trials: int | None,
    timeout: float | None,
    catch: type[BaseException] | Sequence[type[BaseException]],
    callbacks: Iterable[Callable[[Study, TrialRecord], None]],
    progress: bool,
) -> None:
    """Ask, run the objective, tell, until the budget or the timeout is reached or ``study.stop()``."""
    kinds = _check_args(trials, timeout, catch)
    callbacks = list(callbacks)
    study._stop_flag.clear()
    start = time.monotonic()
    handover: Trial | None = None
    with Progress(enabled=progress, total=trials, timeout=timeout, direction=study.direction) as bar:
        while not study._stop_flag.is_set():
            history = study.history()
            used = study._count(*_BUDGET_STATES)
            best = study._best
            bar.update(used, None if best is None else best.value)
            if timeout is not None and time.monotonic() - start >= timeout:
                break
            spent = trials is not None and used >= trials
            # an exploit decided on a report goes on here at once; then paused trials: the scheduler may let
            # one go on (or stop some) before anything new starts
            trial = handover
            handover = None
            if trial is None:
                trial = resume_next(study, history, final=spent)
            if trial is None:
                if spent:
                    break
                trial = study._ask(history)
            record = _run_trial(study, trial, objective, kinds)
            if record is None:
                continue
            decision = trial.decision
            if record.state is TrialState.PAUSED and decision is not None and decision.action is Action.EXPLOIT:
                handover = resume(study, record, decision, study.history())
            for cb in callbacks:
                cb(study, record)
        study._refresh()
        best = study._best
        bar.update(study._count(*_BUDGET_STATES), None if best is None else best.value)


def _run_trial(
    study: Study, trial: Trial, objective: Callable[[Trial], Any], catch: tuple[type[BaseException], ...]
) -> TrialRecord | None:
    try:
        try:
            returned = objective(trial)
            value = check_value(returned, f"trial {trial.number}: the objective's return value")
        except StopTrial as exc:
            decision = trial.decision
            if decision is not None and decision.action in (Action.PAUSE, Action.EXPLOIT):
                return study._pause(trial)
            reason = decision.reason if decision is not None and decision.stops else (str(exc) or None)
            return study.tell(trial, state=TrialState.STOPPED, reason=reason)
        except TrialReapedError as exc:
            logger.warning("%s", exc)
            study._forget(trial.number)
            return None
        except KeyboardInterrupt:
            study._fail_live(trial, "interrupted", tb.format_exc())
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            record = study._fail_live(trial, reason, tb.format_exc())
            if isinstance(exc, catch):
                logger.warning("trial %d failed: %s", trial.number, reason)
                return record
            raise
        return study.tell(trial, value)
    except TrialStateError as exc:
        # reaped while still running (heartbeat lost): this worker stops the trial and goes on
        if study.get_trial(trial.number).state is TrialState.FAILED:
            logger.warning("trial %d: %s; its result was not recorded", trial.number, exc)
            study._forget(trial.number)
            return None
        raise

