"""The storage conformance suite: subclass :class:`StorageConformance` and provide a ``storage`` fixture.

>>> # in a test module:
>>> # class TestMyStorage(StorageConformance):
>>> #     @pytest.fixture
>>> #     def storage(self):
>>> #         return MyStorage(...)
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from selftune.exceptions import (
    InvalidParameterError,
    InvalidValueError,
    StudyExistsError,
    StudyNotFoundError,
    TrialNotFoundError,
    TrialStateError,
)
from selftune.storage._base import HEARTBEAT_LOST, RETRIED_AS_KEY, RETRY_KEY, BudgetSpentError, Storage
from selftune.trial import TrialState

__all__ = ["StorageConformance", "HOSTILE_NAMES"]

#: Study names, keys and values that must round-trip unchanged.
HOSTILE_NAMES = [
    "plain",
    "quote ' double \" semicolon ; -- comment",
    "Robert'); DROP TABLE selftune_studies;--",
    "ünïcödé 学习率 🚀 \u202eright-to-left",
    "back\\slash/and%percent_under",
    "x" * 512,
]

_FLOATS = [0.0, -0.0, 1.0, -1.5, 1e-308, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, math.pi, math.inf, -math.inf]


class StorageConformance:
    """Behaviour every :class:`~selftune.storage.Storage` must have. Needs a ``storage`` fixture."""

    storage: Storage

    @pytest.fixture
    def study_id(self, storage: Storage) -> int:
        return storage.create_study("conformance", "minimize", None).id

    # -- studies --------------------------------------------------------------------------------------
    def test_create_get_list_delete(self, storage: Storage) -> None:
        info = storage.create_study("a", "maximize", {"x": {"kind": "float", "low": 0.0, "high": 1.0, "log": False}})
        assert storage.get_study("a") == info
        assert info.space == {"x": {"kind": "float", "low": 0.0, "high": 1.0, "log": False}}
        storage.create_study("b", "minimize", None)
        assert [s.info.name for s in storage.list_studies()] == ["a", "b"]
        storage.delete_study("a")
        assert [s.info.name for s in storage.list_studies()] == ["b"]
        with pytest.raises(StudyNotFoundError, match="'a'"):
            storage.get_study("a")
        with pytest.raises(StudyNotFoundError):
            storage.delete_study("a")

    def test_duplicate_study_name(self, storage: Storage) -> None:
        storage.create_study("dup", "minimize", None)
        with pytest.raises(StudyExistsError, match="dup"):
            storage.create_study("dup", "minimize", None)

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_study_names_round_trip(self, storage: Storage, name: str) -> None:
        info = storage.create_study(name, "minimize", None)
        assert storage.get_study(name).id == info.id
        assert storage.get_study(name).name == name

    @pytest.mark.parametrize("name", ["", "   ", "x" * 513, "nul\x00byte", "bell\x07", 42])
    def test_bad_study_names_rejected(self, storage: Storage, name: Any) -> None:
        with pytest.raises(InvalidParameterError, match="study name"):
            storage.create_study(name, "minimize", None)
        assert storage.list_studies() == []

    def test_study_attrs(self, storage: Storage, study_id: int) -> None:
        storage.set_study_attr(study_id, "k", {"nested": [1, 2.5, None]})
        storage.set_study_attr(study_id, "k", "overwritten")
        assert storage.get_study("conformance").user_attrs == {"k": "overwritten"}
        with pytest.raises(InvalidValueError, match="JSON"):
            storage.set_study_attr(study_id, "bad", object())

    # -- numbering and states -------------------------------------------------------------------------
    def test_numbers_dense_from_zero(self, storage: Storage, study_id: int) -> None:
        nums = [storage.start_trial(study_id, "w").number for _ in range(3)]
        nums.append(storage.enqueue_trial(study_id, {"x": 1}).number)
        nums.append(storage.start_trial(study_id, "w").number)  # claims the enqueued one
        nums.append(storage.start_trial(study_id, "w").number)
        assert nums == [0, 1, 2, 3, 3, 4]

    def test_waiting_claimed_once_fifo(self, storage: Storage, study_id: int) -> None:
        a = storage.enqueue_trial(study_id, {"x": 1.5})
        b = storage.enqueue_trial(study_id, {"x": 2.5, "c": ["u", None]})
        assert a.state is TrialState.WAITING
        first = storage.start_trial(study_id, "w1")
        second = storage.start_trial(study_id, "w2")
        third = storage.start_trial(study_id, "w3")
        assert (first.number, second.number, third.number) == (a.number, b.number, 2)
        assert dict(first.fixed) == {"x": 1.5} and dict(second.fixed) == {"x": 2.5, "c": ["u", None]}
        assert first.state is TrialState.RUNNING and first.worker == "w1"

    def test_start_without_claim_leaves_waiting(self, storage: Storage, study_id: int) -> None:
        w = storage.enqueue_trial(study_id, {"x": 1}).number
        assert storage.start_trial(study_id, "w", claim=False).number == w + 1
        assert storage.get_trial(study_id, w).state is TrialState.WAITING
        assert storage.start_trial(study_id, "w").number == w

    def test_waiting_can_be_cancelled(self, storage: Storage, study_id: int) -> None:
        n = storage.enqueue_trial(study_id, {}).number
        storage.finish_trial(study_id, n, TrialState.FAILED, reason="cancelled")
        assert storage.start_trial(study_id, "w").number == n + 1

    @pytest.mark.parametrize("value", _FLOATS)
    def test_values_round_trip_exactly(self, storage: Storage, study_id: int, value: float) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.report(study_id, n, 0, value)
        storage.finish_trial(study_id, n, TrialState.COMPLETE, value)
        for got in (storage.get_trial(study_id, n), storage.read_trials(study_id)[0][-1]):
            assert got.value == value and math.copysign(1, got.value) == math.copysign(1, value)
            assert got.intermediate[0] == value

    def test_nan_never_completes(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        with pytest.raises(InvalidValueError, match="NaN"):
            storage.finish_trial(study_id, n, TrialState.COMPLETE, math.nan)
        with pytest.raises(InvalidValueError):
            storage.finish_trial(study_id, n, TrialState.COMPLETE, None)
        assert storage.get_trial(study_id, n).state is TrialState.RUNNING

    def test_finished_trials_are_immutable(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.set_trial_params(study_id, n, {"x": 0.5})
        storage.finish_trial(study_id, n, TrialState.COMPLETE, 1.0)
        for change in (
            lambda: storage.finish_trial(study_id, n, TrialState.COMPLETE, 2.0),
            lambda: storage.finish_trial(study_id, n, TrialState.FAILED),
            lambda: storage.report(study_id, n, 1, 0.0),
            lambda: storage.set_trial_params(study_id, n, {"y": 1}),
            lambda: storage.set_trial_attr(study_id, n, "k", 1),
        ):
            with pytest.raises(TrialStateError, match=f"trial {n}"):
                change()
        rec = storage.get_trial(study_id, n)
        assert rec.state is TrialState.COMPLETE and rec.value == 1.0 and dict(rec.params) == {"x": 0.5}
        assert rec.user_attrs == {} and rec.intermediate == {}

    def test_unknown_trial(self, storage: Storage, study_id: int) -> None:
        with pytest.raises(TrialNotFoundError, match="7"):
            storage.finish_trial(study_id, 7, TrialState.COMPLETE, 1.0)
        with pytest.raises(TrialNotFoundError):
            storage.get_trial(study_id, 7)

    def test_stopped_and_failed(self, storage: Storage, study_id: int) -> None:
        a = storage.start_trial(study_id, "w").number
        b = storage.start_trial(study_id, "w").number
        storage.report(study_id, a, 3, 0.25)
        storage.finish_trial(study_id, a, TrialState.STOPPED, 0.25)
        storage.finish_trial(study_id, b, TrialState.FAILED, reason="boom", traceback="Traceback ...")
        ra, rb = storage.get_trial(study_id, a), storage.get_trial(study_id, b)
        assert ra.state is TrialState.STOPPED and ra.intermediate == {3: 0.25}
        assert rb.state is TrialState.FAILED and rb.value is None
        assert rb.reason == "boom" and rb.traceback == "Traceback ..."
        assert rb.finished_at is not None and rb.started_at is not None and rb.finished_at >= rb.started_at
        with pytest.raises(InvalidValueError):
            storage.finish_trial(study_id, storage.start_trial(study_id, "w").number, TrialState.FAILED, 1.0)

    def test_pause_resume(self, storage: Storage, study_id: int) -> None:
        """RUNNING ⇄ PAUSED keeps the curve and parameters; a paused trial is neither reaped nor writable."""
        n = storage.start_trial(study_id, "w1", params={"lr": 0.1}).number
        storage.report(study_id, n, 1, 0.5)
        storage.pause_trial(study_id, n)
        rec = storage.get_trial(study_id, n)
        assert rec.state is TrialState.PAUSED and rec.intermediate == {1: 0.5} and dict(rec.params) == {"lr": 0.1}
        assert not rec.state.finished
        with pytest.raises(TrialStateError, match="PAUSED"):
            storage.report(study_id, n, 2, 0.4)
        with pytest.raises(TrialStateError):
            storage.finish_trial(study_id, n, TrialState.COMPLETE, 0.4)  # resume first
        with pytest.raises(TrialStateError):
            storage.pause_trial(study_id, n)
        time.sleep(0.2)
        assert storage.reap(study_id, grace=0.05) == []  # nobody runs it: nothing to reap
        assert storage.heartbeat(study_id, [n]) == [n]  # its old worker learns it let it go
        rec = storage.resume_trial(study_id, n, "w2")
        assert rec.state is TrialState.RUNNING and rec.worker == "w2" and rec.intermediate == {1: 0.5}
        with pytest.raises(TrialStateError, match="not PAUSED"):
            storage.resume_trial(study_id, n, "w3")
        storage.report(study_id, n, 2, 0.4)
        storage.finish_trial(study_id, n, TrialState.COMPLETE, 0.4)
        assert storage.get_trial(study_id, n).intermediate == {1: 0.5, 2: 0.4}
        with pytest.raises(TrialNotFoundError):
            storage.resume_trial(study_id, 99, "w")

    def test_resume_checks_where_the_trial_waits(self, storage: Storage, study_id: int) -> None:
        """A resume decided on an old view (the trial has moved on and paused again) is refused."""
        n = storage.start_trial(study_id, "w").number
        storage.pause_trial(study_id, n)
        storage.resume_trial(study_id, n, "w", last_step=-1)  # no report yet
        storage.report(study_id, n, 1, 0.5)
        storage.report(study_id, n, 3, 0.4)
        storage.pause_trial(study_id, n)
        with pytest.raises(TrialStateError, match="PAUSED at step 3, not at step 1"):
            storage.resume_trial(study_id, n, "late", last_step=1)
        assert storage.get_trial(study_id, n).state is TrialState.PAUSED
        assert storage.resume_trial(study_id, n, "w2", last_step=3).worker == "w2"

    def test_paused_trial_can_be_stopped_or_failed(self, storage: Storage, study_id: int) -> None:
        a, b = storage.start_trial(study_id, "w").number, storage.start_trial(study_id, "w").number
        for n in (a, b):
            storage.report(study_id, n, 3, 2.0)
            storage.pause_trial(study_id, n)
        storage.finish_trial(study_id, a, TrialState.STOPPED, 2.0, reason="not promoted")
        storage.finish_trial(study_id, b, TrialState.FAILED, reason="gone")
        assert storage.get_trial(study_id, a).state is TrialState.STOPPED
        assert storage.get_trial(study_id, a).reason == "not promoted"
        assert storage.get_trial(study_id, b).state is TrialState.FAILED
        with pytest.raises(TrialStateError):
            storage.resume_trial(study_id, a, "w")

    def test_stop_paused_trial_refuses_a_stale_decision(self, storage: Storage, study_id: int) -> None:
        """A stop decided while the trial waited at step 3 does not hit it once another worker resumed it
        (running, or paused again further on); where it still waits there, it is stopped with its value."""
        n = storage.start_trial(study_id, "w").number
        storage.report(study_id, n, 3, 2.0)
        storage.pause_trial(study_id, n)
        storage.resume_trial(study_id, n, "w2", last_step=3)
        with pytest.raises(TrialStateError, match="not PAUSED"):
            storage.stop_paused_trial(study_id, n, 3, 2.0, "not promoted")
        assert storage.get_trial(study_id, n).state is TrialState.RUNNING
        storage.report(study_id, n, 9, 1.5)
        storage.pause_trial(study_id, n)
        with pytest.raises(TrialStateError, match="PAUSED at step 9, not at step 3"):
            storage.stop_paused_trial(study_id, n, 3, 2.0, "not promoted")
        assert storage.get_trial(study_id, n).state is TrialState.PAUSED
        storage.stop_paused_trial(study_id, n, 9, 1.5, "not promoted")
        rec = storage.get_trial(study_id, n)
        assert (rec.state, rec.value, rec.reason) == (TrialState.STOPPED, 1.5, "not promoted")
        assert rec.intermediate == {3: 2.0, 9: 1.5}
        with pytest.raises(TrialStateError):
            storage.stop_paused_trial(study_id, n, 9, 1.5, "again")

    def test_resume_with_new_params_is_one_transaction(self, storage: Storage, study_id: int) -> None:
        """An exploit replaces all parameters and sets system attributes as it resumes, or changes nothing."""
        n = storage.start_trial(study_id, "w", {"lr": 0.1, "width": 64, "momentum": 0.9}).number
        storage.set_trial_attr(study_id, n, "note", "mine")
        storage.report(study_id, n, 4, 0.5)
        storage.pause_trial(study_id, n)
        pbt = {"schedule": [[0, {"lr": 0.2, "width": 32}], [5, {"lr": 0.16, "width": 32}]], "lineage": [{"step": 4}]}
        with pytest.raises(TrialStateError):  # decided on an old view: nothing changes
            storage.resume_trial(study_id, n, "w2", last_step=3, params={"lr": 0.16}, system_attrs={"selftune:pbt": pbt})
        before = storage.get_trial(study_id, n)
        assert before.params == {"lr": 0.1, "width": 64, "momentum": 0.9} and before.system_attrs == {}
        rec = storage.resume_trial(
            study_id, n, "w2", last_step=4, params={"lr": 0.16, "width": 32}, system_attrs={"selftune:pbt": pbt}
        )
        assert rec.state is TrialState.RUNNING and rec.worker == "w2"
        assert rec.params == {"lr": 0.16, "width": 32}  # replaced: momentum is gone
        assert rec.system_attrs == {"selftune:pbt": pbt} and rec.user_attrs == {"note": "mine"}
        assert storage.read_trials(study_id)[0][n] == rec
        storage.report(study_id, n, 5, 0.4)  # the curve goes on after the exploit
        assert storage.get_trial(study_id, n).intermediate == {4: 0.5, 5: 0.4}

    def test_system_attr_keys_are_checked(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.pause_trial(study_id, n)
        with pytest.raises(InvalidParameterError, match="system attribute keys start with 'selftune:'"):
            storage.resume_trial(study_id, n, "w", system_attrs={"pbt": 1})
        assert storage.get_trial(study_id, n).state is TrialState.PAUSED

    def test_resume_is_taken_by_exactly_one_thread(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.pause_trial(study_id, n)
        wins: list[str] = []
        errors: list[BaseException] = []

        def work(name: str) -> None:
            try:
                storage.resume_trial(study_id, n, name)
                wins.append(name)
            except TrialStateError:
                pass
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(wins) == 1 and storage.get_trial(study_id, n).worker == wins[0]

    # -- params, reports, attributes ------------------------------------------------------------------
    def test_params_round_trip(self, storage: Storage, study_id: int) -> None:
        params = {"lr": 0.1 + 0.2, "n": 7, "opt": "adam", "shape": [3, [4, None]], "cfg": {"a": True}, "ß 键": -0.0}
        n = storage.start_trial(study_id, "w", params={"first": 1e-300}).number
        storage.set_trial_params(study_id, n, params)
        got = storage.get_trial(study_id, n).params
        assert dict(got) == {"first": 1e-300, **params}
        with pytest.raises(TrialStateError):
            storage.set_trial_params(study_id, n, {"lr": 0.5})  # a parameter's value never changes
        assert storage.get_trial(study_id, n).params["lr"] == 0.1 + 0.2

    def test_repeated_step_is_an_error(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.report(study_id, n, 5, 1.0)
        with pytest.raises(TrialStateError, match="step 5"):
            storage.report(study_id, n, 5, 2.0)
        assert storage.get_trial(study_id, n).intermediate == {5: 1.0}

    def test_trial_attrs(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        for key in HOSTILE_NAMES:
            storage.set_trial_attr(study_id, n, key, {"v": key})
        storage.set_trial_attr(study_id, n, "plain", 3)
        attrs = storage.get_trial(study_id, n).user_attrs
        assert attrs["plain"] == 3 and all(attrs[k] == {"v": k} for k in HOSTILE_NAMES[1:])
        with pytest.raises(InvalidValueError, match="JSON"):
            storage.set_trial_attr(study_id, n, "obj", object())

    def test_param_registry_first_definition_wins(self, storage: Storage, study_id: int) -> None:
        spec = {"kind": "int", "low": 1, "high": 5, "log": False, "step": 1}
        assert storage.define_param(study_id, "n", spec) == spec
        assert storage.define_param(study_id, "n", {**spec, "high": 9}) == spec
        assert storage.get_params(study_id) == {"n": spec}

    # -- incremental reads ----------------------------------------------------------------------------
    def test_reads_are_incremental(self, storage: Storage, study_id: int) -> None:
        nums = [storage.start_trial(study_id, "w").number for _ in range(5)]
        everything, cursor = storage.read_trials(study_id, 0)
        assert [r.number for r in everything] == nums
        assert storage.read_trials(study_id, cursor) == ([], cursor)
        storage.report(study_id, 2, 0, 0.5)
        changed, cursor = storage.read_trials(study_id, cursor)
        assert [r.number for r in changed] == [2] and changed[0].intermediate == {0: 0.5}
        storage.finish_trial(study_id, 4, TrialState.COMPLETE, 1.0)
        storage.set_trial_attr(study_id, 1, "k", "v")
        changed, cursor = storage.read_trials(study_id, cursor)
        assert [r.number for r in changed] == [1, 4]
        assert storage.read_trials(study_id, cursor)[0] == []

    def test_studies_are_isolated(self, storage: Storage) -> None:
        a = storage.create_study("iso-a", "minimize", None).id
        b = storage.create_study("iso-b", "minimize", None).id
        storage.start_trial(a, "w")
        assert storage.start_trial(b, "w").number == 0
        assert len(storage.read_trials(a)[0]) == 1 and len(storage.read_trials(b)[0]) == 1
        storage.delete_study("iso-a")
        assert len(storage.read_trials(b)[0]) == 1

    # -- heartbeats and the reaper ----------------------------------------------------------------------
    def test_reaper_fails_silent_trials_only(self, storage: Storage, study_id: int) -> None:
        dead = storage.start_trial(study_id, "dead").number
        alive = storage.start_trial(study_id, "alive").number
        done = storage.start_trial(study_id, "done").number
        storage.finish_trial(study_id, done, TrialState.COMPLETE, 0.0)
        deadline = time.time() + 1.2
        while time.time() < deadline:
            assert storage.heartbeat(study_id, [alive]) == []
            time.sleep(0.1)
        assert storage.reap(study_id, grace=0.6) == [dead]
        rec = storage.get_trial(study_id, dead)
        assert rec.state is TrialState.FAILED and rec.reason == HEARTBEAT_LOST
        assert storage.get_trial(study_id, alive).state is TrialState.RUNNING
        assert storage.get_trial(study_id, done).state is TrialState.COMPLETE
        assert storage.heartbeat(study_id, [dead, alive]) == [dead]  # the worker learns its trial is gone
        assert storage.reap(study_id, grace=0.6) == []

    def test_reaped_trial_cannot_be_told(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        time.sleep(0.3)
        assert storage.reap(study_id, grace=0.1) == [n]
        with pytest.raises(TrialStateError, match="heartbeat lost"):
            storage.finish_trial(study_id, n, TrialState.COMPLETE, 1.0)

    # -- retries ----------------------------------------------------------------------------------------
    def test_retry_keeps_params_and_seed_and_counts_attempts(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w", params={"lr": 0.01, "opt": "adam"}).number
        storage.finish_trial(study_id, n, TrialState.FAILED, reason=HEARTBEAT_LOST)
        retry = storage.retry_trial(study_id, n, max_attempts=3)
        assert retry is not None and retry.state is TrialState.WAITING and retry.number == n + 1
        assert retry.fixed["lr"] == 0.01 and retry.fixed["opt"] == "adam"
        assert retry.fixed[RETRY_KEY] == {"of": n, "previous": n, "attempt": 2}
        assert retry.seed == n  # the same seed as the failed attempt
        assert storage.get_trial(study_id, n).system_attrs[RETRIED_AS_KEY] == retry.number
        assert storage.retry_trial(study_id, n, max_attempts=3) is None  # retried already
        # the claimed retry fails too: attempt 3 is the last one allowed
        claimed = storage.start_trial(study_id, "w2")
        assert claimed.number == retry.number and claimed.state is TrialState.RUNNING
        storage.finish_trial(study_id, claimed.number, TrialState.FAILED, reason=HEARTBEAT_LOST)
        third = storage.retry_trial(study_id, claimed.number, max_attempts=3)
        assert third is not None and third.fixed[RETRY_KEY] == {"of": n, "previous": claimed.number, "attempt": 3}
        assert third.seed == n
        last = storage.start_trial(study_id, "w3")
        storage.finish_trial(study_id, last.number, TrialState.FAILED, reason=HEARTBEAT_LOST)
        assert storage.retry_trial(study_id, last.number, max_attempts=3) is None
        changed, _ = storage.read_trials(study_id, 0)
        assert [r.state for r in changed] == [TrialState.FAILED] * 3

    def test_only_failed_trials_are_retried(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        assert storage.retry_trial(study_id, n, max_attempts=5) is None  # still running
        storage.finish_trial(study_id, n, TrialState.COMPLETE, 1.0)
        assert storage.retry_trial(study_id, n, max_attempts=5) is None
        with pytest.raises(TrialNotFoundError):
            storage.retry_trial(study_id, 99, max_attempts=5)

    def test_retry_is_enqueued_by_exactly_one_thread(self, storage: Storage, study_id: int) -> None:
        n = storage.start_trial(study_id, "w").number
        storage.finish_trial(study_id, n, TrialState.FAILED, reason=HEARTBEAT_LOST)
        got: list[Any] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                got.append(storage.retry_trial(study_id, n, max_attempts=2))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sum(r is not None for r in got) == 1
        records, _ = storage.read_trials(study_id, 0)
        assert [r.state for r in records] == [TrialState.FAILED, TrialState.WAITING]

    def test_budget_is_checked_in_the_start_transaction(self, storage: Storage, study_id: int) -> None:
        a = storage.start_trial(study_id, "w", budget=1).number
        storage.finish_trial(study_id, a, TrialState.FAILED, reason=HEARTBEAT_LOST)
        storage.enqueue_trial(study_id, {"x": 1})  # WAITING: not started, does not count
        storage.start_trial(study_id, "w", claim=False, budget=2)
        retry = storage.retry_trial(study_id, a, max_attempts=2)  # the retried failure stops counting
        assert retry is not None
        assert storage.start_trial(study_id, "w", budget=2).fixed == {"x": 1}  # 1 started + this = 2
        with pytest.raises(BudgetSpentError, match="budget 2"):
            storage.start_trial(study_id, "w", budget=2)
        claimed = storage.start_trial(study_id, "w", budget=3)  # the retry is claimed within a larger budget
        assert claimed.number == retry.number
        with pytest.raises(BudgetSpentError):
            storage.start_trial(study_id, "w", claim=False, budget=3)
        records, _ = storage.read_trials(study_id, 0)
        assert len(records) == 4  # the refused calls started nothing

    def test_threads_never_overshoot_the_budget(self, storage: Storage, study_id: int) -> None:
        started: list[int] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                while True:
                    try:
                        n = storage.start_trial(study_id, threading.current_thread().name, budget=30).number
                    except BudgetSpentError:
                        return
                    started.append(n)
                    storage.finish_trial(study_id, n, TrialState.COMPLETE, 0.0)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sorted(started) == list(range(30))

    # -- concurrency ------------------------------------------------------------------------------------
    def test_threads_get_unique_dense_numbers(self, storage: Storage, study_id: int) -> None:
        got: list[int] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(25):
                    n = storage.start_trial(study_id, threading.current_thread().name).number
                    storage.finish_trial(study_id, n, TrialState.COMPLETE, float(n))
                    with lock:
                        got.append(n)
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sorted(got) == list(range(100))
        records, _ = storage.read_trials(study_id, 0)
        assert [(r.number, r.value) for r in records] == [(n, float(n)) for n in range(100)]
