"""The ``selftune`` command: run a study from a YAML spec; list, inspect, export or delete studies; serve a
live dashboard or write an HTML report.

Every command takes ``--storage URL``; without it the storage is ``$SELFTUNE_STORAGE`` or
``sqlite:///selftune.db`` in the working directory. Errors from selftune print one line ``error: ...``
and exit with status 1; a malformed spec or command line exits with status 2.

The run spec (its loader and checks) lives in :mod:`selftune.cli._spec`, the output formatting in
:mod:`selftune.cli._format`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from selftune import __version__
from selftune.cli._format import (
    count_states,
    fmt_counts,
    fmt_duration,
    fmt_params,
    fmt_time,
    fmt_value,
    json_number,
    line,
    new_console,
    ordered,
    rank_complete,
)
from selftune.cli._spec import (
    RUN_ATTR,
    RunSpec,
    import_objective,
    import_path,
    load_spec,
    make_sampler,
    spec_error,
)
from selftune.cli._spec import yaml_load as yaml_load
from selftune.exceptions import SelftuneError, StorageURLError
from selftune.storage import DEFAULT_STORAGE, Storage, get_storage
from selftune.study import Study, create_study, load_study
from selftune.trial import TrialState

__all__ = ["cli", "main", "RunSpec", "load_spec"]


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

    console = new_console()
    with _open_storage(storage, must_exist=True) as st:
        summaries = st.list_studies()
        url = st.url
    if not summaries:
        line(console, f"no studies in {url}")
        return
    line(console, f"studies in {url}")
    table = Table()
    for col, justify in (("name", "left"), ("direction", "left"), ("trials", "left"), ("best", "right"),
                         ("created", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(
            Text(s.info.name),
            s.info.direction,
            fmt_counts(s.counts),
            fmt_value(s.best_value),
            fmt_time(s.info.created_at),
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

    console = new_console()
    with _open_study(storage, name) as study:
        info = study.storage.get_study(name)
        history = study.history()
        records = list(history.trials)
        url = study.storage.url
        space = study.space
        params = list(space) if space is not None else list(history.params)
    ranked = rank_complete(records, study.direction)
    rows = [
        ("study", name),
        ("storage", url),
        ("direction", study.direction),
        ("created", fmt_time(info.created_at)),
        ("space", (", ".join(params) or "-") + (" (declared)" if space is not None else " (define-by-run)")),
        ("trials", fmt_counts(count_states(records))),
        ("best", f"{fmt_value(ranked[0].value)} (trial {ranked[0].number})" if ranked else "- (no COMPLETE trial)"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        line(console, f"{key:<{width}}  {value}")
    if not ranked:
        return
    shown = ranked[:top]
    table = Table(title=Text(f"best {len(shown)} of {len(ranked)} complete trials"), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("value", justify="right")
    table.add_column("params", overflow="fold")
    table.add_column("duration", justify="right")
    for r in shown:
        params_text = fmt_params(ordered(r.params, space))
        table.add_row(str(r.number), fmt_value(r.value), Text(params_text), fmt_duration(r.duration))
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
        params = ordered(record.params, study.space)
    if as_json:
        doc = {
            "study": name,
            "direction": direction,
            "number": record.number,
            "value": json_number(record.value),
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


# -- dashboard and report -------------------------------------------------------------------------------------
@cli.command()
@_storage_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; 0.0.0.0 exposes the dashboard to the network.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the address is printed).")
@click.option("--token", envvar="SELFTUNE_DASHBOARD_TOKEN", default=None, metavar="TOKEN",
              help="Enable the write endpoints (delete a study, set its note) for requests that send this "
              "token in the X-Selftune-Token header [default: $SELFTUNE_DASHBOARD_TOKEN; unset: read-only].")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also answer requests addressed to this host name (repeatable); loopback names always.")
@click.option("--refresh", default=2.0, show_default=True, type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="How often the page polls for new trials.")
def dashboard(storage: str | None, host: str, port: int, token: str | None, allow_hosts: tuple[str, ...],
              refresh: float) -> None:
    """Serve a live web dashboard of the studies in the storage.

    Read-only unless started with --token; binds 127.0.0.1 unless told otherwise; serves Plotly from the
    installed package and sends nothing anywhere. Needs: pip install 'selftune[dashboard]'.
    """
    from selftune.dashboard import serve

    if token is not None and not token.strip():
        raise click.BadParameter("the token must not be empty", param_hint="--token")
    with _open_storage(storage, must_exist=True) as st:
        def ready(url: str) -> None:
            mode = "writes need the token" if token is not None else "read-only"
            click.echo(f"selftune dashboard of {st.url} at {url} ({mode}); Ctrl+C to stop", err=True)

        try:
            serve(st, host=host, port=port, token=token, allow_hosts=allow_hosts, refresh=refresh, on_ready=ready)
        except OSError as exc:
            raise Failure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        except KeyboardInterrupt:
            pass


@cli.command()
@click.argument("name")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write.")
@_storage_option()
def report(name: str, output: Path, storage: str | None) -> None:
    """Write study NAME as one self-contained HTML file (figures, summary, best trials; works offline).

    Needs: pip install 'selftune[dashboard]'.
    """
    from selftune.analysis.report import write_report

    with _open_study(storage, name) as study:
        try:
            path = write_report(study, output)
        except OSError as exc:
            raise Failure(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        n = len(study.trials)
    click.echo(f"wrote the report of study {name!r} ({n} trial(s)) to {path}")


# -- run ------------------------------------------------------------------------------------------------------
@cli.command()
@click.argument("spec_path", metavar="SPEC.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_storage_option(help_extra="; overrides the spec's `storage`")
@click.option("--trials", type=click.IntRange(min=0), default=None,
              help="Study-wide trial budget; overrides the spec's `trials`.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop starting trials after this many seconds; overrides the spec's `timeout`.")
@click.option("--test-seeds", type=click.IntRange(min=0), default=None, metavar="N",
              help="Re-run the best trial on N test seeds afterwards (0: don't); overrides the spec's `test_seeds`.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="K",
              help="Run trials in K local worker processes; overrides the spec's `workers`.")
@click.option("--retries", type=click.IntRange(min=0), default=None, metavar="N",
              help="Re-run a trial lost to a dead or hung worker up to N times; overrides the spec's `retries`.")
@click.option("--trial-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Fail a trial (and kill its worker) after this many seconds; overrides the spec's `trial_timeout`.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def run(
    spec_path: Path,
    storage: str | None,
    trials: int | None,
    timeout: float | None,
    test_seeds: int | None,
    workers: int | None,
    retries: int | None,
    trial_timeout: float | None,
    no_progress: bool,
) -> None:
    """Run (or resume) the study described by SPEC.yaml.

    \b
    study: digits-svm                 # the study's name (required)
    storage: sqlite:///selftune.db    # optional; --storage overrides it
    direction: maximize               # minimize (default) | maximize
    trials: 30                        # the study-wide budget: a rerun resumes up to it
    timeout: 600                      # optional, seconds
    sampler: {name: tpe, seed: 0}     # auto (default) | tpe | gp | cmaes | random | sobol
    scheduler: {name: asha, max_resource: 27}  # optional early stopping:
                                      # asha | successive-halving | hyperband | median | percentile
                                      # | pbt | pb2 (population based training)
    objective: my_objective:objective # module:function (required)
    test_seeds: 3                     # then re-run the best trial on 3 test seeds (default; 0: don't)
    workers: 4                        # optional: 4 local worker processes (default 1: this process)
    retries: 2                        # optional: re-run a trial lost to a dead or hung worker, twice at most
    trial_timeout: 3600               # optional: kill a trial's worker after this many seconds
    heartbeat_interval: 10            # optional: seconds between a running trial's heartbeats (default 10)
    grace_period: 60                  # optional: a trial without one for this long is FAILED as lost (60)
    space:                            # optional declared space
      C: {kind: float, low: 0.001, high: 1000, log: true}
      kernel: {kind: choice, choices: [rbf, linear]}
      gamma: {kind: float, low: 0.0001, high: 1, log: true, when: {kernel: rbf}}

    After the budget, the best trial (a PBT member: its schedule, replayed) is re-run on test seeds that no
    tuning trial used (trial.seed; tuning seeds are trial numbers, test seeds start at 1,000,000) and the
    mean with a 95% confidence interval is printed and kept as the study attribute `test_evaluation`:
    report that, not the best tuning value, which is biased upwards by the selection.

    More workers can join from other processes or machines with `selftune worker STUDY --storage URL`
    (the spec's objective, sampler, scheduler and budget are kept in the study for them).

    The objective's module is imported with the spec's directory and the working directory on sys.path.
    A relative SQLite path (sqlite:///selftune.db) is relative to the working directory. The objective
    gets a Trial; with a declared space, trial.params holds the values chosen for it.
    """
    spec = load_spec(spec_path)
    budget = trials if trials is not None else spec.trials
    limit = timeout if timeout is not None else spec.timeout
    n_workers = workers if workers is not None else spec.workers
    n_retries = retries if retries is not None else spec.retries
    t_limit = trial_timeout if trial_timeout is not None else spec.trial_timeout
    if budget is None and limit is None:
        raise spec_error(spec.path, "set `trials` (the study-wide budget) or `timeout`, or pass --trials")
    console = new_console()
    with import_path(spec.path.resolve().parent, Path.cwd()):
        objective = import_objective(spec)
        sampler = make_sampler(spec.sampler, spec.seed)
        with contextlib.ExitStack() as stack:
            st = get_storage(storage if storage is not None else spec.storage)
            stack.callback(st.close)
            study = stack.enter_context(
                create_study(
                    spec.study,
                    storage=st,
                    direction=spec.direction,
                    space=spec.space,
                    sampler=sampler,
                    scheduler=spec.make_scheduler(),
                    heartbeat_interval=spec.heartbeat_interval,
                    grace_period=spec.grace_period,
                )
            )
            done = len(study.trials)
            plan = f"budget {budget} trial(s)" if budget is not None else "no trial budget"
            if limit is not None:
                plan += f", timeout {limit:g}s"
            if n_workers > 1:
                plan += f", {n_workers} workers"
            line(console, f"study {spec.study!r} ({spec.direction}) in {st.url}: {done} trial(s) so far; {plan}")
            stored = dataclasses.replace(spec, trials=budget, timeout=limit, retries=n_retries, trial_timeout=t_limit)
            study.set_attr(RUN_ATTR, stored.to_run_attr())  # for `selftune worker`
            try:
                study.optimize(
                    objective, trials=budget, timeout=limit, progress=not no_progress, workers=n_workers,
                    retries=n_retries, trial_timeout=t_limit,
                )
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
            n_test = test_seeds if test_seeds is not None else spec.test_seeds
            if n_test > 0 and any(r.state is TrialState.COMPLETE for r in study.trials):
                _test_seeds(console, study, objective, n_test)


@cli.command()
@click.argument("name")
@_storage_option()
@click.option("--objective", default=None, metavar="MODULE:FUNCTION",
              help="The objective, if the study was not started by `selftune run` (or to override it).")
@click.option("--trials", type=click.IntRange(min=0), default=None,
              help="Study-wide trial budget; overrides the one `selftune run` stored.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Local worker processes this command runs.")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds between a running trial's heartbeats; overrides the one `selftune run` stored (else 10).")
@click.option("--grace-period", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="A trial without a heartbeat for this long is FAILED as lost; overrides the one `selftune run` "
                   "stored (else 60). Give every process of a study the same values.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
def worker(
    name: str,
    storage: str | None,
    objective: str | None,
    trials: int | None,
    workers: int,
    heartbeat_interval: float | None,
    grace_period: float | None,
    no_progress: bool,
) -> None:
    """Join study NAME and run its trials until the study's trial budget is met.

    Start it on any machine that reaches the storage (PostgreSQL for many machines); workers can come and go.
    The objective, sampler, scheduler, budget, retries and trial timeout are those `selftune run` stored in
    the study; the objective's module is imported from the spec's directory (if it exists here) and the
    working directory. So are the heartbeat interval and grace period: a process whose heartbeats are
    further apart than another's grace period would have its live trials reaped by it.
    """
    with contextlib.ExitStack() as stack:
        st = stack.enter_context(_open_storage(storage, must_exist=True))
        stored = dict(st.get_study(name).user_attrs.get(RUN_ATTR) or {})
        beat = heartbeat_interval if heartbeat_interval is not None else float(stored.get("heartbeat_interval") or 10)
        grace = grace_period if grace_period is not None else float(stored.get("grace_period") or 60)
        if not grace >= 2 * beat:
            raise Failure(f"--grace-period must be at least twice the heartbeat interval ({2 * beat:g} s), got {grace:g}")
        study = stack.enter_context(load_study(name, storage=st, heartbeat_interval=beat, grace_period=grace))
        target = objective or stored.get("objective")
        if not target:
            raise Failure(
                f"study {name!r} was not started by `selftune run`, so it does not say what to run: "
                "pass --objective module:function"
            )
        budget = trials if trials is not None else stored.get("trials")
        if budget is None:
            raise Failure(f"study {name!r} has no stored trial budget: pass --trials N")
        spec_dir = Path(stored.get("dir") or os.getcwd())
        spec = RunSpec(path=spec_dir / "(selftune worker)", study=name, objective=target)
        dirs = [d for d in (spec_dir, Path.cwd()) if d.is_dir()]
        with import_path(*dirs):
            fn = import_objective(spec)
            study.sampler = make_sampler(stored.get("sampler") or "auto", stored.get("seed"))
            sched = stored.get("scheduler")
            if sched:
                study.scheduler = RunSpec(path=spec.path, study=name, objective=target,
                                          scheduler=(str(sched[0]), dict(sched[1]))).make_scheduler()
            console = new_console()
            line(console, f"worker joins study {name!r} in {study.storage.url}: budget {budget} trial(s)")
            try:
                study.optimize(
                    fn, trials=budget, progress=not no_progress, workers=workers,
                    retries=int(stored.get("retries") or 0), trial_timeout=stored.get("trial_timeout"),
                )
            except KeyboardInterrupt:
                click.echo("interrupted: the running trial is recorded as FAILED", err=True)
                raise click.exceptions.Exit(130) from None
            _summary(console, study)


def _test_seeds(console: Any, study: Study, objective: Callable[..., Any], n: int) -> None:
    """Re-run the best trial on ``n`` test seeds; print and keep the mean and its confidence interval."""
    from selftune import protocol

    try:
        (result,) = protocol.evaluate(objective, study, seeds=n)
    except SelftuneError:
        raise
    except Exception as exc:  # noqa: BLE001 - the objective raised on a test seed
        raise Failure(f"re-running the best trial on test seeds: the objective raised {type(exc).__name__}: {exc}")
    study.set_attr("test_evaluation", result.to_json())
    line(console, f"test seeds   {result.mean!r} ± {result.half_width:.3g} (95% CI, {n} seeds: "
                  f"{', '.join(str(s) for s in result.seeds)}); report this, not the best tuning value")


def _summary(console: Any, study: Study) -> None:
    records = study.trials
    ranked = rank_complete(records, study.direction)
    line(console, f"trials       {fmt_counts(count_states(records))}")
    if not ranked:
        line(console, "best value   - (no COMPLETE trial)")
        return
    top = ranked[0]
    line(console, f"best value   {top.value!r} (trial {top.number})")
    params = ordered(top.params, study.space)
    line(console, "best params" + ("  -" if not params else ""))
    for key, value in params.items():
        line(console, f"  {key}: {value if isinstance(value, str) else json.dumps(value)}")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``selftune`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="selftune")
