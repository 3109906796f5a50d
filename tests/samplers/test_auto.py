"""The default sampler's rules: Sobol start, GP for small budgets, then TPE or CMA-ES."""

from __future__ import annotations

import numpy as np

import selftune
from selftune import AutoSampler, Choice, Float, Int, Space
from selftune.history import History
from selftune.trial import TrialRecord, TrialState


def _history(space: Space, n: int, values: list[float] | None = None) -> History:
    """``n`` complete trials at random points; their values improve steadily unless ``values`` are given."""
    rng = np.random.default_rng(0)
    vals = values if values is not None else [1.0 / (i + 1) for i in range(n)]
    recs = []
    for i in range(n):
        p = space.decode(rng.random(len(space)))
        recs.append(TrialRecord(number=i, state=TrialState.COMPLETE, params=p, value=float(vals[i])))
    return History(recs, params=dict(space))


NUMERIC = Space({"x": Float(0, 1), "y": Float(-1, 1), "k": Int(1, 9)})
TREE = Space({"opt": Choice(["a", "b"]), "m": Float(0, 1, when={"opt": "b"}), "x": Float(0, 1)})


def test_rules_by_budget_and_types() -> None:
    auto = AutoSampler(seed=0, gp_max_trials=50)
    assert auto.choose(_history(NUMERIC, 0), NUMERIC) == "gp"  # the GP starts with its own Sobol points
    assert auto.choose(_history(NUMERIC, 49), NUMERIC) == "gp"
    assert auto.choose(_history(NUMERIC, 50), NUMERIC) == "cmaes"
    assert auto.choose(_history(TREE, 50), TREE) == "tpe"


def test_a_stagnant_gp_hands_over_to_tpe_until_the_best_improves() -> None:
    """With no gain of 1% of the median-to-best gap in the last max(10, 2 d) trials, the GP is polishing
    one basin: TPE proposes until a trial improves on the best again, then the GP takes over."""
    auto = AutoSampler(seed=0)
    w = 10  # max(10, 2 * 3)
    improving = [10.0 - i for i in range(30)]
    assert auto.choose(_history(NUMERIC, 30, improving), NUMERIC) == "gp"
    flat = improving[:20] + [-9.0 + 0.001 * k for k in range(w)]  # best -9 reached; only worse since
    assert auto.choose(_history(NUMERIC, 30, flat), NUMERIC) == "tpe"
    polishing = improving[:20] + [-9.0 - 0.001 * (k + 1) for k in range(w)]  # gains of 0.01 in a gap of ~14
    assert auto.choose(_history(NUMERIC, 30, polishing), NUMERIC) == "tpe"
    found = flat + [-12.0]  # a better basin: the GP again
    assert auto.choose(_history(NUMERIC, 31, found), NUMERIC) == "gp"
    assert AutoSampler(seed=0, stagnation=False).choose(_history(NUMERIC, 30, flat), NUMERIC) == "gp"
    # too few trials to judge: the GP
    assert auto.choose(_history(NUMERIC, 19, flat[:19]), NUMERIC) == "gp"


def test_the_handover_alternates_while_nothing_improves() -> None:
    """TPE gets at most max(10, 2 d) trials at a time: if they bring no gain the GP gets as many again (on
    ill-conditioned functions it resumes its slow progress), then TPE, and so on; a TPE trial that improves
    on the best hands back to the GP at once. Replayed from the history, so a resumed study decides alike."""
    auto = AutoSampler(seed=0)
    w = 10
    flat = [10.0 - i for i in range(20)] + [-9.0 + 0.001 * k for k in range(w)]

    def choices(values: list[float], n: int, improve_at: int | None = None) -> str:
        out = ""
        for k in range(n):
            out += auto.choose(_history(NUMERIC, len(values), values), NUMERIC)[0]
            values = values + [-20.0 if k == improve_at else 5.0]
        return out

    assert choices(flat, 45) == "t" * w + "g" * w + "t" * w + "g" * w + "t" * 5
    # the 4th TPE trial finds a better basin: the GP polishes it for a window, then TPE again
    assert choices(flat, 30, improve_at=3) == "t" * 4 + "g" * w + "t" * w + "g" * 6


def test_define_by_run_conditional_goes_to_tpe() -> None:
    space = Space({"x": Float(0, 1), "m": Float(0, 1)})  # inferred: no conditions declared
    recs = [
        TrialRecord(number=i, state=TrialState.COMPLETE, params={"x": 0.5} if i % 2 else {"x": 0.5, "m": 0.1}, value=1.0)
        for i in range(60)
    ]
    assert AutoSampler(gp_max_trials=50).choose(History(recs, params=dict(space)), space) == "tpe"


def test_high_dimension_skips_gp() -> None:
    space = Space({f"x{i}": Float(0, 1) for i in range(40)})
    assert AutoSampler(seed=0).choose(_history(space, 5), space) == "sobol"
    assert AutoSampler(seed=0).choose(_history(space, 30), space) == "cmaes"


def test_default_finds_good_points_quickly() -> None:
    def branin(p: dict) -> float:
        x, y = p["x"], p["y"]
        return (y - 5.1 / (4 * np.pi**2) * x**2 + 5 / np.pi * x - 6) ** 2 + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x) + 10

    space = Space({"x": Float(-5, 10), "y": Float(0, 15)})
    bests = []
    for seed in range(3):
        study = selftune.create_study(storage="memory", space=space, sampler=AutoSampler(seed=seed))
        for _ in range(30):
            trial = study.ask()
            study.tell(trial, branin(trial.params))
        bests.append(study.best_value)
    assert np.median(bests) < 0.45  # the optimum is 0.398


def test_early_stopping_turns_to_tpe() -> None:
    """Once a scheduler stopped a trial, the default proposes with TPE (BOHB's pairing), not the GP."""
    hist = _history(NUMERIC, 12)
    stopped = TrialRecord(number=12, state=TrialState.STOPPED, params=hist.trials[0].params, value=None)
    with_stop = History([*hist.trials, stopped], params=dict(NUMERIC))
    assert AutoSampler(seed=0).choose(hist, NUMERIC) == "gp"
    assert AutoSampler(seed=0).choose(with_stop, NUMERIC) == "bohb"
    assert AutoSampler(seed=0, multi_fidelity=False).choose(with_stop, NUMERIC) == "gp"
    # end to end: ASHA with the default sampler proposes through TPE after the first stop
    from selftune.schedulers import ASHAScheduler

    auto = AutoSampler(seed=0)
    study = selftune.create_study(storage="memory", sampler=auto, scheduler=ASHAScheduler(max_resource=9))

    def objective(t: selftune.Trial) -> float:
        x = t.float("x", 0, 1)
        for step in range(1, 10):
            t.report((x - 0.3) ** 2 + 1 / step, step)
            if t.should_stop():
                raise selftune.StopTrial()
        return (x - 0.3) ** 2

    study.optimize(objective, trials=30, progress=False)
    assert any(t.state is TrialState.STOPPED for t in study.trials)
    assert "bohb" in auto._samplers
