"""The dashboard's JSON API, pages and security rules, through FastAPI's TestClient."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import plotly
import pytest
from dashboard_helpers import (
    PBT_STEPS,
    TOKEN,
    add_pbt_trials,
    add_trials,
    fill,
    make_client,
    pbt_objective,
    pbt_study,
    study_id,
)

import selftune
from selftune.analysis.panels import ALL_PANELS, PANELS
from selftune.dashboard import TOKEN_HEADER, create_app
from selftune.exceptions import MissingDependencyError
from selftune.storage import MemoryStorage, Storage


# -- reading -----------------------------------------------------------------------------------------------
def test_lists_studies_with_counts_and_best(client: Any, storage: Storage) -> None:
    doc = client.get("/api/studies").json()
    by_name = {s["name"]: s for s in doc["studies"]}
    assert set(by_name) == {"alpha", "empty"}
    alpha = by_name["alpha"]
    truth = {s.info.name: s for s in storage.list_studies()}["alpha"]
    assert alpha["counts"] == dict(truth.counts) and alpha["n_trials"] == 26
    assert alpha["counts"]["RUNNING"] == 1 and alpha["counts"].get("FAILED", 0) >= 1
    assert alpha["best_value"] == pytest.approx(truth.best_value)
    assert by_name["empty"]["n_trials"] == 0 and by_name["empty"]["direction"] == "maximize"


def test_study_summary_best_trial_and_params(client: Any, storage: Storage) -> None:
    sid = study_id(client, "alpha")
    doc = client.get(f"/api/studies/{sid}").json()
    with selftune.load_study("alpha", storage=storage) as study:
        best = study.best
    assert doc["name"] == "alpha" and doc["direction"] == "minimize" and doc["n_trials"] == 26
    assert doc["best"] == {"number": best.number, "value": best.value, "params": dict(best.params)}
    assert doc["params"] == ["x", "lr", "opt"]
    assert list(doc["panels"]) == list(PANELS)


def test_poll_without_change_is_304_and_new_trials_show(client: Any, storage: Storage) -> None:
    sid = study_id(client, "alpha")
    first = client.get(f"/api/studies/{sid}")
    etag = first.headers["etag"]
    again = client.get(f"/api/studies/{sid}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    with selftune.load_study("alpha", storage=storage, sampler=selftune.RandomSampler(seed=3)) as study:
        fill(study, 3)
    import time

    time.sleep(0.3)  # the view reads the storage at most every 0.25 s
    later = client.get(f"/api/studies/{sid}", headers={"If-None-Match": etag})
    assert later.status_code == 200
    assert later.json()["n_trials"] == first.json()["n_trials"] + 3
    assert later.json()["cursor"] > first.json()["cursor"] and later.headers["etag"] != etag


@pytest.mark.parametrize("kind", list(PANELS))
def test_every_panel_is_a_plotly_figure(client: Any, kind: str) -> None:
    sid = study_id(client, "alpha")
    res = client.get(f"/api/studies/{sid}/figures/{kind}")
    assert res.status_code == 200
    doc = res.json()
    assert doc["kind"] == kind and doc["cursor"] >= 1
    assert doc["figure"]["data"], f"{kind} has no trace"
    assert "layout" in doc["figure"]
    same = client.get(f"/api/studies/{sid}/figures/{kind}", headers={"If-None-Match": res.headers["etag"]})
    assert same.status_code == 304


def test_intermediate_panel_shows_stopped_trials(storage: Storage) -> None:
    selftune.create_study("curves", storage=storage)
    add_trials(storage, "curves", 40, curve=4)
    client = make_client(storage)
    fig = client.get(f"/api/studies/{study_id(client, 'curves')}/figures/intermediate").json()["figure"]
    assert {"COMPLETE", "STOPPED", "stopped here"} <= {t["name"] for t in fig["data"]}


def test_empty_study_figures_say_so(client: Any) -> None:
    sid = study_id(client, "empty")
    for kind in PANELS:
        fig = client.get(f"/api/studies/{sid}/figures/{kind}").json()["figure"]
        notes = [a["text"] for a in fig["layout"].get("annotations", [])]
        assert fig["data"] == [] and len(notes) == 1 and notes[0], (kind, notes)


def test_trial_table_pages_sorts_and_filters(client: Any) -> None:
    sid = study_id(client, "alpha")
    page = client.get(f"/api/studies/{sid}/trials", params={"offset": 10, "limit": 5}).json()
    assert page["total"] == 26 and [t["number"] for t in page["trials"]] == [10, 11, 12, 13, 14]
    desc = client.get(f"/api/studies/{sid}/trials", params={"limit": 3, "order": "desc"}).json()
    assert [t["number"] for t in desc["trials"]] == [25, 24, 23]
    by_value = client.get(f"/api/studies/{sid}/trials", params={"sort": "value", "limit": 500}).json()["trials"]
    values = [t["value"] for t in by_value if t["value"] is not None]
    assert values == sorted(values) and len(values) >= 20
    assert all(t["value"] is None for t in by_value[len(values):])  # no value: last
    failed = client.get(f"/api/studies/{sid}/trials", params={"state": "FAILED"}).json()
    assert failed["total"] >= 1 and {t["state"] for t in failed["trials"]} == {"FAILED"}
    assert failed["trials"][0]["reason"].startswith("ValueError")


@pytest.mark.parametrize("query", [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"sort": "params"},
                                   {"order": "up"}, {"state": "DONE"}])
def test_trial_table_refuses_bad_queries(client: Any, query: dict[str, Any]) -> None:
    sid = study_id(client, "alpha")
    res = client.get(f"/api/studies/{sid}/trials", params=query)
    assert res.status_code == 422


def test_trial_detail(client: Any, storage: Storage) -> None:
    sid = study_id(client, "alpha")
    with selftune.load_study("alpha", storage=storage) as study:
        best = study.best
        failed = next(t for t in study.trials if t.state.value == "FAILED")
    doc = client.get(f"/api/studies/{sid}/trials/{best.number}").json()
    t = doc["trial"]
    assert doc["study"]["name"] == "alpha"
    assert t["state"] == "COMPLETE" and t["value"] == best.value and t["params"] == dict(best.params)
    assert t["curve"] == {"steps": [1, 2, 3], "values": [best.intermediate[s] for s in (1, 2, 3)], "n_reports": 3}
    assert t["user_attrs"] == {"note": "<b>not html</b>"} and t["duration"] >= 0
    f = client.get(f"/api/studies/{sid}/trials/{failed.number}").json()["trial"]
    assert f["state"] == "FAILED" and "diverged" in f["reason"] and "ValueError" in f["traceback"]


def test_non_finite_values_are_valid_json(storage: Storage) -> None:
    study = selftune.create_study("inf", storage=storage)
    trial = study.ask()
    trial.float("x", 0.0, 1.0)
    study.tell(trial, math.inf)
    client = make_client(storage)
    sid = study_id(client, "inf")
    rows = client.get(f"/api/studies/{sid}/trials").json()["trials"]
    assert rows[0]["value"] == "inf"
    assert client.get(f"/api/studies/{sid}/trials/0").json()["trial"]["value"] == "inf"
    study.close()


# -- big studies -------------------------------------------------------------------------------------------
def _points(fig: dict[str, Any]) -> int:
    """Points drawn by a figure: markers and line vertices, parallel-coordinate lines, bars."""
    total = 0
    for trace in fig["data"]:
        if trace.get("type") == "parcoords":
            total += len(trace["dimensions"][0]["values"])
        else:
            total += max(len(trace.get("x") or []), len(trace.get("y") or []))
    return total


def test_20k_trials_ship_bounded_figures_and_pages() -> None:
    storage = MemoryStorage()
    selftune.create_study("big", storage=storage)
    add_trials(storage, "big", 20_000, curve=3)
    client = make_client(storage, max_points=1000)
    sid = study_id(client, "big")
    assert client.get(f"/api/studies/{sid}").json()["n_trials"] == 20_000
    for kind in PANELS:
        res = client.get(f"/api/studies/{sid}/figures/{kind}")
        fig = res.json()["figure"]
        assert _points(fig) <= 6 * 1000, (kind, _points(fig))  # 20,000 trials, at most 6,000 points drawn
        assert len(res.content) < 2_000_000, kind
    history = client.get(f"/api/studies/{sid}/figures/history").json()["figure"]
    assert "downsampled" in history["layout"]["title"]["text"]
    page = client.get(f"/api/studies/{sid}/trials", params={"offset": 19_990, "limit": 500}).json()
    assert page["total"] == 20_000 and [t["number"] for t in page["trials"]] == list(range(19_990, 20_000))


# -- population based training -----------------------------------------------------------------------------
def test_pbt_panels_appear_once_the_study_has_lineage(client: Any, storage: Storage) -> None:
    import time

    study = pbt_study("pop", storage)
    sid = study_id(client, "pop")
    assert list(client.get(f"/api/studies/{sid}").json()["panels"]) == list(PANELS)  # nothing trained yet
    study.optimize(pbt_objective, trials=6, progress=False)
    time.sleep(0.3)  # the view reads the storage at most every 0.25 s
    doc = client.get(f"/api/studies/{sid}").json()
    assert list(doc["panels"]) == list(ALL_PANELS) == [*PANELS, "lineage", "schedule"]
    assert list(client.get(f"/api/studies/{study_id(client, 'alpha')}").json()["panels"]) == list(PANELS)

    lineage = client.get(f"/api/studies/{sid}/figures/lineage").json()
    assert lineage["cursor"] == doc["cursor"]
    curves = [t for t in lineage["figure"]["data"] if t["name"].startswith("trial ")]
    (exploits,) = [t for t in lineage["figure"]["data"] if t["name"] == "exploits"]
    trials = study.trials
    n_exploits = sum(1 for r in trials for e in r.lineage if e.source != r.number)
    assert sorted(t["name"] for t in curves) == [f"trial {r.number}" for r in trials]
    assert n_exploits >= 1 and exploits["x"].count(None) == n_exploits
    assert exploits["text"][0].startswith("trial ") and "took over trial" in exploits["text"][0]

    best = study.best
    schedule = client.get(f"/api/studies/{sid}/figures/schedule").json()["figure"]
    (line,) = schedule["data"]
    assert f"trial {best.number} (the best member)" in schedule["layout"]["title"]["text"]
    assert line["x"] == [s for s, _ in best.schedule] + [PBT_STEPS - 1]
    assert line["y"][:-1] == [p["h"] for _, p in best.schedule]
    study.close()


def test_pbt_panels_follow_new_members(storage: Storage) -> None:
    import time

    selftune.create_study("grow", storage=storage, direction="maximize")
    add_pbt_trials(storage, "grow", 3, 8)
    client = make_client(storage)
    sid = study_id(client, "grow")
    first = client.get(f"/api/studies/{sid}/figures/lineage")
    assert len(first.json()["figure"]["data"]) == 4  # 3 curves and the exploits
    add_pbt_trials(storage, "grow", 2, 8)
    deadline = time.monotonic() + 10.0  # the server re-reads the storage on its own poll; a loaded CI is slow
    while True:
        time.sleep(0.3)
        later = client.get(f"/api/studies/{sid}/figures/lineage", headers={"If-None-Match": first.headers["etag"]})
        if later.status_code != 304 or time.monotonic() > deadline:
            break
    assert later.status_code == 200 and later.json()["cursor"] > first.json()["cursor"]
    assert len([t for t in later.json()["figure"]["data"] if t["name"].startswith("trial ")]) == 5


def test_big_pbt_population_ships_bounded_lineage() -> None:
    storage = MemoryStorage()
    selftune.create_study("pop", storage=storage, direction="maximize")
    add_pbt_trials(storage, "pop", 120, 60)
    client = make_client(storage, max_points=200)  # lineage: 10 members of at most 10 reports, 200 exploits
    sid = study_id(client, "pop")
    assert list(client.get(f"/api/studies/{sid}").json()["panels"]) == list(ALL_PANELS)
    fig = client.get(f"/api/studies/{sid}/figures/lineage").json()["figure"]
    curves = [t for t in fig["data"] if t["name"].startswith("trial ")]
    assert len(curves) == 10 and all(len(t["x"]) <= 10 for t in curves)
    assert "10 of 120 members shown" in fig["layout"]["title"]["text"]
    with selftune.load_study("pop", storage=storage) as study:
        best = study.best.number
    shown = {int(t["name"].split()[1]) for t in curves}
    assert {best, best - 1} <= shown  # the best member and the member it copied
    assert _points(fig) <= 10 * 10 + 3 * 200


# -- errors ------------------------------------------------------------------------------------------------
def test_unknown_study_is_404_with_a_clear_message(client: Any) -> None:
    for path in ("/api/studies/999", "/api/studies/999/figures/history", "/api/studies/999/trials",
                 "/api/studies/999/trials/0"):
        res = client.get(path)
        assert res.status_code == 404, path
        assert res.json()["detail"].startswith("no study with id 999 in memory"), res.json()


def test_unknown_trial_and_panel_are_404(client: Any) -> None:
    sid = study_id(client, "alpha")
    res = client.get(f"/api/studies/{sid}/trials/12345")
    assert res.status_code == 404 and res.json()["detail"] == "study 'alpha' has no trial 12345"
    res = client.get(f"/api/studies/{sid}/figures/contour")
    assert res.status_code == 404 and "expected one of" in res.json()["detail"]


def test_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'selftune[dashboard]'")):
        create_app(MemoryStorage())


# -- writes and the token ----------------------------------------------------------------------------------
def test_read_only_without_token(client: Any) -> None:
    sid = study_id(client, "alpha")
    for method, path, body in (("DELETE", f"/api/studies/{sid}", None),
                               ("PUT", f"/api/studies/{sid}/note", {"note": "hi"})):
        res = client.request(method, path, json=body, headers={TOKEN_HEADER: "anything"})
        assert res.status_code == 403, (method, path)
        assert "read-only" in res.json()["detail"]
    assert client.get(f"/api/studies/{sid}").status_code == 200  # still there
    assert client.get("/api/config").json()["writable"] is False


def test_writes_need_the_right_token(storage: Storage) -> None:
    client = make_client(storage, token=TOKEN)
    assert client.get("/api/config").json()["writable"] is True
    sid = study_id(client, "alpha")
    for headers in ({}, {TOKEN_HEADER: "wrong"}, {TOKEN_HEADER: TOKEN + "x"}):
        res = client.put(f"/api/studies/{sid}/note", json={"note": "hi"}, headers=headers)
        assert res.status_code == 403 and TOKEN_HEADER in res.json()["detail"]
        assert client.delete(f"/api/studies/{sid}", headers=headers).status_code == 403
    res = client.put(f"/api/studies/{sid}/note", json={"note": "baseline run"}, headers={TOKEN_HEADER: TOKEN})
    assert res.status_code == 200
    assert storage.get_study("alpha").user_attrs["note"] == "baseline run"
    assert client.get(f"/api/studies/{sid}").json()["note"] == "baseline run"
    assert client.put(f"/api/studies/{sid}/note", json={"note": 5}, headers={TOKEN_HEADER: TOKEN}).status_code == 422
    assert client.delete(f"/api/studies/{sid}", headers={TOKEN_HEADER: TOKEN}).status_code == 200
    assert [s.info.name for s in storage.list_studies()] == ["empty"]
    assert client.get(f"/api/studies/{sid}").status_code == 404


# -- pages, static files, security headers -----------------------------------------------------------------
def test_pages_are_one_static_shell_without_inline_script(client: Any) -> None:
    sid = study_id(client, "alpha")
    pages = [client.get(p) for p in ("/", f"/studies/{sid}", f"/studies/{sid}/trials/3")]
    assert all(p.status_code == 200 and p.headers["content-type"].startswith("text/html") for p in pages)
    html = pages[0].text
    assert pages[1].text == html == pages[2].text  # nothing from the storage is put into the HTML
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all('src="/static/' in s for s in scripts)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no external resource


def test_plotly_is_served_from_the_installed_package(client: Any) -> None:
    bundled = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    res = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert res.status_code == 200 and res.content == bundled
    zipped = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == bundled  # httpx unzips
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/%2e%2e%2f__init__.py").status_code == 404


def test_security_headers_on_every_response(client: Any) -> None:
    for path in ("/", "/api/studies", "/api/studies/999"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split(
            "script-src")[1].split(";")[0]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in client.get("/api/studies").headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", ""])
def test_foreign_host_header_is_refused(client: Any, host: str) -> None:
    res = client.get("/api/studies", headers={"Host": host})
    assert res.status_code == 400 and "not allowed" in res.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"])
def test_loopback_host_headers_are_served(client: Any, host: str) -> None:
    assert client.get("/api/studies", headers={"Host": host}).status_code == 200


def test_allowed_hosts_can_be_extended(storage: Storage) -> None:
    client = make_client(storage, allowed_hosts=("127.0.0.1", "tuning.lan"))
    assert client.get("/api/studies", headers={"Host": "tuning.lan:8080"}).status_code == 200
    assert client.get("/api/studies", headers={"Host": "other.lan"}).status_code == 400


def test_hostile_study_names_round_trip_as_data(storage: Storage) -> None:
    name = "<script>alert('x')</script> \"quoted\" ünïcödé ✓ " + "n" * 300
    selftune.create_study(name, storage=storage).close()
    client = make_client(storage)
    sid = study_id(client, name)
    assert client.get(f"/api/studies/{sid}").json()["name"] == name
    assert json.loads(client.get("/api/studies").content)  # valid JSON, the name as a string


def test_dashboard_binds_loopback_by_default() -> None:
    import inspect

    from selftune.cli import cli
    from selftune.dashboard import serve

    options = {p.name: p for p in cli.commands["dashboard"].params}
    assert options["host"].default == "127.0.0.1" and options["token"].default is None
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(create_app).parameters["token"].default is None


def test_an_empty_token_is_refused() -> None:
    from selftune.exceptions import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="token"):
        create_app(MemoryStorage(), token="  ")


def test_cli_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from selftune.cli import cli

    url = f"sqlite:///{tmp_path / 's.db'}"
    selftune.create_study("s", storage=url).close()
    monkeypatch.setitem(sys.modules, "fastapi", None)
    result = CliRunner().invoke(cli, ["dashboard", "--storage", url, "--port", "0"])
    assert result.exit_code == 1 and "pip install 'selftune[dashboard]'" in result.output
