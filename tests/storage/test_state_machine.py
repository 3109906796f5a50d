"""A hypothesis state machine over the storage contract, run against memory and SQLite.

A plain-Python model predicts every outcome; after each step the storage must agree with it: numbers are
unique and dense, finished trials never change, only legal transitions happen, values round-trip exactly.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from selftune.exceptions import InvalidValueError, TrialStateError
from selftune.storage import MemoryStorage, Storage
from selftune.storage.sql import SQLStorage
from selftune.trial import TrialState

values = st.floats(allow_nan=False) | st.sampled_from([math.inf, -math.inf, -0.0, 0.0])
json_values = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)


class StorageMachine(RuleBasedStateMachine):
    make: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.storage: Storage = type(self).make()
        self.sid = self.storage.create_study("sm", "minimize", None).id
        self.model: dict[int, dict[str, Any]] = {}
        self.cursor = 0

    def _numbers(self, state: TrialState) -> list[int]:
        return [n for n, t in self.model.items() if t["state"] is state]

    @rule()
    def start(self) -> None:
        waiting = self._numbers(TrialState.WAITING)
        rec = self.storage.start_trial(self.sid, "w")
        expected = min(waiting) if waiting else len(self.model)
        assert rec.number == expected
        if waiting:
            self.model[expected]["state"] = TrialState.RUNNING
        else:
            self.model[expected] = {"state": TrialState.RUNNING, "params": {}, "inter": {}, "value": None, "fixed": {}}

    @rule(fixed=st.dictionaries(st.text(min_size=1, max_size=4).filter(lambda k: "\x00" not in k), json_values, max_size=2))
    def enqueue(self, fixed: dict) -> None:
        rec = self.storage.enqueue_trial(self.sid, fixed)
        assert rec.number == len(self.model)
        self.model[rec.number] = {"state": TrialState.WAITING, "params": {}, "inter": {}, "value": None, "fixed": fixed}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), name=st.sampled_from(["a", "b", "c"]), value=json_values)
    def set_param(self, data: st.DataObject, name: str, value: Any) -> None:
        n = data.draw(st.sampled_from(sorted(self.model)))
        t = self.model[n]
        if t["state"] is TrialState.RUNNING and name not in t["params"]:
            self.storage.set_trial_params(self.sid, n, {name: value})
            t["params"][name] = value
        else:
            with pytest.raises(TrialStateError):
                self.storage.set_trial_params(self.sid, n, {name: value})

    @precondition(lambda self: self.model)
    @rule(data=st.data(), step=st.integers(0, 5), value=values)
    def report(self, data: st.DataObject, step: int, value: float) -> None:
        n = data.draw(st.sampled_from(sorted(self.model)))
        t = self.model[n]
        if t["state"] is TrialState.RUNNING and step not in t["inter"]:
            self.storage.report(self.sid, n, step, value)
            t["inter"][step] = value
        else:
            with pytest.raises(TrialStateError):
                self.storage.report(self.sid, n, step, value)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), state=st.sampled_from([TrialState.COMPLETE, TrialState.STOPPED, TrialState.FAILED]),
          value=values | st.none() | st.just(math.nan))
    def finish(self, data: st.DataObject, state: TrialState, value: float | None) -> None:
        n = data.draw(st.sampled_from(sorted(self.model)))
        t = self.model[n]
        bad_value = (
            (value is not None and math.isnan(value))
            or (state is TrialState.COMPLETE and value is None)
            or (state is TrialState.FAILED and value is not None)
        )
        legal = t["state"] is TrialState.RUNNING or (t["state"] is TrialState.WAITING and state is TrialState.FAILED)
        if bad_value:
            with pytest.raises(InvalidValueError):
                self.storage.finish_trial(self.sid, n, state, value)
        elif not legal:
            with pytest.raises(TrialStateError):
                self.storage.finish_trial(self.sid, n, state, value)
        else:
            self.storage.finish_trial(self.sid, n, state, value)
            t["state"], t["value"] = state, value

    @invariant()
    def storage_matches_model(self) -> None:
        changed, cursor = self.storage.read_trials(self.sid, self.cursor)
        assert cursor >= self.cursor
        self.cursor = cursor
        assert self.storage.read_trials(self.sid, cursor)[0] == []  # nothing changes between reads
        records, _ = self.storage.read_trials(self.sid, 0)
        assert [r.number for r in records] == list(range(len(self.model)))
        for r in records:
            t = self.model[r.number]
            assert r.state is t["state"]
            assert dict(r.params) == t["params"] and dict(r.fixed) == t["fixed"]
            assert r.intermediate == t["inter"]
            for a, b in [(r.value, t["value"])] + [(r.intermediate[k], v) for k, v in t["inter"].items()]:
                assert a == b and (a is None or math.copysign(1, a) == math.copysign(1, b))
        for r in changed:  # the incremental read returned current versions
            assert r == records[r.number]

    def teardown(self) -> None:
        self.storage.close()


class MemoryMachine(StorageMachine):
    make = MemoryStorage


_tmp = Path(tempfile.mkdtemp(prefix="selftune-sm-"))


class SQLiteMachine(StorageMachine):
    counter = 0

    @staticmethod
    def make() -> Storage:  # type: ignore[override]
        SQLiteMachine.counter += 1
        return SQLStorage(f"sqlite:///{_tmp / f'sm{SQLiteMachine.counter}.db'}")


TestMemoryStateMachine = MemoryMachine.TestCase
TestMemoryStateMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSQLiteStateMachine = SQLiteMachine.TestCase
TestSQLiteStateMachine.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
