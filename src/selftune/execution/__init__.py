"""Executors decide *where* trials run: in this process (the default), in local worker processes
(:class:`ProcessExecutor`, ``optimize(..., workers=k)``) or as Ray tasks on a cluster (:class:`RayExecutor`).

Workers share the study through its storage: pending trials are visible to every sampler, a worker that dies
has its trial failed (and retried with ``retries=n``) and is replaced, and rerunning the same call after the
driver dies resumes the study to its budget.
"""

from __future__ import annotations

from typing import Any

from selftune.exceptions import InvalidParameterError
from selftune.execution._base import Executor, WorkerError
from selftune.execution.explain import Proposal, explain
from selftune.execution.local import ProcessExecutor
from selftune.execution.ray import RayExecutor

__all__ = ["Executor", "ProcessExecutor", "Proposal", "RayExecutor", "WorkerError", "explain", "resolve_executor"]

_NAMES = ("process", "ray")


def resolve_executor(executor: Any, workers: int) -> Executor | None:
    """The executor ``optimize(workers=, executor=)`` asks for; None runs trials in this process."""
    if executor is None:
        return ProcessExecutor(workers) if workers > 1 else None
    if isinstance(executor, Executor):
        return executor
    if executor == "process":
        return ProcessExecutor(workers)
    if executor == "ray":
        return RayExecutor(workers)
    raise InvalidParameterError(
        f"`executor` must be None, one of {list(_NAMES)} or a selftune.execution.Executor, got {executor!r}"
    )
