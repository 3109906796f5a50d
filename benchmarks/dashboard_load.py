"""Dashboard load time at 1k, 10k and 100k trials: selftune's dashboard and optuna-dashboard side by side.

For each size, one SQLite study of identical trials is written for each library (straight through its storage
API; 4 parameters, one trial in 10 reports a 5-step curve, 5% STOPPED/PRUNED, 2% FAILED), cached under
``--cache`` and reused on later runs. Then each dashboard is started as its own process (``selftune dashboard``,
``optuna-dashboard``) and measured:

* in headless Chromium (``/usr/bin/chromium`` through Playwright, viewport 1400x1000), on the study's page,
  times from navigation start (``performance.timeOrigin``) until

  - ``history``: the optimisation-history plot shows its points (``.point`` markers in it: selftune first
    draws them in a light SVG preview, before Plotly's bundle has loaded, then Plotly redraws the figure;
    ``history (Plotly)``, given in a note, times Plotly's own markers);
  - ``all plots``: every plot on the page is drawn (selftune: its six panels, each ``Plotly.react`` resolved;
    optuna-dashboard: its four plots, history, importance, timeline and intermediate values, each with a
    drawn trace);
  - ``table`` (selftune only): the counts and the first page of the trial table are shown;

  each with a **cold browser** (a new browser context: empty cache) and a **warm browser** (the same page
  loaded again: Plotly's bundle from the HTTP cache). The server has finished its start-up work (selftune:
  ``/api/config`` says ``preloaded``); the first load right after the server starts is reported on its own
  (**just started**);
* the JSON API with httpx (median of ``--api-repeat`` requests after one warm-up request).

    python benchmarks/dashboard_load.py                    # 1k, 10k, 100k; writes docs/benchmarks.md
    python benchmarks/dashboard_load.py --sizes 1000 --no-docs --no-optuna   # smoke run

Filling the 100k studies takes a few minutes (once; Optuna's above 10k trials by bulk INSERTs, read back and
checked through Optuna's API, because its API takes about 8 ms a trial).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import importlib.metadata as md  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Dashboard load time"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
CHOICES = ["adam", "sgd", "rmsprop"]
FILL_REVISION = 1  # bump when the trial data changes: cached databases are rebuilt


# -- the trials -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    params: dict[str, Any]
    state: str  # COMPLETE | STOPPED | FAILED
    value: float | None
    curve: dict[int, float]


def rows(n: int, seed: int = 0) -> Iterator[Row]:
    """The same ``n`` trials for both libraries."""
    rng = random.Random(seed)
    for i in range(n):
        p = {"lr": 10 ** rng.uniform(-5, 0), "x": rng.uniform(-5, 5), "layers": rng.randint(1, 8),
             "opt": rng.choice(CHOICES)}
        base = (math.log10(p["lr"]) + 2.5) ** 2 + 0.1 * p["x"] ** 2 + 0.05 * p["layers"] + (p["opt"] == "sgd")
        curve = {s: base + 1.0 / s for s in range(1, 6)} if i % 10 == 0 else {}
        if i % 20 == 0:
            yield Row(p, "STOPPED", base + 0.2, curve)
        elif i % 50 == 7:
            yield Row(p, "FAILED", None, curve)
        else:
            yield Row(p, "COMPLETE", base + rng.gauss(0, 0.1), curve)


def study_name(n: int) -> str:
    return f"bench-{n}"


def fill_selftune(path: Path, n: int) -> None:
    from selftune.storage import get_storage
    from selftune.trial import TrialState

    st = get_storage(f"sqlite:///{path}")
    info = st.create_study(study_name(n), "minimize", None)
    for name, spec in (("lr", {"kind": "float", "low": 1e-5, "high": 1.0, "log": True}),
                       ("x", {"kind": "float", "low": -5.0, "high": 5.0}),
                       ("layers", {"kind": "int", "low": 1, "high": 8}),
                       ("opt", {"kind": "choice", "choices": CHOICES})):
        st.define_param(info.id, name, spec)
    for i, row in enumerate(rows(n)):
        r = st.start_trial(info.id, f"worker-{i % 4}", row.params, claim=False)
        for step, v in row.curve.items():
            st.report(info.id, r.number, step, v)
        reason = {"STOPPED": "asha: rung 1", "FAILED": "diverged"}.get(row.state)
        st.finish_trial(info.id, r.number, TrialState(row.state), row.value, reason=reason)
    st.close()


def fill_optuna(path: Path, n: int) -> None:
    """Optuna's study through its storage API (``create_new_trial``, about 8 ms a trial here), except above
    ``BULK_ABOVE`` trials: then the first trial goes through the API and the rest are bulk-inserted into the
    tables Optuna created, in the form its API writes them, and every trial is read back through Optuna's API
    and checked."""
    import optuna
    import sqlalchemy as sa
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import FrozenTrial, TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")

    @sa.event.listens_for(storage.engine, "connect")
    def _fast(conn: Any, _record: Any) -> None:  # only while filling: no fsync per commit
        conn.execute("PRAGMA synchronous=OFF")

    storage.engine.dispose()
    sid = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], study_name(n))
    dists = {"lr": FloatDistribution(1e-5, 1.0, log=True), "x": FloatDistribution(-5, 5),
             "layers": IntDistribution(1, 8), "opt": CategoricalDistribution(CHOICES)}
    states = {"COMPLETE": TrialState.COMPLETE, "STOPPED": TrialState.PRUNED, "FAILED": TrialState.FAIL}
    data = list(rows(n))
    api = data if n <= BULK_ABOVE else data[:1]
    for i, row in enumerate(api):
        now = dt.datetime.now()
        storage.create_new_trial(sid, template_trial=FrozenTrial(
            number=i, state=states[row.state], value=row.value, datetime_start=now, datetime_complete=now,
            params=row.params, distributions=dists, user_attrs={}, system_attrs={},
            intermediate_values=row.curve, trial_id=i,
        ))
    if len(api) < n:
        _bulk_optuna(path, sid, data, len(api), dists, {k: v.name for k, v in states.items()})
        study = optuna.load_study(study_name=study_name(n), storage=storage)
        got = study.get_trials(deepcopy=False)
        assert len(got) == n, len(got)
        for t, row in zip(got, data, strict=True):
            assert (t.state, t.value, t.params, t.intermediate_values) == (
                states[row.state], row.value, row.params, row.curve), (t.number, t, row)
    storage.engine.dispose()


BULK_ABOVE = 10_000


def _bulk_optuna(path: Path, sid: int, data: list[Row], start: int, dists: dict[str, Any],
                 states: dict[str, str]) -> None:
    import sqlite3

    from optuna.distributions import distribution_to_json

    dist_json = {k: distribution_to_json(d) for k, d in dists.items()}
    con = sqlite3.connect(path)
    with con:
        first_id = con.execute("SELECT max(trial_id) FROM trials").fetchone()[0] + 1
        trials, params, values, curves = [], [], [], []
        for offset, row in enumerate(data[start:]):
            tid, number = first_id + offset, start + offset
            stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
            trials.append((tid, number, sid, states[row.state], stamp, stamp))
            params += [(tid, k, float(dists[k].to_internal_repr(v)), dist_json[k]) for k, v in row.params.items()]
            if row.value is not None:
                values.append((tid, 0, row.value, "FINITE"))
            curves += [(tid, step, v, "FINITE") for step, v in row.curve.items()]
        con.executemany("INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                        "VALUES (?, ?, ?, ?, ?, ?)", trials)
        con.executemany("INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                        "VALUES (?, ?, ?, ?)", params)
        con.executemany("INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, ?, ?, ?)",
                        values)
        con.executemany("INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, "
                        "intermediate_value_type) VALUES (?, ?, ?, ?)", curves)
    con.close()


def database(cache: Path, lib: str, n: int) -> Path:
    """The cached SQLite file of ``lib``'s study of ``n`` trials, written first if missing."""
    path = cache / f"{lib}-{n}-r{FILL_REVISION}.db"
    done = path.with_suffix(".done")
    if done.exists() and path.exists():
        return path
    for leftover in cache.glob(path.name + "*"):
        leftover.unlink()
    print(f"filling {path.name} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    (fill_selftune if lib == "selftune" else fill_optuna)(path, n)
    done.write_text(f"{time.monotonic() - start:.1f} s\n")
    return path


# -- servers ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(cmd: list[str], **kw: Any) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(cmd, text=True, **kw)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def selftune_server(db: Path) -> Iterator[tuple[str, float]]:
    """``selftune dashboard`` on a free port: (base URL, seconds from launch until it listens)."""
    start = time.monotonic()
    cmd = [sys.executable, "-m", "selftune", "dashboard", "--storage", f"sqlite:///{db}", "--port", "0"]
    with process(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"at (http://\S+/) ", line)
        if not found:
            raise RuntimeError(f"selftune dashboard did not start: {line!r}")
        yield found.group(1).rstrip("/"), time.monotonic() - start


def wait_until(fn: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(Exception):
            if fn():
                return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


@contextlib.contextmanager
def optuna_server(db: Path, timeout: float) -> Iterator[tuple[str, float]]:
    import httpx

    port = free_port()
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).parent / "optuna-dashboard")
    start = time.monotonic()
    cmd = [exe, f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)]
    with process(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{base}/api/studies", timeout=5).status_code == 200, timeout, "optuna-dashboard")
        yield base, time.monotonic() - start


# -- the browser ------------------------------------------------------------------------------------------
# predicates evaluated on every animation frame; each records the first time it held (ms since timeOrigin)
SELFTUNE_CHECKS = {
    "table": "document.body.dataset.firstView === '1'",
    # the points shown: first in the page's own SVG preview (drawn before Plotly's bundle has loaded), then
    # by Plotly; "history (Plotly)" times Plotly's markers alone
    "history": "document.querySelectorAll('#panel-history .point').length > 0",
    "history (Plotly)": "document.querySelectorAll('#panel-history .main-svg .point').length > 0",
    "all plots": "document.body.dataset.ready === '1'",
}
OPTUNA_PLOTS = ["plot-history", "graph-hyperparameter-importances", "graph-timeline", "graph-intermediate-values"]
OPTUNA_CHECKS = {
    "history": "document.querySelectorAll('#plot-history .point').length > 0",
    "all plots": " && ".join(
        f"(document.getElementById('{p}') || {{querySelectorAll: () => []}}).querySelectorAll('.trace').length > 0"
        for p in OPTUNA_PLOTS
    ),
}


def page_times(page: Any, url: str, checks: dict[str, str], timeout: float) -> dict[str, float]:
    """Load ``url`` and return, per check, ms from navigation start until it first held (NaN: timed out)."""
    if not getattr(page, "_bench_hooked", False):  # report the page's own errors: a number alone hides them
        page.on("pageerror", lambda exc: print(f"page error on {url}: {exc}", file=sys.stderr, flush=True))
        page._bench_hooked = True
    try:  # a server still busy with the previous load (optuna-dashboard at 100k) may not even answer
        page.goto(url, wait_until="commit", timeout=timeout * 1000)
    except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError: reported as not drawn in time
        print(f"{url}: {exc!r}"[:300], file=sys.stderr, flush=True)
        return {name: math.nan for name in checks}
    script = "() => { const t = window.__benchTimes = window.__benchTimes || {}; let all = true;\n"
    for name, cond in checks.items():
        script += f"  if (t[{name!r}] === undefined) {{ if ({cond}) t[{name!r}] = performance.now(); else all = false; }}\n"
    script += "  return all; }"
    with contextlib.suppress(Exception):
        page.wait_for_function(script, polling="raf", timeout=timeout * 1000)
    found = page.evaluate("window.__benchTimes || {}")
    return {name: float(found.get(name, math.nan)) for name in checks}


def browse(url: str, checks: dict[str, str], repeat: int, timeout: float, screenshot: Path | None
           ) -> dict[str, dict[str, float]]:
    """Median times over ``repeat`` new contexts (cold browser) and their reloads (warm browser)."""
    from playwright.sync_api import sync_playwright

    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(repeat):
                ctx = browser.new_context(viewport=VIEWPORT)
                page = ctx.new_page()
                cold.append(page_times(page, url, checks, timeout))
                warm.append(page_times(page, url, checks, timeout))
                if screenshot is not None and i == 0:
                    with contextlib.suppress(Exception):  # a busy page may not settle for a screenshot
                        page.screenshot(path=str(screenshot), full_page=False, timeout=60_000)
                ctx.close()
        finally:
            browser.close()
    return {"cold browser": median_of(cold), "warm browser": median_of(warm)}


def first_load(url: str, checks: dict[str, str], timeout: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport=VIEWPORT)
            return page_times(ctx.new_page(), url, checks, timeout)
        finally:
            browser.close()


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = math.nan if any(math.isnan(v) for v in values) else statistics.median(values)
    return out


# -- the API ----------------------------------------------------------------------------------------------
def api_times(base: str, paths: dict[str, tuple[str, dict[str, str]]], repeat: int, timeout: float
              ) -> dict[str, tuple[float, int]]:
    """Median ms per request and the response size in bytes, after one warm-up request."""
    import httpx

    out: dict[str, tuple[float, int]] = {}
    with httpx.Client(base_url=base, timeout=timeout) as client:
        for name, (path, headers) in paths.items():
            start = time.perf_counter()
            try:
                res = client.get(path, headers=headers)
            except httpx.TimeoutException:
                out[name] = (math.nan, 0)
                continue
            slow = time.perf_counter() - start > 10  # a request of many seconds is timed once more, not `repeat` times
            times = []
            for _ in range(1 if slow else repeat):
                start = time.perf_counter()
                res = client.get(path, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
            out[name] = (statistics.median(times), len(res.content))
    return out


def selftune_api_paths(base: str) -> dict[str, tuple[str, dict[str, str]]]:
    import httpx

    sid = httpx.get(f"{base}/api/studies").json()["studies"][0]["id"]
    etag = httpx.get(f"{base}/api/studies/{sid}").headers["etag"]
    paths = {"list studies": ("/api/studies", {}), "study summary": (f"/api/studies/{sid}", {}),
             "poll, no change (304)": (f"/api/studies/{sid}", {"If-None-Match": etag})}
    for kind in ("history", "importance", "parallel", "slice", "intermediate", "timeline"):
        paths[f"figure: {kind}"] = (f"/api/studies/{sid}/figures/{kind}", {})
    paths["trial table page (50, by value)"] = (f"/api/studies/{sid}/trials?limit=50&sort=value", {})
    paths["one trial"] = (f"/api/studies/{sid}/trials/10", {})
    return paths


OPTUNA_API = {
    "list studies": ("/api/studies", {}),
    "study detail (all trials)": ("/api/studies/1?after=0", {}),
    "parameter importance": ("/api/studies/1/param_importances", {}),
}


# -- one size ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    n: int
    selftune: dict[str, dict[str, float]] = field(default_factory=dict)
    selftune_api: dict[str, tuple[float, int]] = field(default_factory=dict)
    selftune_startup: dict[str, float] = field(default_factory=dict)
    optuna: dict[str, dict[str, float]] = field(default_factory=dict)
    optuna_api: dict[str, tuple[float, int]] = field(default_factory=dict)
    optuna_error: str | None = None
    optuna_repeat: int = 0


def measure(n: int, args: argparse.Namespace) -> Result:
    import httpx

    result = Result(n)
    db = database(args.cache, "selftune", n)
    with selftune_server(db) as (base, listen):  # start-up alone: nothing else asks the server anything
        ready = listen + wait_until(lambda: httpx.get(f"{base}/api/config").json()["preloaded"], 600, "preload")
        result.selftune_startup = {"listening": listen, "preloaded": ready}
    with selftune_server(db) as (base, listen):
        url = f"{base}/studies/1"
        result.selftune["just started"] = first_load(url, SELFTUNE_CHECKS, args.timeout)
        wait_until(lambda: httpx.get(f"{base}/api/config").json()["preloaded"], 600, "preload")
        shot = args.cache / f"selftune-{n}.png"
        result.selftune.update(browse(url, SELFTUNE_CHECKS, args.repeat, args.timeout, shot))
        result.selftune_api = api_times(base, selftune_api_paths(base), args.api_repeat, args.timeout)
    print(f"selftune {n}: {result.selftune}", file=sys.stderr, flush=True)
    if args.no_optuna:
        result.optuna_error = "not run (--no-optuna)"
        return result
    try:
        md.version("optuna-dashboard")
    except md.PackageNotFoundError:
        result.optuna_error = "optuna-dashboard is not installed (pip install optuna-dashboard)"
        return result
    odb = database(args.cache, "optuna", n)
    with optuna_server(odb, args.timeout) as (base, _):
        url = f"{base}/dashboard/studies/1"
        result.optuna["just started"] = first = first_load(url, OPTUNA_CHECKS, args.timeout)
        slow = math.isnan(first["all plots"]) or first["all plots"] > 30_000
        repeat = 1 if slow else args.repeat  # a page that takes minutes is loaded once, not `repeat` times
        result.optuna_repeat = repeat
        result.optuna.update(browse(url, OPTUNA_CHECKS, repeat, args.timeout, args.cache / f"optuna-{n}.png"))
        try:
            result.optuna_api = api_times(base, OPTUNA_API, args.api_repeat, args.timeout)
        except httpx.HTTPError as exc:
            result.optuna_error = f"API timed out or failed: {exc!r}"
    print(f"optuna-dashboard {n}: {result.optuna}", file=sys.stderr, flush=True)
    return result


# -- the report -------------------------------------------------------------------------------------------
def seconds(ms: float, timeout: float) -> str:
    return f"> {timeout:.0f}" if math.isnan(ms) else f"{ms / 1000:.2f}"


def ratio(a: float, b: float) -> str:
    if math.isnan(b) and not math.isnan(a):
        return "∞ (optuna-dashboard timed out)"
    if math.isnan(a) or math.isnan(b) or a <= 0:
        return "–"
    return f"{b / a:.1f}×"


def api_cell(cell: tuple[float, int], timeout: float) -> str:
    ms, size = cell
    if math.isnan(ms):
        return f"> {timeout:.0f} s"
    return f"{ms:.1f} ms ({size / 1024:.0f} KiB)" if ms < 1000 else f"{ms / 1000:.1f} s ({size / 2**20:.0f} MiB)"


def environment() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "machine": f"{cpu}, {os.cpu_count()} CPU(s) visible{mem}, {platform.system()} {platform.release()}",
        "chromium": chromium or "unknown",
        "versions": ", ".join(f"{p} {version(p)}" for p in ("selftune", "fastapi", "uvicorn", "plotly",
                                                             "optuna", "optuna-dashboard", "playwright")),
        "python": platform.python_version(),
    }


def section(results: list[Result], args: argparse.Namespace, env: dict[str, str], took: float) -> str:
    t = args.timeout
    out = [SECTION, "",
           f"`python benchmarks/dashboard_load.py` on {dt.date.today().isoformat()} "
           f"({took / 60:.0f} min). Machine: {env['machine']}, shared (1-minute load average {env['load']}); "
           f"{env['chromium']}; Python {env['python']}; {env['versions']}.", "",
           "What is timed: the study's page in headless Chromium (`--headless --disable-gpu`, so WebGL is "
           "software-rendered; viewport 1400×1000), from navigation start until **history**: the "
           "optimisation-history plot shows its points (selftune draws them first as a light SVG preview of the "
           "same downsampled figure, without waiting for Plotly's bundle, then Plotly redraws it); **all plots**: every plot on the page is drawn "
           "(selftune: 6 panels; optuna-dashboard: its 4, history, importance, timeline, intermediate "
           "values); **table**: the counts and the first page of the trial table are shown (selftune only). "
           "**Cold browser**: a new browser context (empty cache); **warm browser**: the same page loaded again "
           f"(Plotly's bundle cached). Median of {args.repeat}. **Just started**: the first load right after the "
           "server process starts (selftune reads the study on start-up in the background; a page opened "
           "meanwhile waits for that read). Each study: 4 parameters (log float, float, int, categorical), one "
           "trial in 10 with a 5-step curve, 5% STOPPED (optuna: PRUNED), 2% FAILED, same trials for both; "
           "SQLite. Seconds; `> T` = not drawn within the timeout.", ""]
    for label in ("cold browser", "warm browser", "just started"):
        out += [f"**{label.capitalize()}**", "",
                "| trials | selftune table | selftune history | selftune all plots | optuna-dashboard history "
                "| optuna-dashboard all plots | history: optuna-dashboard / selftune | all plots: ratio |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            s, o = r.selftune.get(label, {}), r.optuna.get(label, {})
            nan = math.nan
            out.append(
                f"| {r.n:,} | {seconds(s.get('table', nan), t)} | {seconds(s.get('history', nan), t)} | "
                f"{seconds(s.get('all plots', nan), t)} | "
                + (f"{seconds(o.get('history', nan), t)} | {seconds(o.get('all plots', nan), t)} | "
                   f"{ratio(s.get('history', nan), o.get('history', nan))} | "
                   f"{ratio(s.get('all plots', nan), o.get('all plots', nan))} |" if o else "– | – | – | – |")
            )
        out.append("")
    out += ["**selftune: the history plot drawn by Plotly** (after its preview; seconds, cold / warm / just "
            "started)", "", "| trials | cold browser | warm browser | just started |", "|---:|---:|---:|---:|"]
    out += [f"| {r.n:,} | " + " | ".join(seconds(r.selftune.get(label, {}).get("history (Plotly)", math.nan), t)
                                         for label in ("cold browser", "warm browser", "just started")) + " |"
            for r in results]
    out += ["", "**selftune start-up** (seconds from launching `selftune dashboard` until it listens / until every "
            "study is read and its figures drawn in memory)", "",
            "| trials | listening | preloaded |", "|---:|---:|---:|"]
    out += [f"| {r.n:,} | {r.selftune_startup['listening']:.2f} | {r.selftune_startup['preloaded']:.2f} |"
            for r in results]
    out += ["", f"**JSON API** (median ms of {args.api_repeat} requests after a warm-up; response size)", "",
            "| request | " + " | ".join(f"{r.n:,} trials" for r in results) + " |",
            "|---|" + "---:|" * len(results)]
    for name in results[0].selftune_api:
        cells = [api_cell(r.selftune_api[name], args.timeout) for r in results]
        out.append(f"| selftune: {name} | " + " | ".join(cells) + " |")
    for name in OPTUNA_API:
        cells = [api_cell(r.optuna_api[name], args.timeout) if name in r.optuna_api else "–" for r in results]
        out.append(f"| optuna-dashboard: {name} | " + " | ".join(cells) + " |")
    once = [f"{r.n:,}" for r in results if r.optuna and r.optuna_repeat == 1 and args.repeat > 1]
    if once:
        out += ["", f"optuna-dashboard at {', '.join(once)} trials: loaded once (its first load took over 30 s)."]
    notes = [f"{r.n:,}: {r.optuna_error}" for r in results if r.optuna_error]
    if notes:
        out += ["", "optuna-dashboard: " + "; ".join(notes) + "."]
    return "\n".join(out) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the section (up to the next ``## `` heading) in ``path``, or append it."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else ["# Benchmarks\n"]
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    if start is None:
        body = "".join(lines).rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        body = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    path.write_text(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3, help="browser loads per measurement (median)")
    ap.add_argument("--api-repeat", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds before a page or request gives up")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "selftune-dashboard-bench")
    ap.add_argument("--no-optuna", action="store_true", help="measure selftune only")
    ap.add_argument("--no-docs", action="store_true", help="print the section instead of writing docs")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"no browser at {CHROMIUM}", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    load_before = os.getloadavg()
    results = [measure(n, args) for n in args.sizes]
    env = environment()
    env["load"] = f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    text = section(results, args, env, time.monotonic() - start)
    print(text)
    if not args.no_docs:
        write_section(args.docs, text)
        print(f"wrote {SECTION!r} in {args.docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
