"""What the dashboard keeps in memory: each study read once, then only what changed (the storage cursor).

A :class:`StudyView` holds every trial of one study, its counts by state and its best trial, and a memo of
things computed from them (figures, sorted orders of the trial table) keyed by the cursor they were
computed at. A poll with no change costs one incremental read that returns nothing; a figure is recomputed
only when the study changed, and for a study that changes all the time no more often than every
``recompute_factor`` times its last compute time, so drawing never takes over the server.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from selftune.exceptions import StudyNotFoundError
from selftune.history import History, put_record
from selftune.schedule import PBT_ATTR
from selftune.space import Param, Space, param_from_json
from selftune.storage import Storage, StudyInfo, StudySummary
from selftune.storage._fastread import trial_reader
from selftune.trial import TrialRecord, TrialState

__all__ = ["StudyView", "Catalog", "Memo"]

T = TypeVar("T")


@dataclass(frozen=True)
class Memo:
    """A value computed from a study at ``cursor``, when, and how long it took."""

    cursor: int
    value: Any
    at: float
    seconds: float


class StudyView:
    """One study as the dashboard sees it, refreshed incrementally from the storage."""

    def __init__(self, storage: Storage, info: StudyInfo, *, min_interval: float = 0.25,
                 recompute_factor: float = 4.0) -> None:
        self.storage = storage
        self._read = trial_reader(storage)  # an SQL storage's fast full read; read_trials for the others
        self.info = info
        self.min_interval = min_interval
        self.recompute_factor = recompute_factor
        self.cursor = 0
        self._records: list[TrialRecord | None] = []
        self.counts: Counter[TrialState] = Counter()
        self.best: TrialRecord | None = None
        self._declared: dict[str, Param] = dict(Space.from_json(info.space)) if info.space is not None else {}
        self._params: dict[str, Param] = {}
        self._lock = threading.RLock()
        self._last_read = -float("inf")
        self._memo: dict[Any, Memo] = {}
        self._key_locks: dict[Any, threading.Lock] = {}
        self._history: History | None = None
        self.loaded = False
        #: whether some trial carries population based training's lineage (``selftune:pbt``)
        self.pbt = False

    @property
    def sign(self) -> float:
        """+1 when minimising, -1 when maximising."""
        return 1.0 if self.info.direction == "minimize" else -1.0

    @property
    def n_trials(self) -> int:
        """Every trial read so far, any state."""
        return sum(self.counts.values())

    def refresh(self, *, force: bool = False) -> int:
        """Read what changed since the last read (at most once every ``min_interval`` seconds unless
        ``force``) and return the cursor."""
        with self._lock:
            now = time.monotonic()
            if not force and self.loaded and now - self._last_read < self.min_interval:
                return self.cursor
            changed, cursor = self._read(self.info.id, self.cursor)
            self._last_read = time.monotonic()
            unknown = False
            for r in changed:
                self._put(r)
                unknown = unknown or any(k not in self._params and k not in self._declared for k in r.params)
            if unknown or not self.loaded:
                for name, spec in self.storage.get_params(self.info.id).items():
                    if name not in self._params:
                        self._params[name] = param_from_json(spec, name)
            if changed:
                self._history = None
            self.cursor = max(self.cursor, cursor)
            self.loaded = True
            return self.cursor

    def _put(self, r: TrialRecord) -> None:
        self.best = put_record(self._records, self.counts, self.best, r, self.sign)
        if not self.pbt and PBT_ATTR in r.system_attrs:
            self.pbt = True

    def history(self) -> History:
        """The trials read so far as a :class:`History` (the same object until something changes)."""
        with self._lock:
            if self._history is None:
                records = tuple(r for r in self._records if r is not None)
                params = {**self._declared, **{k: v for k, v in self._params.items() if k not in self._declared}}
                self._history = History(records, direction=self.info.direction, params=params)
            return self._history

    def records(self) -> list[TrialRecord]:
        """Every trial read so far, by number (a new list; the records are immutable)."""
        with self._lock:
            return [r for r in self._records if r is not None]

    def get(self, number: int) -> TrialRecord | None:
        """Trial ``number`` as last read, or None."""
        with self._lock:
            if 0 <= number < len(self._records):
                return self._records[number]
            return None

    def memo(self, key: Any, compute: Callable[[History], T], *, adaptive: bool = False) -> Memo:
        """``compute(history)`` cached for the current cursor. With ``adaptive``, a value computed at an older
        cursor is kept until ``recompute_factor`` times its compute time has passed (the caller sees its
        ``cursor`` and can ask again later). Computing holds no lock that a refresh needs."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one computation per key at a time; the others wait and take its result
            with self._lock:
                cursor, history = self.cursor, self.history()
                old = self._memo.get(key)
            if old is not None and old.cursor == cursor:
                return old
            if old is not None and adaptive and time.monotonic() - old.at < self.recompute_factor * old.seconds:
                return old
            start = time.monotonic()
            value = compute(history)
            end = time.monotonic()
            memo = Memo(cursor, value, end, end - start)
            with self._lock:
                self._memo[key] = memo
            return memo


class Catalog:
    """The studies of a storage (listed at most once every ``ttl`` seconds) and their views, by id."""

    def __init__(self, storage: Storage, *, ttl: float = 1.0, min_interval: float = 0.25) -> None:
        self.storage = storage
        self.ttl = ttl
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._listed: list[StudySummary] = []
        self._listed_at = -float("inf")
        self._views: dict[int, StudyView] = {}

    def studies(self, *, fresh: bool = False) -> list[StudySummary]:
        """Every study with its counts (cached for ``ttl`` seconds unless ``fresh``)."""
        with self._lock:
            if fresh or time.monotonic() - self._listed_at >= self.ttl:
                self._listed = self.storage.list_studies()
                self._listed_at = time.monotonic()
                ids = {s.info.id: s.info for s in self._listed}
                for sid, view in list(self._views.items()):  # deleted, or a new study under an old id
                    info = ids.get(sid)
                    if info is None or (info.name, info.created_at) != (view.info.name, view.info.created_at):
                        del self._views[sid]
                    else:
                        view.info = info  # its attributes (the note) may have changed
            return list(self._listed)

    def view(self, study_id: int) -> StudyView:
        """The view of study ``study_id``; raise :class:`StudyNotFoundError` if the storage has none."""
        with self._lock:
            found = self._views.get(study_id)
        if found is not None:
            return found
        for fresh in (False, True):
            info = next((s.info for s in self.studies(fresh=fresh) if s.info.id == study_id), None)
            if info is not None:
                break
        else:
            raise StudyNotFoundError(f"no study with id {study_id} in {self.storage.url}")
        with self._lock:
            found = self._views.setdefault(study_id, StudyView(self.storage, info, min_interval=self.min_interval))
        return found

    def stale(self) -> None:
        """List again on the next call."""
        with self._lock:
            self._listed_at = -float("inf")

    def forget(self, study_id: int) -> None:
        """Drop the view of a study (after deleting it) and list again on the next call."""
        with self._lock:
            self._views.pop(study_id, None)
            self._listed_at = -float("inf")
