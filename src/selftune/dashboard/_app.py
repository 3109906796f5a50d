"""The dashboard's FastAPI application: one HTML page, its script, Plotly's bundled JavaScript, a JSON API.

Security: every request's ``Host`` header must name an allowed host (DNS rebinding); every response forbids
framing and inline scripts (CSP); write endpoints answer 403 unless the app has a token and the request
carries it in the ``X-Selftune-Token`` header. Nothing here makes an outgoing request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hmac
import json
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from selftune import __version__
from selftune.analysis._common import thin
from selftune.analysis.panels import ALL_PANELS, PANELS, panel_figure, panels_of
from selftune.dashboard import LOOPBACK_HOSTS, TOKEN_HEADER
from selftune.dashboard._cache import Catalog, StudyView
from selftune.exceptions import SelftuneError, StudyNotFoundError, TrialNotFoundError
from selftune.history import History
from selftune.storage import Storage, StudySummary
from selftune.trial import TrialRecord, TrialState

__all__ = ["build_app"]

MAX_PAGE = 500
MAX_CURVE_POINTS = 2000
SORT_KEYS = ("number", "value", "duration", "last_step")
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- JSON ------------------------------------------------------------------------------------------------
def _safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings 'inf', '-inf', 'nan' (JSON has no such numbers)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value`` (non-finite floats as strings)."""
    return json.dumps(_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# -- host check and security headers ---------------------------------------------------------------------
def _hostname(host_header: str) -> str:
    """The host name of a ``Host`` header, without its port (``[::1]:8080`` → ``::1``)."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1: h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class _Guard:
    """ASGI middleware: refuse requests whose Host is not allowed; add the security headers."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] | None) -> None:
        self.app = app
        self.fastapi: Any = app
        self.allowed = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed is not None:
            headers = dict(scope.get("headers") or [])
            host = _hostname(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                body = dumps({"detail": f"host {host!r} is not allowed; start the dashboard with "
                                        "--allow-host NAME to serve it under another name"})
                await send({"type": "http.response.start", "status": 400, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *_SECURITY_HEADERS,
                ]})
                await send({"type": "http.response.body", "body": body})
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- static files ----------------------------------------------------------------------------------------
class _Static:
    """The page, its script and stylesheet (package data) and Plotly's bundle (from the plotly package),
    each read once; Plotly's also gzipped once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}

    def get(self, name: str) -> bytes:
        with self._lock:
            if name not in self._files:
                if name == "plotly.min.js":
                    data = _plotly_js()
                elif name == "plotly.min.js.gz":
                    data = gzip.compress(_plotly_js(), 6, mtime=0)
                else:
                    data = resources.files("selftune.dashboard").joinpath("static", name).read_bytes()
                self._files[name] = data
            return self._files[name]


def _plotly_js() -> bytes:
    """Plotly's JavaScript bundle as shipped inside the installed plotly package (no CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if path.is_file():
        return path.read_bytes()
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


# -- payloads --------------------------------------------------------------------------------------------
def _summary_of(s: StudySummary) -> dict[str, Any]:
    return {
        "id": s.info.id,
        "name": s.info.name,
        "direction": s.info.direction,
        "created_at": s.info.created_at,
        "counts": dict(s.counts),
        "n_trials": s.n_trials,
        "best_value": s.best_value,
        "note": s.info.user_attrs.get("note"),
    }


def _duration(r: TrialRecord) -> float | None:
    return r.duration


def _row(r: TrialRecord) -> dict[str, Any]:
    """One trial as a row of the trial table."""
    return {
        "number": r.number,
        "state": r.state.value,
        "value": r.value,
        "params": dict(r.params),
        "duration": r.duration,
        "last_step": r.last_step,
        "worker": r.worker,
        "reason": (r.reason or "").splitlines()[0][:200] if r.reason else None,
    }


def _order(history: History, sort: str, desc: bool, state: str | None) -> np.ndarray:
    """Indices into ``history.trials``: filtered by ``state``, sorted by ``sort``; trials without a sort
    key (no value, unfinished) last whichever the order; ties by number."""
    trials = history.trials
    idx = np.array([i for i, r in enumerate(trials) if state is None or r.state.value == state], dtype=int)
    if sort == "number":
        return idx[::-1] if desc else idx
    get: Callable[[TrialRecord], float | None] = {
        "value": lambda r: r.value,
        "duration": _duration,
        "last_step": lambda r: None if r.last_step is None else float(r.last_step),
    }[sort]
    keys = np.array([get(trials[i]) if get(trials[i]) is not None else np.nan for i in idx], dtype=float)
    missing = np.isnan(keys)
    present, absent = idx[~missing], idx[missing]
    k = keys[~missing]
    ordered = present[np.lexsort((present, -k if desc else k))]
    return np.concatenate([ordered, absent])


def _curve(r: TrialRecord, sign: float) -> dict[str, Any]:
    steps = sorted(r.intermediate)
    values = np.array([r.intermediate[s] for s in steps], dtype=float)
    if len(steps) > MAX_CURVE_POINTS:
        finite = np.where(np.isfinite(values), sign * values, np.inf)
        keep = thin(len(steps), MAX_CURVE_POINTS, keep=[0, len(steps) - 1, int(np.argmin(finite))])
        steps, values = [steps[i] for i in keep], values[keep]
    return {"steps": steps, "values": values.tolist(), "n_reports": len(r.intermediate)}


class Note(BaseModel):
    """The body of ``PUT /api/studies/{id}/note``."""

    note: str = Field(max_length=10_000)


_warm_lock = threading.Lock()
_warmed = False


def _warm_up() -> None:
    """Draw every panel once for a tiny made-up study, in the calling thread (once per process).

    Plotly (and scikit-learn, for fANOVA) import submodules lazily on first use; the first figures drawn by
    several request threads at once made those imports deadlock (Python's ``_DeadlockError``). Drawing
    everything once before serving does every such import up front.
    """
    global _warmed
    from selftune.space import Choice, Float

    with _warm_lock:
        if _warmed:
            return
        records = [
            TrialRecord(number=i, state=state, params={"x": i / 6, "c": "ab"[i % 2]}, value=value,
                        intermediate={1: 1.0 + i, 2: 0.5 + i}, started_at=1.0 + i, finished_at=1.5 + i, worker="w")
            for i, (state, value) in enumerate([(TrialState.COMPLETE, 1.0), (TrialState.COMPLETE, 0.5),
                                                (TrialState.COMPLETE, 2.0), (TrialState.STOPPED, 3.0),
                                                (TrialState.FAILED, None), (TrialState.COMPLETE, 0.2)])
        ]
        history = History(records, params={"x": Float(0.0, 1.0), "c": Choice(("a", "b"))})
        for kind in ALL_PANELS:
            panel_figure(history, kind).to_json()
        _warmed = True


# -- the application -------------------------------------------------------------------------------------
def build_app(
    storage: Storage,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    refresh: float = 2.0,
    preload: bool = True,
    max_points: int = 2000,
) -> Any:
    """The FastAPI app (see :func:`selftune.dashboard.create_app`)."""

    catalog = Catalog(storage)
    read = threading.Event()
    preloaded = threading.Event()

    def read_all() -> None:
        try:
            for s in catalog.studies(fresh=True):
                catalog.view(s.info.id).refresh(force=True)
        except Exception:  # noqa: BLE001 - a request will meet the same error and report it
            pass
        finally:
            read.set()

    def preload_all() -> None:
        read.wait()
        try:
            for s in catalog.studies():
                view = catalog.view(s.info.id)
                for kind in panels_of(view.history(), pbt=view.pbt):
                    figure_bytes(view, kind)
        except Exception:  # noqa: BLE001 - a request will meet the same error and report it
            pass
        finally:
            preloaded.set()

    if preload:  # the storage's first read of every study starts now, while the rest starts up
        threading.Thread(target=read_all, name="selftune-dashboard-read", daemon=True).start()
    _warm_up()
    static = _Static()
    page = static.get("index.html")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        if preload:  # figures only once the server runs: drawing must follow the warm-up's imports
            threading.Thread(target=preload_all, name="selftune-dashboard-preload", daemon=True).start()
        yield

    app = FastAPI(title="selftune dashboard", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.catalog = catalog

    def json_response(payload: bytes, request: Request | None = None, etag: str | None = None) -> Response:
        headers = {"cache-control": "no-cache"}
        if etag is not None:
            headers["etag"] = etag
            if request is not None and request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
        return Response(payload, media_type="application/json", headers=headers)

    def view_of(study_id: int) -> StudyView:
        try:
            return catalog.view(study_id)
        except StudyNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None

    def figure_bytes(view: StudyView, kind: str) -> tuple[int, bytes]:
        def compute(history: History) -> bytes:
            return panel_figure(history, kind, max_points=max_points).to_json().encode()

        memo = view.memo(("figure", kind), compute, adaptive=True)
        body = b'{"kind":' + dumps(kind) + b',"cursor":' + str(memo.cursor).encode() + b',"figure":' + memo.value
        return memo.cursor, body + b"}"

    def check_token(given: str | None) -> None:
        if token is None:
            raise HTTPException(403, "the dashboard is read-only: start it with --token to allow changes")
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(403, f"this change needs the dashboard's token in the {TOKEN_HEADER} header")

    # -- pages and static files --------------------------------------------------------------------------
    def html() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return html()

    @app.get("/studies/{study_id}", include_in_schema=False)
    def study_page(study_id: int) -> Response:
        return html()

    @app.get("/studies/{study_id}/trials/{number}", include_in_schema=False)
    def trial_page(study_id: int, number: int) -> Response:
        return html()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str, request: Request) -> Response:
        types = {"app.js": "text/javascript", "style.css": "text/css", "plotly.min.js": "text/javascript"}
        if name not in types:
            raise HTTPException(404, f"no static file {name!r}")
        headers = {"cache-control": "no-cache"}
        if name == "plotly.min.js":
            headers = {"cache-control": "public, max-age=86400"}
            if "gzip" in request.headers.get("accept-encoding", ""):
                headers["content-encoding"] = "gzip"
                return Response(static.get("plotly.min.js.gz"), media_type=types[name], headers=headers)
        return Response(static.get(name), media_type=f"{types[name]}; charset=utf-8", headers=headers)

    # -- the API -------------------------------------------------------------------------------------------
    @app.get("/api/config")
    def config() -> Response:
        """The settings the page needs."""
        return json_response(dumps({
            "version": __version__, "storage": storage.url, "refresh": refresh, "writable": token is not None,
            "token_header": TOKEN_HEADER, "panels": PANELS, "preloaded": preloaded.is_set(),
        }))

    @app.get("/api/studies")
    def studies() -> Response:
        """Every study with its counts by state and best value."""
        return json_response(dumps({"storage": storage.url, "studies": [_summary_of(s) for s in catalog.studies()]}))

    @app.get("/api/studies/{study_id}")
    def study(study_id: int, request: Request) -> Response:
        """One study: counts, best trial, parameters and the cursor (cheap to poll: ETag by cursor)."""
        view = view_of(study_id)
        cursor = view.refresh()
        etag = f'"s{study_id}-{cursor}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag, "cache-control": "no-cache"})
        history = view.history()
        best = view.best
        info = view.info
        return json_response(dumps({
            "id": info.id, "name": info.name, "direction": info.direction, "created_at": info.created_at,
            "note": info.user_attrs.get("note"), "cursor": cursor, "n_trials": len(history),
            "counts": {s.value: n for s, n in view.counts.items() if n},
            "best": None if best is None else {"number": best.number, "value": best.value, "params": dict(best.params)},
            "params": list(history.params) + sorted({k for r in history.trials[-1000:] for k in r.params}
                                                    - set(history.params)),
            "panels": panels_of(history, pbt=view.pbt),
        }), request, etag)

    @app.get("/api/studies/{study_id}/figures/{kind}")
    def figure(study_id: int, kind: str, request: Request) -> Response:
        """A panel's Plotly figure (downsampled), with the cursor it was drawn at."""
        if kind not in ALL_PANELS:
            raise HTTPException(404, f"no figure {kind!r}; expected one of {list(ALL_PANELS)}")
        view = view_of(study_id)
        view.refresh()
        cursor, body = figure_bytes(view, kind)
        return json_response(body, request, f'"f{study_id}-{kind}-{cursor}"')

    @app.get("/api/studies/{study_id}/trials")
    def trials(
        study_id: int,
        offset: int = Query(0, ge=0),
        limit: int = Query(50, ge=1, le=MAX_PAGE),
        sort: str = Query("number"),
        order: str = Query("asc"),
        state: str | None = Query(None),
    ) -> Response:
        """A page of the trial table: ``limit`` trials from ``offset``, sorted and filtered by state."""
        if sort not in SORT_KEYS:
            raise HTTPException(422, f"`sort` must be one of {list(SORT_KEYS)}, got {sort!r}")
        if order not in ("asc", "desc"):
            raise HTTPException(422, f"`order` must be 'asc' or 'desc', got {order!r}")
        states = [s.value for s in TrialState]
        if state is not None and state not in states:
            raise HTTPException(422, f"`state` must be one of {states}, got {state!r}")
        view = view_of(study_id)
        view.refresh()
        memo = view.memo(("order", sort, order, state),
                         lambda h: (h, _order(h, sort, order == "desc", state)))
        history, idx = memo.value
        page_idx = idx[offset: offset + limit]
        return json_response(dumps({
            "cursor": memo.cursor, "total": int(idx.size), "offset": offset, "limit": limit,
            "trials": [_row(history.trials[i]) for i in page_idx],
        }))

    @app.get("/api/studies/{study_id}/trials/{number}")
    def trial(study_id: int, number: int) -> Response:
        """Everything about one trial; its learning curve thinned to at most 2,000 reports."""
        view = view_of(study_id)
        view.refresh()
        record = view.get(number)
        if record is None:
            try:
                record = storage.get_trial(study_id, number)
            except TrialNotFoundError:
                raise HTTPException(404, f"study {view.info.name!r} has no trial {number}") from None
        doc = record.to_json()
        doc["duration"] = record.duration
        doc["curve"] = _curve(record, view.sign)
        del doc["intermediate"]
        return json_response(dumps({"study": {"id": view.info.id, "name": view.info.name,
                                              "direction": view.info.direction}, "trial": doc}))

    # -- writes (token only) -----------------------------------------------------------------------------
    @app.delete("/api/studies/{study_id}")
    def delete_study(study_id: int, x_selftune_token: str | None = Header(None)) -> Response:
        """Delete a study and all its trials (needs the token)."""
        check_token(x_selftune_token)
        view = view_of(study_id)
        try:
            storage.delete_study(view.info.name)
        except StudyNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        catalog.forget(study_id)
        return json_response(dumps({"deleted": view.info.name}))

    @app.put("/api/studies/{study_id}/note")
    def set_note(study_id: int, body: Note, x_selftune_token: str | None = Header(None)) -> Response:
        """Set the study's note, a short text shown with it (needs the token)."""
        check_token(x_selftune_token)
        view = view_of(study_id)
        try:
            storage.set_study_attr(study_id, "note", body.note)
        except SelftuneError as exc:
            raise HTTPException(422, str(exc)) from None
        view.info = dataclasses.replace(view.info, user_attrs={**view.info.user_attrs, "note": body.note})
        catalog.stale()
        return json_response(dumps({"study": view.info.name, "note": body.note}))

    guarded = _Guard(app, allowed_hosts)
    guarded.fastapi = app
    return guarded
