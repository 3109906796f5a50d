"""A live web dashboard of the studies in a storage: ``selftune dashboard --storage URL``.

One page (lists the studies; one study's figures, trial table and trials, updating as trials finish without a
reload) and a JSON API, served by FastAPI and uvicorn with Plotly's JavaScript from the installed plotly
package: nothing is fetched from the internet, nothing is sent anywhere.

Endpoints (all GET unless said otherwise):

* ``/api/config``: the refresh interval, whether writes are enabled, the panels;
* ``/api/studies``: every study with its counts by state and best value;
* ``/api/studies/{id}``: one study's counts, best trial and storage cursor (ETag by cursor: polling is cheap);
* ``/api/studies/{id}/figures/{panel}``: a Plotly figure (``history``, ``importance``, ``parallel``,
  ``slice``, ``intermediate``, ``timeline``; ``lineage`` and ``schedule`` for a study with population based
  training, listed in the study's ``panels``), downsampled on the server;
* ``/api/studies/{id}/trials?offset&limit&sort&order&state``: a page of the trial table (at most 500 rows);
* ``/api/studies/{id}/trials/{number}``: one trial with its learning curve;
* ``DELETE /api/studies/{id}`` and ``PUT /api/studies/{id}/note``: only with the token, in the
  ``X-Selftune-Token`` header; without a token the dashboard is read-only and these answer 403.

Security defaults: binds 127.0.0.1, answers only requests whose ``Host`` is a loopback name (or one allowed
with ``allowed_hosts``), sends a strict Content-Security-Policy, and shows user text as text, never HTML.
Needs ``pip install 'selftune[dashboard]'``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

from selftune._imports import require
from selftune.exceptions import InvalidParameterError
from selftune.storage import Storage

__all__ = ["create_app", "serve", "LOOPBACK_HOSTS", "TOKEN_HEADER"]

#: the request header that carries the token of a dashboard started with one
TOKEN_HEADER = "X-Selftune-Token"
#: the host names a dashboard always answers to
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def _require_all() -> None:
    for module in ("fastapi", "uvicorn", "plotly"):
        require(module, "dashboard")


def create_app(
    storage: Storage,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    refresh: float = 2.0,
    preload: bool = True,
    max_points: int = 2000,
) -> Any:
    """The dashboard as an ASGI application reading ``storage``.

    ``token``: enables the write endpoints for requests that carry it (None: read-only).
    ``allowed_hosts``: host names the ``Host`` header may name (None: any; only behind a trusted proxy).
    ``refresh``: seconds between the page's polls. ``preload``: in the background, read every study (from
    when the app is created) and draw its figures (once it serves), so the first view of a big study is
    served from memory.
    ``max_points``: the most points (lines, bars) one figure ships.
    """
    _require_all()
    from selftune.dashboard._app import build_app

    if token is not None and not token.strip():
        raise InvalidParameterError("`token` must not be empty or only whitespace")
    return build_app(storage, token=token, allowed_hosts=allowed_hosts, refresh=refresh, preload=preload,
                     max_points=max_points)


def serve(
    storage: Storage,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    allow_hosts: Iterable[str] = (),
    refresh: float = 2.0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until interrupted. ``port=0`` picks a free port; ``on_ready(url)`` is called
    with the address once the socket listens."""
    _require_all()
    import uvicorn

    allowed: tuple[str, ...] | None
    if host in _WILDCARDS and not allow_hosts:
        allowed = None  # every interface: the Host header can be any of the machine's names
    else:
        allowed = (*LOOPBACK_HOSTS, *([] if host in _WILDCARDS else [host]), *allow_hosts)
    app = create_app(storage, token=token, allowed_hosts=allowed, refresh=refresh)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it, Nagle's algorithm and
    # delayed ACKs add 40 ms to small responses on kept-alive connections
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    name = f"[{host}]" if ":" in host else host
    if on_ready is not None:
        on_ready(f"http://{name}:{bound}/")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
