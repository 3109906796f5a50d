"""Synchronous successive halving and Hyperband: pause at a rung, resume the best, stop the rest."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from scheduler_helpers import hist, rec, running, two_worker_processes

import selftune
from selftune.benchmarks.curves import StepCounter, SyntheticCurves
from selftune.schedulers import Action, HyperbandScheduler, SuccessiveHalvingScheduler
from selftune.schedulers.synchronous import Cohort, cohort_decisions
from selftune.trial import TrialRecord, TrialState

PROBLEM = SyntheticCurves(max_steps=27)


def _paused(number: int, curve: dict[int, float]) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.PAUSED, intermediate=dict(curve))


def test_cohort_decisions_rung_by_rung() -> None:
    cohort = Cohort(0, 9, (1, 3), "c")
    members = [_paused(i, {1: float(i)}) for i in range(9)]
    decided = cohort_decisions(cohort, hist(members), 3, closed=True)
    assert {n for n, (k, d) in decided.items() if d.action is Action.CONTINUE} == {0, 1, 2}
    assert all(decided[n][1].stops and "ranks" in decided[n][1].reason for n in range(3, 9))
    # rung 3 waits for the three promoted trials
    members[0] = _paused(0, {1: 0.0, 3: 5.0})
    members[1] = running(1, {1: 1.0})
    assert all(k == 0 for k, _ in cohort_decisions(cohort, hist(members), 3, closed=True).values())
    members[1] = _paused(1, {1: 1.0, 3: 0.5})
    members[2] = rec(2, {1: 2.0}, TrialState.FAILED)  # failed: ranked last, does not block
    decided = cohort_decisions(cohort, hist(members), 3, closed=True)
    assert decided[1] == (1, selftune.schedulers.CONTINUE) and decided[0][1].stops and decided[2][1].stops


def test_an_unfilled_cohort_waits_unless_closed() -> None:
    cohort = Cohort(0, 9, (1,), "c")
    members = [_paused(i, {1: float(i)}) for i in range(4)]
    assert cohort_decisions(cohort, hist(members), 3, closed=False) == {}
    decided = cohort_decisions(cohort, hist(members), 3, closed=True)
    assert [n for n, (_, d) in decided.items() if not d.stops] == [0]  # max(1, 4 // 3) = 1


def test_on_report_pauses_until_the_rung_fills() -> None:
    sh = SuccessiveHalvingScheduler(max_resource=9, cohort_size=3)
    others = [_paused(0, {1: 0.5}), _paused(1, {1: 0.1})]
    me = running(2, {1: 0.9})
    d = sh.on_report(me, hist([*others[:1], me]))
    assert d.action is Action.PAUSE and "waiting at rung 1" in d.reason
    d = sh.on_report(me, hist([*others, me]))  # the last one in: decided now, and it is not the best
    assert d.stops
    best = running(2, {1: 0.0})
    assert sh.on_report(best, hist([*others, best])).action is Action.CONTINUE
    decisions = sh.on_paused(hist([*others, best]), final=False)
    assert decisions[0].stops and decisions[1].stops  # only one of three goes on
    assert sh.on_report(running(3, {1: 9.0}), hist([running(3, {1: 9.0})])).action is Action.PAUSE  # cohort 1


def _objective_with_checkpoints(log: list[tuple[int, int | None, int | None]]):  # type: ignore[no-untyped-def]
    """A curve objective that checkpoints its step and resumes from it, logging what it loaded."""

    def objective(trial: selftune.Trial) -> float:
        x = trial.float("x", 0.0, 1.0)
        state = trial.load_checkpoint()
        start = 0 if state is None else int(state.decode())
        log.append((trial.number, trial.resume_step, None if state is None else start))
        value = 0.0
        for step in range(start + 1, 28):
            value = x + 1.0 / step
            trial.report(value, step)
            trial.save_checkpoint(str(step).encode())
            if trial.should_stop():
                raise selftune.StopTrial()
        return value

    return objective


def test_successive_halving_study_with_checkpoints() -> None:
    log: list[tuple[int, int | None, int | None]] = []
    study = selftune.create_study(
        storage="memory", sampler=selftune.RandomSampler(seed=1), scheduler=SuccessiveHalvingScheduler(max_resource=27)
    )
    study.optimize(_objective_with_checkpoints(log), trials=27, progress=False)
    trials = study.trials
    states = collections.Counter(t.state for t in trials)
    assert states == {TrialState.STOPPED: 26, TrialState.COMPLETE: 1}
    assert collections.Counter(t.last_step for t in trials) == {1: 18, 3: 6, 9: 2, 27: 1}
    # the survivors of each rung are exactly the best there
    xs = sorted(trials, key=lambda t: t.params["x"])
    assert [t.last_step for t in xs[:3]] == [27, 9, 9] and study.best.number == xs[0].number
    for t in trials:
        assert list(t.intermediate) == list(range(1, t.last_step + 1))  # every step once, none redone
    # every resumed run loaded the checkpoint of the step it paused at
    resumed = [(n, rs, loaded) for n, rs, loaded in log if rs is not None]
    assert resumed and all(rs == loaded for _, rs, loaded in resumed)
    # promoted trials resume, except one that completes its rung last (it goes straight on)
    assert 9 + 2 <= len(resumed) <= 9 + 3 + 1


def test_budget_end_closes_a_partial_cohort() -> None:
    counter = StepCounter()
    study = selftune.create_study(
        storage="memory", space=PROBLEM.space, sampler=selftune.RandomSampler(seed=0),
        scheduler=SuccessiveHalvingScheduler(max_resource=27),
    )
    study.optimize(PROBLEM.objective(seed=0, counter=counter), trials=10, progress=False)
    trials = study.trials
    assert len(trials) == 10 and all(t.state.finished for t in trials)  # nothing is left PAUSED
    assert collections.Counter(t.last_step for t in trials) == {1: 7, 3: 2, 27: 1}


def test_synchronous_hyperband_brackets() -> None:
    hb = HyperbandScheduler(max_resource=9, synchronous=True)
    study = selftune.create_study(
        storage="memory", space=PROBLEM.space, sampler=selftune.TPESampler(seed=0), scheduler=hb
    )
    study.optimize(SyntheticCurves(max_steps=9).objective(seed=0), trials=17, progress=False)
    trials = study.trials
    # R=9, eta=3: brackets of 9, 5 and 3 trials (Li et al.), filled in turn
    assert [hb.bracket(t.number) for t in trials] == [0] * 9 + [1] * 5 + [2] * 3
    assert all(t.state.finished for t in trials)
    by_bracket = collections.defaultdict(list)
    for t in trials:
        by_bracket[hb.bracket(t.number)].append(t.last_step)
    assert sorted(by_bracket[0]) == [1] * 6 + [3] * 2 + [9]
    assert sorted(by_bracket[1]) == [3] * 4 + [9]
    assert by_bracket[2] == [9, 9, 9]


def test_synchronous_runs_are_deterministic_and_resume(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"

    def make(storage: str, name: str | None = None) -> selftune.Study:
        return selftune.create_study(
            name, storage=storage, space=PROBLEM.space, sampler=selftune.TPESampler(seed=2),
            scheduler=HyperbandScheduler(max_resource=27, synchronous=True),
        )

    straight = make("memory")
    straight.optimize(PROBLEM.objective(seed=0), trials=40, progress=False)
    first = make(url, "sync")

    def halt(study: selftune.Study, record: selftune.TrialRecord) -> None:
        if len(study.trials) >= 20:
            study.stop()  # as if the driver died between trials

    first.optimize(PROBLEM.objective(seed=0), trials=40, progress=False, callbacks=[halt])
    assert any(t.state is TrialState.PAUSED for t in first.trials)  # stopped mid-cohort: trials wait
    first.close()
    again = make(url, "sync")
    again.optimize(PROBLEM.objective(seed=0), trials=40, progress=False)

    def facts(study: selftune.Study) -> list[tuple]:
        return [(t.state, dict(t.params), dict(t.intermediate)) for t in study.trials]

    assert facts(again) == facts(straight)


@pytest.mark.slow
def test_two_workers_share_paused_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    selftune.create_study("sync", storage=url, space=PROBLEM.space).close()
    trials = two_worker_processes(url, "sync", 54, "sync-sh")
    # the study-wide budget can be overshot by a trial when both workers start one at the same moment
    assert 54 <= len(trials) <= 55 and all(t.state.finished for t in trials)
    assert len({t.worker for t in trials}) == 2
    if len(trials) == 55:  # the extra trial is a cohort of its own, closed at the end: it runs to the end
        assert trials[54].last_step == 27 and trials[54].state is TrialState.COMPLETE
    for cohort in (trials[:27], trials[27:54]):  # each cohort halves exactly, whoever ran which trial
        assert collections.Counter(t.last_step for t in cohort) == {1: 18, 3: 6, 9: 2, 27: 1}
        assert all(list(t.intermediate) == list(range(1, t.last_step + 1)) for t in cohort)
