"""A background thread per study handle: heartbeats for its running trials and the reaper, on a timer."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from selftune.exceptions import SelftuneError
from selftune.storage import Storage

logger = logging.getLogger("selftune")

__all__ = ["Heartbeat"]


class Heartbeat:
    """Every ``interval`` seconds: refresh the heartbeats of this process's running trials, then mark FAILED
    any trial of the study (whoever ran it) whose heartbeat is older than ``grace`` seconds.

    ``on_lost(number)`` is called for a trial of ours that the storage no longer holds as RUNNING.

    The reaper runs only after ``grace`` seconds of uninterrupted storage access: from the first round, after
    a round failed or came more than ``grace`` after the one before (this thread stalled, or a storage call
    blocked), and after the storage reconnected (its ``reconnected_at``, plus its ``backoff_max``: the longest
    another process may sleep before it retries and finds the server back). After an outage every process
    missed heartbeats; by the time this one reaps, each live process has had a grace period to beat again.
    """

    def __init__(
        self,
        storage: Storage,
        study_id: int,
        interval: float,
        grace: float,
        on_lost: Callable[[int], None],
    ) -> None:
        self._storage = storage
        self._study_id = study_id
        self.interval = interval
        self.grace = grace
        self._on_lost = on_lost
        self._numbers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_round: float | None = None  # monotonic start of the last round whose storage calls worked
        self._ok_since = 0.0  # monotonic start of the current stretch of uninterrupted storage access
        self._seen_back = float("-inf")  # the storage's last ``reconnected_at`` this thread took into account

    def add(self, number: int) -> None:
        """Start beating for trial ``number``; starts the thread on first use."""
        with self._lock:
            self._numbers.add(number)
        self.start()

    def start(self) -> None:
        """Start the thread (heartbeats and the reaper) unless it runs already."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=_run, args=(weakref.ref(self), self._stop), name="selftune-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, number: int) -> None:
        """Stop beating for trial ``number``."""
        with self._lock:
            self._numbers.discard(number)

    def tick(self) -> list[int]:
        """One round of heartbeats and reaping; returns the trials reaped."""
        start = time.monotonic()
        if self._last_round is None or start - self._last_round > self.grace:
            self._ok_since = max(self._ok_since, start)
        self._last_round = None  # until this round's storage calls worked
        with self._lock:
            numbers = sorted(self._numbers)
        if numbers:
            for n in self._storage.heartbeat(self._study_id, numbers):
                self.discard(n)
                self._on_lost(n)
        back = getattr(self._storage, "reconnected_at", None)
        if back is not None and back > self._seen_back:  # an outage ended since the last round
            self._seen_back = back
            self._ok_since = max(self._ok_since, back + getattr(self._storage, "backoff_max", 0.0))
        self._last_round = start
        if time.monotonic() - self._ok_since < self.grace:
            return []  # others may not have beaten since their storage came back
        reaped = self._storage.reap(self._study_id, self.grace)
        if reaped:
            logger.warning("marked %d trial(s) FAILED after their heartbeat was lost: %s", len(reaped), reaped)
        return reaped

    def stop(self) -> None:
        """Stop the thread (it ends within one interval)."""
        self._stop.set()


def _run(ref: weakref.ref[Heartbeat], stop: threading.Event) -> None:
    while True:
        hb = ref()
        if hb is None:
            return
        interval = hb.interval
        try:
            hb.tick()
        except SelftuneError as exc:  # a storage hiccup must not kill the heartbeat
            logger.warning("heartbeat failed: %s", exc)
        except Exception as exc:  # noqa: BLE001 - e.g. a dropped database connection; retried next tick
            logger.warning("heartbeat failed: %r", exc)
        del hb
        if stop.wait(interval):
            return
