"""A live progress line for optimize(): trials done, best value, rate, time left."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A rich progress bar, or nothing when disabled. Use as a context manager; call :meth:`update`."""

    def __init__(self, *, enabled: bool, total: int | None, timeout: float | None, direction: str) -> None:
        self.enabled = enabled
        self.total = total
        self.timeout = timeout
        self._bar: Any = None
        self._task: Any = None
        self._start = time.monotonic()
        self._first: int | None = None

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        columns: list[Any] = [TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("best {task.fields[best]}"), TextColumn("{task.fields[rate]}")]
        columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        self._bar = RichProgress(*columns, transient=False, refresh_per_second=4)
        self._bar.start()
        self._task = self._bar.add_task("optimize", total=self.total, best="-", rate="- trials/s")
        return self

    def update(self, done: int, best: float | None) -> None:
        """Show ``done`` trials and the ``best`` value so far."""
        if self._bar is None:
            return
        if self._first is None:
            self._first = done
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (done - self._first) / elapsed
        total = self.total
        if total is None and self.timeout is not None and rate > 0:
            total = max(done, int(done + rate * max(self.timeout - elapsed, 0)))
        self._bar.update(
            self._task,
            completed=done,
            total=total,
            best="-" if best is None else f"{best:.6g}",
            rate=f"{rate:.2f} trials/s",
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
