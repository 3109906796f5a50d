"""The runnable examples run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import selftune

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_mlp_asha_example(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SELFTUNE_EXAMPLE_TRIALS": "12"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "mlp_asha.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "best validation error" in out.stdout and "trials stopped early" in out.stdout
    study = selftune.load_study("digits-mlp-asha", storage=f"sqlite:///{tmp_path / 'selftune.db'}")
    trials = study.trials
    assert len(trials) == 12
    assert any(t.state is selftune.TrialState.STOPPED for t in trials)
    assert study.best_value < 0.2  # a few trials on digits already do much better than chance (0.9)


def test_pbt_digits_example(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SELFTUNE_EXAMPLE_EPOCHS": "8", "SELFTUNE_EXAMPLE_POPULATION": "4",
           "SELFTUNE_EXAMPLE_TEST_SEEDS": "2"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "pbt_digits.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "its schedule" in out.stdout and "test error, the learned schedule:" in out.stdout
    assert "(95% CI, 2 test seeds)" in out.stdout
    study = selftune.load_study("digits-mlp-pbt", storage=f"sqlite:///{tmp_path / 'selftune.db'}")
    assert [t.state for t in study.trials] == [selftune.TrialState.COMPLETE] * 4
    assert any(t.lineage for t in study.trials)  # members exploited others
    assert study.best_value < 0.3
