"""The optimize loop, kept out of the Study facade."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
import traceback as tb
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from selftune._progress import Progress
from selftune._retries import enqueue_retries
from selftune._scheduling import resume, resume_next
from selftune.exceptions import (
    InvalidParameterError,
    StopTrial,
    TrialReapedError,
    TrialStateError,
)
from selftune.schedulers import Action
from selftune.storage._base import TRIAL_TIMEOUT, BudgetSpentError
from selftune.trial import Trial, TrialRecord, TrialState, check_value

if TYPE_CHECKING:
    from selftune.study import Study

logger = logging.getLogger("selftune")

__all__ = ["run_optimize", "check_run_args", "budget_used"]

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


def check_run_args(workers: Any, retries: Any, trial_timeout: Any) -> None:
    """Validate optimize()'s ``workers``, ``retries`` and ``trial_timeout``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidParameterError(f"`workers` must be an integer >= 1, got {workers!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidParameterError(f"`retries` must be an integer >= 0, got {retries!r}")
    if trial_timeout is not None and (
        isinstance(trial_timeout, bool) or not isinstance(trial_timeout, int | float) or not trial_timeout > 0
        or not math.isfinite(trial_timeout)
    ):
        raise InvalidParameterError(f"`trial_timeout` must be a number of seconds > 0 or None, got {trial_timeout!r}")


def budget_used(study: Study) -> int:
    """Trials that count against the budget (call after a refresh): started ones, less retried failures."""
    return study._count(*_BUDGET_STATES) - len(study._retried)


def run_optimize(
    study: Study,
    objective: Callable[[Trial], Any],
    trials: int | None,
    timeout: float | None,
    catch: type[BaseException] | Sequence[type[BaseException]],
    callbacks: Iterable[Callable[[Study, TrialRecord], None]],
    progress: bool,
    *,
    retries: int = 0,
    trial_timeout: float | None = None,
) -> None:
    """Ask, run the objective, tell, until the budget or the timeout is reached or ``study.stop()``.

    ``trial_timeout`` here (one process) interrupts the objective with SIGALRM: it works for Python code and
    most library calls, and only in the main thread; a worker process is killed instead (``workers>1``).
    """
    kinds = _check_args(trials, timeout, catch)
    if trial_timeout is not None and threading.current_thread() is not threading.main_thread():
        raise InvalidParameterError(
            "`trial_timeout` in one process needs the main thread (it uses SIGALRM); "
            "use workers=2 or more, or executor='process', to run trials in worker processes"
        )
    callbacks = list(callbacks)
    if not study._stop_sticky:  # a worker told to stop while it was starting stops at once
        study._stop_flag.clear()
    start = time.monotonic()
    handover: Trial | None = None
    with Progress(enabled=progress, total=trials, timeout=timeout, direction=study.direction) as bar:
        while not study._stop_flag.is_set():
            history = study.history()
            if retries and study._retry_candidates and enqueue_retries(study, retries + 1):
                history = study.history()
            used = budget_used(study)
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
                try:
                    trial = study._ask(history, budget=trials)
                except BudgetSpentError:
                    continue  # other workers started the last trials: the next round sees it and ends

            record = _run_trial(study, trial, objective, kinds, trial_timeout)
            if record is None:
                continue
            decision = trial.decision
            if record.state is TrialState.PAUSED and decision is not None and decision.action is Action.EXPLOIT:
                handover = resume(study, record, decision, study.history())
            for cb in callbacks:
                cb(study, record)
        study._refresh()
        best = study._best
        bar.update(budget_used(study), None if best is None else best.value)


class _TrialTimeout(BaseException):
    """Raised inside the objective by SIGALRM when ``trial_timeout`` passes (a BaseException: user code that
    catches Exception does not swallow it)."""


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    if seconds is None:
        yield
        return

    def _fire(_signum: int, _frame: Any) -> None:
        raise _TrialTimeout()

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_trial(
    study: Study,
    trial: Trial,
    objective: Callable[[Trial], Any],
    catch: tuple[type[BaseException], ...],
    trial_timeout: float | None = None,
) -> TrialRecord | None:
    try:
        try:
            try:
                with _alarm(trial_timeout):
                    returned = objective(trial)
            except _TrialTimeout:
                why = f"{TRIAL_TIMEOUT} after {trial_timeout:g} s (trial_timeout)"
                logger.warning("trial %d %s", trial.number, why)
                return study._fail_live(trial, why, tb.format_exc())
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
        if math.isnan(value):
            return study.tell(trial, value)  # recorded FAILED, with a warning
        return study._complete_live(trial, value)
    except TrialStateError as exc:
        # reaped while still running (heartbeat lost): this worker stops the trial and goes on
        if study.get_trial(trial.number).state is TrialState.FAILED:
            logger.warning("trial %d: %s; its result was not recorded", trial.number, exc)
            study._forget(trial.number)
            return None
        raise

