"""``selftune report``: one self-contained HTML file, written atomically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from dashboard_helpers import add_trials, fill, make_pbt_study
from plotly.offline import get_plotlyjs

import selftune
from selftune import _export
from selftune.analysis.panels import PANELS, PBT_PANELS
from selftune.analysis.report import report_html, write_report
from selftune.cli import cli

HOSTILE = "<script>alert('x')</script>&\"study\""


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An SQLite storage with study 'alpha' (20 trials with curves, some FAILED) and a hostile name."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    with selftune.create_study("alpha", storage=url, sampler=selftune.RandomSampler(seed=0)) as study:
        fill(study, 20)
    with selftune.create_study(HOSTILE, storage=url) as hostile:
        add_trials(hostile.storage, HOSTILE, 5)
    return url


def test_cli_writes_a_self_contained_report(db: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "alpha", "-o", str(out), "--storage", db])
    assert result.exit_code == 0, result.output
    assert "wrote the report of study 'alpha' (20 trial(s))" in result.output
    html = out.read_text(encoding="utf-8")
    assert get_plotlyjs() in html  # Plotly inlined, as shipped with the plotly package
    assert not re.search(r"<script[^>]+src=", html)  # no script fetched from anywhere
    assert not re.search(r"""<(link|img|iframe)[^>]+(href|src)=["']?(https?:)?//""", html)
    for key in PANELS:
        assert f'id="panel-{key}"' in html
    for key in PBT_PANELS:  # not a PBT study
        assert f'id="panel-{key}"' not in html
    with selftune.load_study("alpha", storage=db) as study:
        best = study.best
    assert f"Best trial: {best.number}" in html and repr(best.value) in html
    assert "FAILED" in html and "diverged" in html
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_report_escapes_what_comes_from_the_study(db: str) -> None:
    with selftune.load_study(HOSTILE, storage=db) as study:
        html = report_html(study)
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;study&quot;" in html
    assert "<script>alert" not in html


def test_report_of_an_empty_study(tmp_path: Path) -> None:
    with selftune.create_study("empty", storage="memory") as study:
        html = report_html(study)
    assert "no COMPLETE trial yet" in html and "no trials yet" in html


def test_report_replaces_the_file_atomically(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.html"
    out.write_text("old report")
    with selftune.load_study("alpha", storage=db) as study:
        write_report(study, out)
        assert out.read_text().startswith("<!doctype html>")
        out.write_text("old report")
        def broken_fsync(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(_export.os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="No space left"):
            write_report(study, out)
    assert out.read_text() == "old report"  # the old file is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


def test_cli_report_errors(db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["report", "nope", "-o", str(tmp_path / "r.html"), "--storage", db])
    assert missing.exit_code == 1 and "error:" in missing.output and "nope" in missing.output
    nowhere = runner.invoke(cli, ["report", "alpha", "-o", str(tmp_path / "no" / "dir" / "r.html"), "--storage", db])
    assert nowhere.exit_code == 1 and "cannot write" in nowhere.output


def test_report_of_a_pbt_study_shows_lineage_and_schedule(tmp_path: Path) -> None:
    with make_pbt_study("pop", "memory") as study:
        html = report_html(study)
        best = study.best
    for key in [*PANELS, *PBT_PANELS]:
        assert f'id="panel-{key}"' in html
    assert "Population lineage" in html and "took over trial" in html
    assert f"Schedule of trial {best.number} (the best member)" in html
