"""benchmarks/diagnose_multifidelity.py on the synthetic curves: the oracle's facts are consistent."""

from __future__ import annotations

from types import ModuleType

import pytest

from bench_scripts import load_benchmark_script
from selftune.benchmarks.curves import _trial_seed, get_curve_problem


def load_script() -> ModuleType:
    return load_benchmark_script("diagnose_multifidelity")


@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_is_consistent(seed: int) -> None:
    script = load_script()
    problem = get_curve_problem("synthetic-curves", 27)
    r = script.diagnose(problem, seed, "tpe", 8)
    assert r["seed"] == seed and r["tried"] >= r["complete"] >= 1
    # the recommendation is one of the configurations tried, so the oracle over them is at least as good
    assert r["oracle"] <= r["recommended"]
    assert (r["case"] == "reached") == (r["recommended"] <= r["target"])
    if r["case"] != "reached":
        assert (r["winners"] == 0) == (r["case"] == "none tried")
        assert (r["oracle"] <= r["target"]) == (r["winners"] > 0)
    assert set(r["rho"]) == {1, 3, 9}
    assert all(-1.0 <= v <= 1.0 for v in r["rho"].values() if v == v)


def test_a_stopped_trial_retrains_to_the_same_curve() -> None:
    """The oracle's premise: a stopped configuration retrained with its trial seed repeats the curve it reported."""
    import selftune
    from selftune.schedulers import ASHAScheduler

    script = load_script()
    problem = get_curve_problem("synthetic-curves", 27)
    asha = ASHAScheduler(min_resource=1, max_resource=27, reduction_factor=3)
    ended = script._run(problem, 4, 27 * 6, selftune.TPESampler(seed=4), asha)
    stopped = [t for t in ended if not t.complete]
    assert stopped and all(t.last_step < 27 for t in stopped)
    for t in stopped[:5]:
        curve: dict[int, float] = {}

        problem.run(
            t.params,
            lambda step, value, c=curve: c.__setitem__(step, value) or False,
            _trial_seed(4, t.number),
        )
        assert len(curve) == 27
        assert {s: curve[s] for s in t.curve} == t.curve
    spent = [t.spent for t in ended]
    assert spent == sorted(spent) and spent[-1] >= 27 * 6
