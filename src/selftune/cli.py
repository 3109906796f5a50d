"""The ``selftune`` command: run a study from a YAML spec, and list, inspect, export or delete studies.

Every command takes ``--storage URL``; without it the storage is ``$SELFTUNE_STORAGE`` or
``sqlite:///selftune.db`` in the working directory. Errors from selftune print one line ``error: ...``
and exit with status 1; a malformed spec or command line exits with status 2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import importlib
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from selftune import __version__
from selftune.exceptions import InvalidParameterError, SelftuneError, StorageURLError
from selftune.samplers import RandomSampler, Sampler, SobolSampler
from selftune.space import Space
from selftune.storage import DEFAULT_STORAGE, Storage, get_storage
from selftune.storage._base import check_study_name
from selftune.study import Study, create_study, load_study
from selftune.trial import TrialRecord, TrialState

__all__ = ["cli", "main", "RunSpec", "load_spec"]

_STATE_ORDER = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.STOPPED, TrialState.FAILED)
_DIRECTIONS = ("minimize", "maximize")
_SAMPLERS: dict[str, type[Sampler]] = {"random": RandomSampler, "sobol": SobolSampler}
_SPEC_KEYS = ("study", "storage", "direction", "trials", "timeout", "sampler", "objective", "space")
_PARAM_KEYS = {
    "float": ("kind", "low", "high", "log", "step", "when"),
    "int": ("kind", "low", "high", "log", "step", "when"),
    "choice": ("kind", "choices", "when"),
}
_PARAM_REQUIRED = {"float": ("low", "high"), "int": ("low", "high"), "choice": ("choices",)}
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


# -- errors ---------------------------------------------------------------------------------------------------
class Failure(click.ClickException):
    """A runtime error (a selftune error, a failed objective): one line ``error: ...`` and status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class _Group(click.Group):
    """Turns every :class:`SelftuneError` raised by a command into a :class:`Failure`: no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SelftuneError as exc:
            raise Failure(str(exc)) from None


# -- output helpers -------------------------------------------------------------------------------------------
def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _line(console: Any, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _ordered(params: Mapping[str, Any], space: Space | None) -> dict[str, Any]:
    """``params`` in the declared space's order (when there is one), the others after them."""
    if space is None:
        return dict(params)
    out = {k: params[k] for k in space if k in params}
    out.update({k: v for k, v in params.items() if k not in out})
    return out


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_param(v)}" for k, v in params.items()) or "-"


def _fmt_time(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s"


def _fmt_counts(counts: Mapping[str, int]) -> str:
    """``"20 (18 complete, 2 failed)"``: the total, then the non-zero states in life-cycle order."""
    total = sum(counts.values())
    known = [s.value for s in _STATE_ORDER]
    parts = [f"{counts[s]} {s.lower()}" for s in known if counts.get(s)]
    parts += [f"{n} {s}" for s, n in counts.items() if str(s) not in known and n]
    return f"{total} ({', '.join(parts)})" if parts else str(total)


def _count_states(records: Sequence[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.state.value] = counts.get(r.state.value, 0) + 1
    return counts


def _json_number(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "inf" if x > 0 else ("-inf" if x < 0 else "nan")


def _ranked(records: Sequence[TrialRecord], direction: str) -> list[TrialRecord]:
    """COMPLETE trials, best first (earliest first on ties)."""
    sign = 1.0 if direction == "minimize" else -1.0
    complete = [r for r in records if r.state is TrialState.COMPLETE and r.value is not None]
    return sorted(complete, key=lambda r: (sign * float(r.value), r.number))  # type: ignore[arg-type]


# -- storage --------------------------------------------------------------------------------------------------
def _storage_text(url: str | None) -> str:
    return url if url is not None else (os.environ.get("SELFTUNE_STORAGE") or DEFAULT_STORAGE)


def _sqlite_file(text: str) -> Path | None:
    """The file an SQLite storage text points at, or None when it is not a plain SQLite file URL."""
    if "://" not in text:
        return Path(text) if text.endswith((".db", ".sqlite", ".sqlite3")) else None
    if not text.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
    except Exception:  # noqa: BLE001 - get_storage reports the malformed URL
        return None
    if url.database in (None, "", ":memory:") or url.query.get("uri"):
        return None
    return Path(url.database)


@contextlib.contextmanager
def _open_storage(url: str | None, *, must_exist: bool) -> Iterator[Storage]:
    """The storage named by ``url``; with ``must_exist``, a missing SQLite file is an error, not created."""
    text = _storage_text(url)
    if must_exist:
        path = _sqlite_file(text)
        if path is not None and not path.exists():
            raise StorageURLError(
                f"no SQLite database at {str(path)!r} (storage {text!r}); "
                "check --storage or $SELFTUNE_STORAGE, or run a study first"
            )
    storage = get_storage(text)
    try:
        yield storage
    finally:
        storage.close()


@contextlib.contextmanager
def _open_study(url: str | None, name: str) -> Iterator[Study]:
    with _open_storage(url, must_exist=True) as storage, load_study(name, storage=storage) as study:
        yield study


def _storage_option(help_extra: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--storage",
        "storage",
        metavar="URL",
        default=None,
        help="Storage URL: sqlite:///path.db, postgresql://user@host/db or memory "
        f"[default: $SELFTUNE_STORAGE or {DEFAULT_STORAGE}]{help_extra}",
    )


# -- the command group ----------------------------------------------------------------------------------------
@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="selftune")
def cli() -> None:
    """selftune: hyperparameter optimization with durable studies."""


@cli.command()
@_storage_option()
def studies(storage: str | None) -> None:
    """List the studies in the storage."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    with _open_storage(storage, must_exist=True) as st:
        summaries = st.list_studies()
        url = st.url
    if not summaries:
        _line(console, f"no studies in {url}")
        return
    _line(console, f"studies in {url}")
    table = Table()
    for col, justify in (("name", "left"), ("direction", "left"), ("trials", "left"), ("best", "right"),
                         ("created", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(
            Text(s.info.name),
            s.info.direction,
            _fmt_counts(s.counts),
            _fmt_value(s.best_value),
            _fmt_time(s.info.created_at),
        )
    console.print(table)


@cli.command()
@click.argument("name")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1),
              help="How many of the best COMPLETE trials to list.")
@_storage_option()
def show(name: str, top: int, storage: str | None) -> None:
    """Summarise study NAME and list its best trials."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    with _open_study(storage, name) as study:
        info = study.storage.get_study(name)
        history = study.history()
        records = list(history.trials)
        url = study.storage.url
        space = study.space
        params = list(space) if space is not None else list(history.params)
    ranked = _ranked(records, study.direction)
    rows = [
        ("study", name),
        ("storage", url),
        ("direction", study.direction),
        ("created", _fmt_time(info.created_at)),
        ("space", (", ".join(params) or "-") + (" (declared)" if space is not None else " (define-by-run)")),
        ("trials", _fmt_counts(_count_states(records))),
        ("best", f"{_fmt_value(ranked[0].value)} (trial {ranked[0].number})" if ranked else "- (no COMPLETE trial)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _line(console, f"{key:<{width}}  {value}")
    if not ranked:
        return
    shown = ranked[:top]
    table = Table(title=Text(f"best {len(shown)} of {len(ranked)} complete trials"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("value", justify="right")
    table.add_column("params", overflow="fold")
    table.add_column("duration", justify="right")
    for r in shown:
        params_text = _fmt_params(_ordered(r.params, space))
        table.add_row(str(r.number), _fmt_value(r.value), Text(params_text), _fmt_duration(r.duration))
    console.print()
    console.print(table)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (study, direction, number, value, params).")
@_storage_option()
def best(name: str, as_json: bool, storage: str | None) -> None:
    """Print the best trial of study NAME."""
    with _open_study(storage, name) as study:
        try:
            record = study.best
        except ValueError:
            raise Failure(f"study {name!r} has no COMPLETE trial yet") from None
        direction = study.direction
        params = _ordered(record.params, study.space)
    if as_json:
        doc = {
            "study": name,
            "direction": direction,
            "number": record.number,
            "value": _json_number(record.value),
            "params": params,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"trial   {record.number}")
    click.echo(f"value   {record.value!r}")
    click.echo("params" + ("" if params else "  -"))
    for key, value in params.items():
        click.echo(f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")


@cli.command()
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="File format [default: from the file's suffix].")
@_storage_option()
def export(name: str, output: Path, fmt: str | None, storage: str | None) -> None:
    """Write the trials of study NAME to a CSV or JSON file."""
    with _open_study(storage, name) as study:
        try:
            path = study.export(output, fmt)
        except OSError as exc:
            raise Failure(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        n = len(study.trials)
    click.echo(f"wrote {n} trial(s) of study {name!r} to {path}")


@cli.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@_storage_option()
def delete(name: str, yes: bool, storage: str | None) -> None:
    """Delete study NAME and all its trials."""
    with _open_storage(storage, must_exist=True) as st:
        info = st.get_study(name)
        n = len(st.read_trials(info.id)[0])
        if not yes:
            click.confirm(f"Delete study {name!r} and its {n} trial(s) from {st.url}?", abort=True)
        st.delete_study(name)
    click.echo(f"deleted study {name!r} ({n} trial(s))")


# -- run ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """A validated run spec (see ``selftune run --help``)."""

    path: Path
    study: str
    objective: str
    storage: str | None = None
    direction: str = "minimize"
    trials: int | None = None
    timeout: float | None = None
    sampler: str = "random"
    seed: int | None = None
    space: Space | None = None


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` and ``1e3`` as floats (YAML 1.1 wants ``1.0e-3``)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _spec_error(path: Path, message: str) -> click.UsageError:
    return click.UsageError(f"{path}: {message}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_space(path: Path, data: Any) -> Space:
    if not isinstance(data, Mapping) or not data:
        raise _spec_error(
            path, f"`space` must map parameter names to domains like {{kind: float, low: 0, high: 1}}, got {data!r}"
        )
    for name, entry in data.items():
        where = f"`space.{name}`"
        if not isinstance(entry, Mapping):
            raise _spec_error(path, f"{where} must be a mapping with `kind` and its domain, got {entry!r}")
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in _PARAM_KEYS:
            raise _spec_error(path, f"{where}: `kind` must be one of {sorted(_PARAM_KEYS)}, got {kind!r}")
        unknown = [k for k in entry if k not in _PARAM_KEYS[kind]]
        if unknown:
            raise _spec_error(
                path, f"{where}: unknown key {unknown[0]!r} for kind {kind}; expected {list(_PARAM_KEYS[kind])}"
            )
        missing = [k for k in _PARAM_REQUIRED[kind] if k not in entry]
        if missing:
            raise _spec_error(path, f"{where}: missing key {missing[0]!r} for kind {kind}")
        if kind == "choice" and not isinstance(entry["choices"], list):
            raise _spec_error(path, f"{where}: `choices` must be a list, got {entry['choices']!r}")
        if "log" in entry and not isinstance(entry["log"], bool):
            raise _spec_error(path, f"{where}: `log` must be true or false, got {entry['log']!r}")
        when = entry.get("when")
        if when is not None and not isinstance(when, Mapping):
            raise _spec_error(path, f"{where}: `when` must map parent names to a value or a list, got {when!r}")
    try:
        return Space.from_json({str(k): dict(v) for k, v in data.items()})
    except (InvalidParameterError, TypeError) as exc:
        raise _spec_error(path, f"`space`: {exc}") from None


def load_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate a run spec; raises :class:`click.UsageError` naming the bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _spec_error(path, f"cannot read the spec: {exc.strerror or exc}") from None
    try:
        data = yaml_load(text)
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and friends
        raise _spec_error(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise _spec_error(path, f"the spec must be a YAML mapping of {', '.join(_SPEC_KEYS)}; got {data!r}")
    for key in data:
        if key not in _SPEC_KEYS:
            close = difflib.get_close_matches(str(key), _SPEC_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _spec_error(path, f"unknown key {key!r}{hint}; expected keys: {', '.join(_SPEC_KEYS)}")

    if "study" not in data:
        raise _spec_error(path, "missing key `study`: the study's name")
    study = data["study"]
    if not isinstance(study, str):
        raise _spec_error(path, f"`study` must be a string (the study's name), got {study!r}")
    try:
        check_study_name(study)
    except InvalidParameterError as exc:
        raise _spec_error(path, f"`study`: {exc}") from None

    if "objective" not in data:
        raise _spec_error(path, "missing key `objective`: the objective function as 'module:function'")
    objective = data["objective"]
    if not isinstance(objective, str) or objective.count(":") != 1:
        raise _spec_error(path, f"`objective` must be 'module:function' (e.g. my_objective:objective), got {objective!r}")
    mod, func = (s.strip() for s in objective.split(":"))
    if not _DOTTED.fullmatch(mod) or not _DOTTED.fullmatch(func):
        raise _spec_error(path, f"`objective` must be 'module:function' (e.g. my_objective:objective), got {objective!r}")

    storage = data.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise _spec_error(path, f"`storage` must be a storage URL such as sqlite:///selftune.db, got {storage!r}")

    direction = data.get("direction", "minimize")
    if direction not in _DIRECTIONS:
        raise _spec_error(path, f"`direction` must be 'minimize' or 'maximize', got {direction!r}")

    trials = data.get("trials")
    if trials is not None and not (_is_int(trials) and trials >= 0):
        raise _spec_error(path, f"`trials` must be an integer >= 0 (the study-wide budget), got {trials!r}")
    timeout = data.get("timeout")
    if timeout is not None and not (_is_number(timeout) and timeout > 0 and math.isfinite(timeout)):
        raise _spec_error(path, f"`timeout` must be a number of seconds > 0, got {timeout!r}")

    sampler, seed = _check_sampler(path, data.get("sampler", "random"))
    space = _check_space(path, data["space"]) if data.get("space") is not None else None
    return RunSpec(
        path=path, study=study, objective=f"{mod}:{func}", storage=storage, direction=direction,
        trials=trials, timeout=None if timeout is None else float(timeout), sampler=sampler, seed=seed, space=space,
    )


def yaml_load(text: str) -> Any:
    """Parse YAML text as a spec does (safe; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - _SpecLoader is a SafeLoader


def _check_sampler(path: Path, value: Any) -> tuple[str, int | None]:
    names = ", ".join(_SAMPLERS)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise _spec_error(path, f"`sampler` must be a name ({names}) or {{name: ..., seed: ...}}, got {value!r}")
    unknown = [k for k in value if k not in ("name", "seed")]
    if unknown:
        raise _spec_error(path, f"`sampler`: unknown key {unknown[0]!r}; expected name, seed")
    name = value.get("name")
    if name not in _SAMPLERS:
        raise _spec_error(path, f"`sampler.name` must be one of {names}, got {name!r}")
    seed = value.get("seed")
    if seed is not None and not _is_int(seed):
        raise _spec_error(path, f"`sampler.seed` must be an integer, got {seed!r}")
    return name, seed


def _import_objective(spec: RunSpec) -> Callable[..., Any]:
    """Import ``module:function`` with the spec's directory and the working directory on ``sys.path``."""
    mod_name, attr = spec.objective.split(":")
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            dirs = ", ".join(repr(d) for d in dict.fromkeys([str(spec.path.resolve().parent), os.getcwd()]))
            raise _spec_error(
                spec.path,
                f"`objective`: cannot import module {mod_name!r} (looked in {dirs} and the installed packages)",
            ) from None
        raise _spec_error(spec.path, f"`objective`: importing {mod_name!r} failed: ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any error raised while the module runs
        raise _spec_error(
            spec.path, f"`objective`: importing {mod_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _spec_error(spec.path, f"`objective`: module {mod_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise _spec_error(
            spec.path, f"`objective`: {spec.objective!r} is a {type(target).__name__}, not a function"
        )
    return target


@contextlib.contextmanager
def _import_path(*dirs: Path) -> Iterator[None]:
    """Put ``dirs`` first on ``sys.path`` (those not there already) and take them off afterwards."""
    added = []
    for d in reversed(dirs):
        entry = str(d)
        if entry not in sys.path:
            sys.path.insert(0, entry)
            added.append(entry)
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


@cli.command()
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_storage_option(help_extra="; overrides the spec's `storage`")
@click.option("--trials", type=click.IntRange(min=0), default=None,
              help="Study-wide trial budget; overrides the spec's `trials`.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop starting trials after this many seconds; overrides the spec's `timeout`.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def run(spec_path: Path, storage: str | None, trials: int | None, timeout: float | None, no_progress: bool) -> None:
    """Run (or resume) the study described by SPEC.yaml.

    \b
    study: digits-svm                 # the study's name (required)
    storage: sqlite:///selftune.db    # optional; --storage overrides it
    direction: maximize               # minimize (default) | maximize
    trials: 30                        # the study-wide budget: a rerun resumes up to it
    timeout: 600                      # optional, seconds
    sampler: {name: sobol, seed: 0}   # random (default) | sobol
    objective: my_objective:objective # module:function (required)
    space:                            # optional declared space
      C: {kind: float, low: 0.001, high: 1000, log: true}
      kernel: {kind: choice, choices: [rbf, linear]}
      gamma: {kind: float, low: 0.0001, high: 1, log: true, when: {kernel: rbf}}

    The objective's module is imported with the spec's directory and the working directory on sys.path.
    A relative SQLite path (sqlite:///selftune.db) is relative to the working directory. The objective
    gets a Trial; with a declared space, trial.params holds the values chosen for it.
    """
    spec = load_spec(spec_path)
    budget = trials if trials is not None else spec.trials
    limit = timeout if timeout is not None else spec.timeout
    if budget is None and limit is None:
        raise _spec_error(spec.path, "set `trials` (the study-wide budget) or `timeout`, or pass --trials")
    console = _console()
    with _import_path(spec.path.resolve().parent, Path.cwd()):
        objective = _import_objective(spec)
        sampler = _SAMPLERS[spec.sampler](seed=spec.seed)
        with contextlib.ExitStack() as stack:
            st = get_storage(storage if storage is not None else spec.storage)
            stack.callback(st.close)
            study = stack.enter_context(
                create_study(spec.study, storage=st, direction=spec.direction, space=spec.space, sampler=sampler)
            )
            done = len(study.trials)
            plan = f"budget {budget} trial(s)" if budget is not None else "no trial budget"
            if limit is not None:
                plan += f", timeout {limit:g}s"
            _line(console, f"study {spec.study!r} ({spec.direction}) in {st.url}: {done} trial(s) so far; {plan}")
            try:
                study.optimize(objective, trials=budget, timeout=limit, progress=not no_progress)
            except KeyboardInterrupt:
                click.echo("interrupted: the running trial is recorded as FAILED; rerun to resume", err=True)
                raise click.exceptions.Exit(130) from None
            except SelftuneError:
                raise
            except Exception as exc:  # noqa: BLE001 - the objective raised: show its traceback, then one line
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
                failed = [r for r in study.trials if r.state is TrialState.FAILED and r.worker == study.worker]
                which = f"trial {failed[-1].number}" if failed else "a trial"
                raise Failure(
                    f"the objective raised {type(exc).__name__}: {exc} ({which} is recorded as FAILED; "
                    "rerun to resume)"
                ) from None
            _summary(console, study)


def _summary(console: Any, study: Study) -> None:
    records = study.trials
    ranked = _ranked(records, study.direction)
    _line(console, f"trials       {_fmt_counts(_count_states(records))}")
    if not ranked:
        _line(console, "best value   - (no COMPLETE trial)")
        return
    top = ranked[0]
    _line(console, f"best value   {top.value!r} (trial {top.number})")
    params = _ordered(top.params, study.space)
    _line(console, "best params" + ("  -" if not params else ""))
    for key, value in params.items():
        _line(console, f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``selftune`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="selftune")


if __name__ == "__main__":  # pragma: no cover
    main()
