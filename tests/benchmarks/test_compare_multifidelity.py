"""benchmarks/compare_multifidelity.py: the report, its cache, and the test-split reading."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import ModuleType

import pytest

from bench_scripts import load_benchmark_script

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_benchmark_script("compare_multifidelity")


def _args(tmp_path: Path, problem: str, *, max_steps: int, full_trials: int) -> list[str]:
    """One seed of ASHA + TPE and the full TPE search on ``problem``, results and report under ``tmp_path``."""
    return [
        "--problems", problem, "--max-steps", str(max_steps), "--full-trials", str(full_trials), "--seeds", "1",
        "--workers", "1", "--methods", "selftune-asha-tpe,selftune-full-tpe",
        "--results", str(tmp_path / "results"), "--report", str(tmp_path / "report.md"),
    ]  # fmt: skip


def test_a_pytorch_problem_gets_the_test_error_table_and_the_cache_reads_back(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(tmp_path, "digits-mlp", max_steps=3, full_trials=4)
    assert script.main(args) == 0
    first = (tmp_path / "report.md").read_text()
    assert "digits-mlp: 2 runs to do" in capsys.readouterr().out
    tables = first.split("The recommended network's test error")
    assert len(tables) == 2 and "steps to reach selftune-full-tpe's final test error" in tables[1]
    rows = re.findall(r"^\| (selftune-[a-z-]+) \| (0\.\d{4}|inf) \| (0\.\d{4}) \| .* of 1 \| (.*) \|$", tables[1], re.M)
    assert {m for m, _, _, _ in rows} == {"selftune-asha-tpe", "selftune-full-tpe"}
    assert all(interval == "n/a" for *_, interval in rows)  # one seed: no interval
    assert len(list((tmp_path / "results" / "digits-mlp").glob("*.json"))) == 2
    assert script.main(args) == 0  # every run cached: nothing is trained again, the same report
    assert "digits-mlp: 0 runs to do" in capsys.readouterr().out
    assert (tmp_path / "report.md").read_text() == first


def test_no_test_table_without_a_test_split(script: ModuleType, tmp_path: Path) -> None:
    args = _args(tmp_path, "synthetic-curves", max_steps=9, full_trials=5)
    assert script.main(args) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| selftune-asha-tpe |" in text and "test error" not in text


def test_the_paired_interval(script: ModuleType) -> None:
    assert script._interval([0.01, 0.03]) == "+0.0200 (-0.1071, +0.1471)"  # t(0.975, 1) = 12.706
    assert script._interval([0.01]) == "n/a" and script._interval([0.01, math.inf]) == "n/a"


def test_a_rerun_replaces_its_problem_section_and_keeps_the_rest(script: ModuleType) -> None:
    old = (
        "# Early stopping\n\nHand-written notes on how the runs were made.\n\n"
        "## digits-mlp: 5 seeds, old numbers\n\n| a | 1 |\n\n"
        "## digits-mlp (second run): 10 seeds\n\n| b | 2 |\n\n"
        "## synthetic-curves: 20 seeds\n\n| c | 3 |\n"
    )
    text = script._merge(old, ["## digits-mlp: 20 seeds, new numbers\n\n| a | 9 |\n"])
    assert text.startswith("# Early stopping\n\nHand-written notes on how the runs were made.\n\n## ")
    assert "old numbers" not in text and "| a | 9 |" in text
    assert "| b | 2 |" in text and "| c | 3 |" in text  # other runs and problems are kept, in their order
    assert text.index("| a | 9 |") < text.index("| b | 2 |") < text.index("| c | 3 |")
    assert script._merge(text, ["## cnn: 1 seed\n"]).endswith("| c | 3 |\n\n## cnn: 1 seed\n")  # a new one last
    for fresh in ("", "## x: 1 seed, old\n"):  # a new report, or one without a header, gets the header
        assert script._merge(fresh, ["## x: 1 seed\n"]) == script.HEADER + "## x: 1 seed\n"
