"""End to end in a real browser: Debian's Chromium driven by Playwright, against ``selftune dashboard``.

A study keeps running in a background thread (SQLite, new trials every few tenths of a second) while the
dashboard runs as its own process, started by the real command line on a free port. The browser lists the
study, opens it, watches new trials arrive without a reload, opens one trial, then opens a population based
training study and sees its lineage and schedule, and saves screenshots.

Skipped only where /usr/bin/chromium is missing and ``SELFTUNE_REQUIRE_BROWSER`` is unset (CI sets it, so
there a missing browser fails rather than skips).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import make_pbt_study, objective

import selftune

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STUDY = "live-e2e"
PBT_STUDY = "pbt-e2e"


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("SELFTUNE_REQUIRE_BROWSER"):
        pytest.fail(f"SELFTUNE_REQUIRE_BROWSER is set but there is no browser at {CHROMIUM}")
    pytest.skip(f"no browser at {CHROMIUM} (set SELFTUNE_REQUIRE_BROWSER=1 to make this an error)")


@pytest.fixture
def running_study(tmp_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """An SQLite study with 8 trials, and a thread that adds one every 0.2 s until the test ends; beside it, a
    finished population based training study of 6 members."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    stop = threading.Event()
    errors: list[BaseException] = []
    make_pbt_study(PBT_STUDY, url).close()
    with selftune.create_study(STUDY, storage=url, sampler=selftune.RandomSampler(seed=0)) as study:
        study.optimize(objective, trials=8, progress=False, catch=ValueError)

    def work() -> None:
        try:
            with selftune.load_study(STUDY, storage=url, sampler=selftune.RandomSampler(seed=1)) as s:
                while not stop.wait(0.2):
                    s.optimize(objective, trials=len(s.trials) + 1, progress=False, catch=ValueError)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=work, name="study-writer", daemon=True)
    thread.start()
    yield url, stop
    stop.set()
    thread.join(30)
    assert not errors, errors


@pytest.fixture
def dashboard(running_study: tuple[str, threading.Event]) -> Iterator[str]:
    """``selftune dashboard`` on a free port (its default host); yields the address it prints."""
    url, _ = running_study
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SELFTUNE_DASHBOARD_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "selftune", "dashboard", "--storage", url, "--port", "0", "--refresh", "0.5"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the address is printed once the socket listens
            seen.append(line)
            found = re.search(r"at (http://\S+/) \(read-only\)", line)
            if found:
                break
        else:
            pytest.fail(f"the dashboard exited with {proc.wait()} without an address: {''.join(seen)!r}")
        yield found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _count(page: Any) -> int:
    return int(page.text_content("#n-trials"))


def test_live_study_in_a_real_browser(dashboard: str, tmp_path: Path) -> None:
    _need_browser()
    from playwright.sync_api import sync_playwright

    assert dashboard.startswith("http://127.0.0.1:")  # the default bind address
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.set_default_timeout(30_000)

            # the list of studies
            page.goto(dashboard)
            row = page.locator(f"tr[data-study='{STUDY}']")
            row.wait_for()
            page.screenshot(path=str(tmp_path / "1-studies.png"), full_page=True)

            # the study: counts, table, every figure drawn
            row.locator("a").click()
            page.wait_for_url(re.compile(r"/studies/\d+$"))
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator(".panel.rendered").count() == 6
            assert page.locator("#panel-lineage").count() == 0  # not a PBT study: no lineage panel
            assert page.locator("#panel-history .point").count() > 0  # markers drawn by Plotly
            before = _count(page)
            assert before >= 8 and page.locator("#trials tr").count() >= 8
            newest = int(page.locator("#trials tr").nth(0).get_attribute("data-number") or -1)
            assert newest >= 7  # newest first
            page.evaluate("window.__sameDocument = true")

            # new trials arrive without a reload: the count, the table and the history plot follow
            page.wait_for_function(f"Number(document.querySelector('#n-trials').textContent) >= {before + 3}")
            assert page.evaluate("window.__sameDocument === true")  # no navigation happened
            page.wait_for_function(  # the table follows too: a newer trial on top (50 rows a page)
                f"Number(document.querySelector('#trials tr').dataset.number) >= {newest + 3}"
            )
            page.wait_for_function(
                "Number(document.querySelector('#panel-history').dataset.cursor) >= "
                "Number(document.querySelector('#trials').dataset.cursor)"
            )
            page.screenshot(path=str(tmp_path / "2-study.png"), full_page=True)

            # one trial: its parameters, value and curve
            number = page.locator("#trials tr").nth(0).get_attribute("data-number")
            page.locator(f"#trials tr[data-number='{number}'] a").click()  # the table may redraw meanwhile
            page.wait_for_selector("#trial-title")
            assert page.text_content("#trial-title") == f"Trial {number}"
            body = page.text_content("main") or ""
            assert "Parameters" in body and "lr" in body and "opt" in body and "null" not in body
            page.wait_for_selector("#curve.rendered")
            page.screenshot(path=str(tmp_path / "3-trial.png"), full_page=True)

            # a population based training study: its lineage and the best member's schedule too
            page.goto(dashboard)
            page.locator(f"tr[data-study='{PBT_STUDY}'] a").click()
            page.wait_for_url(re.compile(r"/studies/\d+$"))
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator(".panel.rendered").count() == 8
            lineage = page.locator("#panel-lineage.rendered")
            assert "Population lineage" in (lineage.text_content() or "")
            assert lineage.locator(".scatterlayer .trace").count() == 7  # 6 members and the exploits
            schedule = page.locator("#panel-schedule.rendered")
            assert "(the best member)" in (schedule.text_content() or "")
            assert schedule.locator(".scatterlayer .trace .point").count() >= 2  # the schedule's steps
            page.screenshot(path=str(tmp_path / "4-pbt.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    for name in ("1-studies.png", "2-study.png", "3-trial.png", "4-pbt.png"):
        assert (tmp_path / name).stat().st_size > 10_000
