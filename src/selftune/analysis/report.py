"""A study as one self-contained HTML file: summary, best trial, the dashboard's figures (population based
training's lineage and schedule too, when the study has them), Plotly inlined.

>>> from selftune.analysis.report import write_report  # doctest: +SKIP
>>> write_report(study, "report.html")   # opens offline, in any browser; needs selftune[dashboard]

The file has no external reference (no CDN, no font, no image URL): Plotly's JavaScript is inlined, and
everything from the study (names, parameters, attributes) is HTML-escaped. It is written atomically: to a
temporary file beside the target, flushed to disk, then renamed over it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftune import __version__
from selftune._export import _atomic_write
from selftune._imports import require
from selftune.analysis._common import as_history, finite_complete
from selftune.analysis.panels import panel_figure, panels_of
from selftune.history import History
from selftune.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from selftune.study import Study

__all__ = ["report_html", "write_report"]

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.5em; word-break: break-all; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; } .muted { color: #6b7280; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #eef1f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.panel { border: 1px solid #e5e7eb; border-radius: 6px; margin: 0.8em 0; }
"""


def _esc(value: Any) -> str:
    if isinstance(value, float):
        return html.escape(repr(value))
    return html.escape(value if isinstance(value, str) else json.dumps(value, default=str))


def _time(t: float | None) -> str:
    return "–" if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _table(head: list[str], rows: list[list[str]], numeric: Collection[int] = ()) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary(history: History, name: str, storage: str | None) -> str:
    counts = Counter(r.state.value for r in history.trials)
    starts = [r.started_at for r in history.trials if r.started_at is not None]
    ends = [r.finished_at for r in history.trials if r.finished_at is not None]
    workers = {r.worker for r in history.trials if r.worker}
    best = history.best()
    rows = [
        ["study", _esc(name)],
        ["storage", _esc(storage) if storage else "–"],
        ["direction", _esc(history.direction)],
        ["trials", f"{len(history)} (" + ", ".join(f"{n} {_esc(s)}" for s, n in counts.items()) + ")"
         if history.trials else "0"],
        ["best value", "–" if best is None else f"{_esc(best.value)} (trial {best.number})"],
        ["first start", _time(min(starts) if starts else None)],
        ["last finish", _time(max(ends) if ends else None)],
        ["workers", str(len(workers))],
    ]
    return _table(["", ""], rows)


def _best_trials(history: History, top: int) -> str:
    ranked = sorted(finite_complete(history), key=lambda r: (history.sign * float(r.value), r.number))  # type: ignore[arg-type]
    if not ranked:
        return '<p class="muted">no COMPLETE trial yet</p>'
    best = ranked[0]
    names = list(dict.fromkeys(k for r in ranked[:top] for k in r.params))
    out = [f"<h2>Best trial: {best.number}</h2>", _table(["parameter", "value"], [
        [_esc(k), _esc(v)] for k, v in best.params.items()
    ] + [["value", _esc(best.value)]])]
    if best.user_attrs:
        out.append(_table(["attribute", "value"], [[_esc(k), _esc(v)] for k, v in best.user_attrs.items()]))
    out.append(f"<h2>Best {min(top, len(ranked))} of {len(ranked)} complete trials</h2>")
    out.append(_table(
        ["#", "value", *names, "duration (s)"],
        [[str(r.number), _esc(r.value), *[_esc(r.params[k]) if k in r.params else "" for k in names],
          "–" if r.duration is None else f"{r.duration:.3g}"] for r in ranked[:top]],
        numeric={0, 1, len(names) + 2},
    ))
    return "".join(out)


def _failures(records: list[TrialRecord], top: int) -> str:
    failed = [r for r in records if r.state is TrialState.FAILED][-top:]
    if not failed:
        return ""
    rows = [[str(r.number), _esc((r.reason or "").splitlines()[0][:300] if r.reason else "–")] for r in failed]
    return f"<h2>Last {len(failed)} FAILED trials</h2>" + _table(["#", "reason"], rows, numeric={0})


def report_html(
    study: Study | History, *, name: str | None = None, max_points: int = 5000, top: int = 10
) -> str:
    """The report of ``study`` (a :class:`~selftune.study.Study` or a History) as one HTML document.

    ``name`` titles it (default: the study's name); figures ship at most ``max_points`` points each;
    ``top`` best trials are listed.
    """
    require("plotly", "dashboard")
    from plotly.offline import get_plotlyjs

    history = as_history(study)
    title = name if name is not None else getattr(study, "name", "study")
    storage = getattr(getattr(study, "storage", None), "url", None)
    figures = []
    for key in panels_of(history):  # PBT's lineage and schedule too, when the study has them
        fig = panel_figure(history, key, max_points=max_points)
        if key != "schedule":  # its height grows with the number of hyperparameters
            fig.update_layout(height=460 if key == "slice" else 420)
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"panel-{key}",
                          config={"displaylogo": False, "responsive": True})
        figures.append(f'<div class="panel">{div}</div>')
    made = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return "".join([
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_esc(title)} · selftune report</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_STYLE}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="muted">selftune {html.escape(__version__)} report, made {html.escape(made)}</p>',
        "<h2>Summary</h2>", _summary(history, title, storage),
        _best_trials(history, top),
        _failures(list(history.trials), top),
        "<h2>Figures</h2>", *figures,
        "</body></html>\n",
    ])


def write_report(
    study: Study | History, path: str | os.PathLike[str], *, name: str | None = None, max_points: int = 5000
) -> Path:
    """Write :func:`report_html` of ``study`` to ``path`` atomically; return the path."""
    text = report_html(study, name=name, max_points=max_points)
    target = Path(path)
    _atomic_write(target, lambda f: f.write(text))
    return target
