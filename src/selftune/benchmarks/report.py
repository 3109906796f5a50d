"""The markdown report of a sampler comparison (used by ``benchmarks/compare_samplers.py``)."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import subprocess
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from selftune.benchmarks.problems import GROUPS
from selftune.benchmarks.runner import RunResult
from selftune.benchmarks.scoring import (
    BASELINE,
    group_means,
    log10_regret,
    mean_ranks,
    score_table,
    summarize_latency,
    wins_losses,
)

__all__ = ["machine_info", "library_versions", "build_report"]

_LIBS = (
    "numpy",
    "scipy",
    "scikit-learn",
    "optuna",
    "cmaes",
    "HEBO",
    "torch",
    "smac",
    "ConfigSpace",
    "nevergrad",
    "coco-experiment",
)


def machine_info() -> dict[str, str]:
    """CPU, cores, memory, OS, Python, git commit and the date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = "?"
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = (
            subprocess.run(
                ["git", "-C", here, "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or "?"
        )
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
    }


def library_versions() -> dict[str, str]:
    from importlib import metadata

    import selftune

    out = {"selftune": selftune.__version__}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_seconds(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: bool = True) -> list[str]:
    sep = ["---"] + ["---:" if numeric else "---"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def build_report(
    results: Sequence[RunResult],
    problems: Mapping[str, Mapping[str, Any]],
    *,
    optimizers: Sequence[str],
    descriptions: Mapping[str, str],
    reference: str | None,
    latency: Mapping[str, Mapping[int, Sequence[float]]] | None = None,
    latency_problem: str = "hartmann6",
    latency_asks: int = 0,
    skipped: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    machine: Mapping[str, str] | None = None,
    versions: Mapping[str, str] | None = None,
    tie: float = 1.0,
    measured_with: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
) -> str:
    """Markdown with scores, ranks, wins/losses, regret and latency.

    ``problems`` maps a problem name to ``{"group", "optimum", "budget", "dimension"}``; ``measured_with``
    maps an optimiser to the library versions its results were measured with, where those are not the
    versions installed here.
    """
    machine = machine or machine_info()
    versions = versions or library_versions()
    groups_of = {p: str(m["group"]) for p, m in problems.items()}
    finals: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    ask_secs: dict[str, list[float]] = defaultdict(list)
    errors: list[RunResult] = []
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in results:
        if r.problem not in problems or r.optimizer not in optimizers:
            continue
        if r.error is not None:
            errors.append(r)
        if r.values:
            finals[r.problem][r.optimizer].append(r.final())
        ask_secs[r.optimizer] += r.ask_seconds
        for k, v in (r.stats or {}).items():
            stats[r.optimizer][k] += float(v)
    optima = {p: (None if m.get("optimum") is None else float(m["optimum"])) for p, m in problems.items()}
    scores = score_table(finals, optima)
    groups = [g for g in GROUPS if any(groups_of[p] == g for p in scores)]
    present = [o for o in optimizers if any(o in by for by in scores.values())]
    gmeans = group_means(scores, groups_of)
    ranks = mean_ranks(scores, groups_of)

    lines: list[str] = ["# Sampler comparison", ""]
    lines += [
        "Generated by `benchmarks/compare_samplers.py`; do not edit by hand. "
        "Method and caveats at the end of this page.",
        "",
    ]
    lines += [
        f"- Date: {machine.get('date')}; commit {machine.get('commit')}",
        f"- Machine: {machine.get('cpu')}, {machine.get('memory')} RAM; {machine.get('os')}; Python {machine.get('python')}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    for o, vs in (measured_with or {}).items():
        if o in optimizers:
            said = "; ".join(", ".join(f"{k} {v}" for k, v in d.items() if k != "harness") for d in vs)
            lines.append(
                f"- `{o}`: results measured with other versions ({said}), possibly on another machine: "
                "its seconds per ask are not comparable with the others'"
            )
    if settings:
        lines.append("- Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    n_seeds = sorted({len(v) for by in finals.values() for v in by.values()})
    lines.append(
        f"- {len(scores)} problems in {len(groups)} groups, {'/'.join(map(str, n_seeds)) or 0} seeds per "
        f"optimiser and problem, reference sampler for wins/losses: `{reference}`"
    )
    lines.append("")

    lines += ["## Optimisers", ""]
    lines += _table(["name", "what"], [[f"`{o}`", descriptions.get(o, "")] for o in present], numeric=False)
    if skipped:
        lines += ["", "Not run: " + "; ".join(f"`{o}` ({why})" for o, why in skipped.items())]
    lines.append("")

    def group_table(values: Mapping[str, Mapping[str, float]], digits: int, lower_better: bool) -> list[str]:
        rows = []
        for o in present:
            cells = [_fmt(values.get(g, {}).get(o), digits) for g in groups]
            vals = [values[g][o] for g in groups if o in values.get(g, {})]
            allv = float(np.mean(vals)) if len(vals) == len(groups) and vals else None
            rows.append([f"`{o}`", *cells, _fmt(allv, digits)])
        key_col = len(groups) + 1
        rows.sort(
            key=lambda r: (
                r[key_col] == "–",
                (1 if lower_better else -1) * float(r[key_col]) if r[key_col] != "–" else 0,
            )
        )
        return _table(["optimizer", *groups, "all groups"], rows)

    lines += [
        "## Mean normalised score per group",
        "",
        "100 = the reference minimum f*, 0 = the median final value of random search; mean over the problems "
        "of a group of the mean over seeds (higher is better). `all groups` weighs every group equally.",
        "",
    ]
    lines += group_table(gmeans, 1, lower_better=False)
    lines += [
        "",
        "## Mean rank per group",
        "",
        "Rank per problem on the mean score (1 is best; ties share).",
        "",
    ]
    lines += group_table(ranks, 2, lower_better=True)

    bbob_groups = [g for g in groups if g.startswith("bbob") or g == "noisy"]
    if bbob_groups:
        regrets: dict[str, dict[str, list[float]]] = {}
        for p, by in finals.items():
            if groups_of[p] in bbob_groups and optima.get(p) is not None:
                regrets[p] = {o: [log10_regret(v, optima[p]) for v in vs] for o, vs in by.items()}  # type: ignore[arg-type]
        med = group_means(regrets, groups_of, reduce="median")
        lines += [
            "",
            "## bbob: log10 regret",
            "",
            "`log10(final − f_opt)` (floor −8), median over seeds, mean over the functions of a group (lower is "
            "better; the noisy group uses the noiseless value of the best noisy observation).",
            "",
        ]
        rows = [[f"`{o}`", *[_fmt(med.get(g, {}).get(o), 2) for g in bbob_groups]] for o in present]
        rows.sort(key=lambda r: float(r[1]) if r[1] != "–" else math.inf)
        lines += _table(["optimizer", *bbob_groups], rows)

    if reference and reference in present:
        lines += [
            "",
            f"## Wins / ties / losses of `{reference}`",
            "",
            f"Per problem, on the mean score over seeds; a difference of at most {tie:g} point is a tie. "
            f"`w/t/l` counts problems where `{reference}` is better / tied / worse than the peer.",
            "",
        ]
        rows = []
        for o in present:
            if o == reference:
                continue
            cells = []
            tot = [0, 0, 0]
            for g in groups:
                wl = wins_losses(scores, reference, tie, [p for p in scores if groups_of[p] == g]).get(o)
                if wl is None:
                    cells.append("–")
                    continue
                cells.append(f"{wl[0]}/{wl[1]}/{wl[2]}")
                tot = [a + b for a, b in zip(tot, wl, strict=True)]
            rows.append([f"`{o}`", *cells, f"**{tot[0]}/{tot[1]}/{tot[2]}**"])
        lines += _table(["peer", *groups, "total"], rows)

    if latency:
        summary = summarize_latency(latency)
        levels = sorted({lv for by in summary.values() for lv in by})
        lines += [
            "",
            "## Seconds per ask",
            "",
            f"On `{latency_problem}` ({6}-D), each optimiser warm-started with n uniformly random observations "
            f"(told, not asked), then asked {latency_asks} times, each ask told before the next: median (mean) "
            "seconds per ask. The mean shows periodic refits (SMAC3 retrains every 8 asks).",
            "",
        ]
        rows = []
        for o in [o for o in optimizers if o in summary]:
            rows.append(
                [f"`{o}`"]
                + [
                    f"{_fmt_seconds(summary[o][lv][0])} ({_fmt_seconds(summary[o][lv][1])})"
                    if lv in summary[o]
                    else "–"
                    for lv in levels
                ]
            )
        lines += _table(["optimizer", *[f"n = {lv}" for lv in levels]], rows)

    if ask_secs:
        lines += ["", "## Time spent asking during the runs", ""]
        rows = []
        for o in present:
            s = ask_secs.get(o, [])
            if s:
                rows.append(
                    [
                        f"`{o}`",
                        _fmt_seconds(float(np.median(s))),
                        _fmt_seconds(float(np.mean(s))),
                        f"{sum(s):.0f} s",
                    ]
                )
        lines += _table(["optimizer", "median per ask", "mean per ask", "total"], rows)

    notes = []
    for o, st in stats.items():
        if st.get("gp_fit_failures"):
            notes.append(
                f'`{o}`: its GP fit failed {int(st["gp_fit_failures"])} times ("jitter is too large"); HEBO then '
                "proposes from random predictions for that step — its real behaviour, not a harness error."
            )
    if errors:
        failures: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
        for r in errors:
            failures[(r.optimizer, (r.error or "").splitlines()[0][:160])].append(r)
        for (o, msg), rs in failures.items():
            notes.append(f"`{o}` failed on {len(rs)} run(s), e.g. `{rs[0].problem}` seed {rs[0].seed}: {msg}")
    missing = [(p, o) for p in scores for o in present if o not in scores[p]]
    if missing:
        notes.append(f"{len(missing)} (problem, optimiser) pairs have no results, e.g. {missing[:3]}")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]

    lines += [
        "",
        "## Method",
        "",
        "- Every optimiser runs on the same problems with the same budgets and seeds; one evaluation per "
        "configuration (SMAC3: `deterministic=True`, intensifier `max_config_calls=1`).",
        "- Final value of a run: the true value of the best point it observed. For noisy problems the optimiser "
        "sees noisy values only and is scored on the noiseless value of its best *observed* (noisy) point.",
        "- f*: the known optimum for bbob and noisy bbob (from `cocoex`), otherwise (bbob-mixint, scikit-learn) the "
        "best final value of any optimiser in this report — adding optimisers can move the scores of others there.",
        f"- Normalised score `100·(1 − (final − f*)/(median_random − f*))`, median over the `{BASELINE}` baseline's "
        "seeds; clipped below at −100 so one divergent run cannot dominate a mean.",
        "- bbob problems: COCO instance 1 on [−5, 5]^d, budget 20·d + 20; bbob-mixint: the first 80 % of the "
        "variables are integers; noisy: multiplicative log-normal noise `(f − f_opt)·exp(0.5·z)` or additive "
        "Gaussian noise (σ = 1 % of the median random gap), seeded by (run seed, evaluation index).",
        "- scikit-learn problems: 3-fold cross-validated error rate (MSE of the standardised target for diabetes), "
        "fixed fold and model seeds, budget 10·d + 20.",
        *(
            [
                f"- Budgets here are capped at {settings['max_budget']} evaluations (a smoke run, not a comparison)."
            ]
            if settings and settings.get("max_budget")
            else []
        ),
        "- HEBO and Nevergrad do not take conditional spaces: they search every parameter and the inactive ones "
        "are dropped before evaluation. Optuna suggests define-by-run; SMAC3 gets ConfigSpace conditions.",
    ]
    return "\n".join(lines) + "\n"
