"""benchmarks/throughput.py --quick on SQLite with 1 and 2 workers, no Ray: it runs and writes its tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"
ROWS = ("selftune (worker processes)", "Optuna, threads (`n_jobs=k`)", "Optuna, k processes")


def _row(text: str, heading: str, label: str) -> list[str]:
    """The cells of the row ``label`` in the table under ``heading``."""
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    for line in section.splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip().strip("|").split("|")[1:]]
    raise AssertionError(f"no row {label!r} under {heading!r}:\n{section}")


def test_quick_run_writes_the_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--storages", "sqlite", "--workers", "1", "2", "--no-ray",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\n## Other\n\nkept\n")  # the rest of the file is left alone
    assert text.count("## Throughput") == 1 and "### PostgreSQL" not in text
    assert "--quick --storages sqlite --workers 1 2 --no-ray" in text and str(out) not in text
    for heading in ("### SQLite, trivial objective", "### SQLite, sleep objective"):
        header = text.split(heading, 1)[1].split("\n")[2]
        assert header == "| | 1 worker | 2 workers |"
        for label in ROWS:
            cells = _row(text, heading, label)
            assert len(cells) == 2 and all(c not in ("error", "not run") for c in cells), (label, cells)
            steady, total = cells[0].split(" (")[0].split(" / ")
            assert float(total) > 0
        assert len(_row(text, heading, "selftune / Optuna, threads (`n_jobs=k`)")) == 2
        assert "Ray Tune" not in text.split(heading, 1)[1].split("\n### ", 1)[0]
    sleep = _row(text, "### SQLite, sleep objective", ROWS[0])
    assert all("%" in c for c in sleep)  # the fraction of the ideal k / 0.1 s
    growth = text.split("### Per-trial cost as the study grows", 1)[1]
    assert "| SQLite | selftune |" in growth and "| SQLite | Optuna |" in growth
    assert "### The issue's goals, as measured in this run" in text
    assert "No growth in per-trial cost from 50 to 150 trials (SQLite)" in text

    # a second run replaces the section instead of appending one
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--storages", "sqlite", "--workers", "1", "--no-ray", "--no-optuna",
         "--no-growth", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = out.read_text()
    assert again.count("## Throughput") == 1 and again.startswith("# Benchmarks\n\n## Other\n\nkept\n")
    assert "Optuna, threads" not in again.split("## Throughput")[1].split("### SQLite, trivial", 1)[1]
