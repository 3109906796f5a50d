"""The run spec of ``selftune run``: the YAML loader, the validated :class:`RunSpec`, and its objective.

Every problem with a spec is a :class:`click.UsageError` (exit status 2) that starts with the spec's path
and names the bad key. The domains under ``space`` are checked by :meth:`Space.from_json`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

import selftune.samplers as _samplers
from selftune.exceptions import InvalidParameterError
from selftune.samplers import Sampler
from selftune.space import Space
from selftune.storage._base import check_study_name

__all__ = ["RUN_ATTR", "RunSpec", "SAMPLERS", "make_sampler", "load_spec", "yaml_load", "spec_error", "import_objective", "import_path"]

#: spec `sampler.name` -> the sampler class's name in selftune.samplers (looked up on use: GP imports lazily)
_SAMPLER_CLASSES = {
    "auto": "AutoSampler",
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "cmaes": "CMAESSampler",
    "random": "RandomSampler",
    "sobol": "SobolSampler",
}


def make_sampler(name: str, seed: int | None) -> Sampler:
    """The sampler a spec names, seeded."""
    cls: type[Sampler] = getattr(_samplers, _SAMPLER_CLASSES[name])
    return cls(seed=seed)


SAMPLERS = tuple(_SAMPLER_CLASSES)
_DIRECTIONS = ("minimize", "maximize")
_SPEC_KEYS = (
    "study", "storage", "direction", "trials", "timeout", "sampler", "scheduler", "objective", "space", "test_seeds",
    "workers", "retries", "trial_timeout", "heartbeat_interval", "grace_period",
)
#: the study attribute where `selftune run` keeps what `selftune worker` needs to join the study
RUN_ATTR = "selftune:run"
#: how many test seeds ``selftune run`` re-runs the best trial on, unless the spec says otherwise
DEFAULT_TEST_SEEDS = 3

#: spec `scheduler.name` -> the class's name in selftune.schedulers
SCHEDULERS = {
    "asha": "ASHAScheduler",
    "successive-halving": "SuccessiveHalvingScheduler",
    "hyperband": "HyperbandScheduler",
    "median": "MedianStopping",
    "percentile": "PercentileStopping",
    "pbt": "PopulationBasedTraining",
    "pb2": "PB2",
}
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


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
    sampler: str = "auto"
    seed: int | None = None
    space: Space | None = None
    #: after the budget, re-run the best trial on this many test seeds (0: do not)
    test_seeds: int = DEFAULT_TEST_SEEDS
    #: the scheduler's name and keyword arguments, or None
    scheduler: tuple[str, dict[str, Any]] | None = None
    #: local worker processes (1: the objective runs in the `selftune run` process)
    workers: int = 1
    #: re-runs of a trial lost to a dead or hung worker
    retries: int = 0
    #: seconds after which a trial's worker is killed and the trial fails (None: no limit)
    trial_timeout: float | None = None
    #: seconds between a worker's heartbeats, and without one before its trial is failed as lost (the
    #: study's defaults); stored for `selftune worker`, so every process of the study reaps by the same rule
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0

    def to_run_attr(self) -> dict[str, Any]:
        """What `selftune worker` needs to join this study from another process or machine (JSON)."""
        return {
            "objective": self.objective, "dir": str(self.path.resolve().parent), "trials": self.trials,
            "timeout": self.timeout, "sampler": self.sampler, "seed": self.seed,
            "scheduler": None if self.scheduler is None else [self.scheduler[0], self.scheduler[1]],
            "retries": self.retries, "trial_timeout": self.trial_timeout,
            "heartbeat_interval": self.heartbeat_interval, "grace_period": self.grace_period,
        }

    def make_scheduler(self) -> Any:
        """The early-stopping scheduler the spec names, or None."""
        if self.scheduler is None:
            return None
        import selftune.schedulers as _schedulers

        name, kwargs = self.scheduler
        return getattr(_schedulers, SCHEDULERS[name])(**kwargs)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` and ``1e3`` as floats (YAML 1.1 wants ``1.0e-3``)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text as a spec does (safe; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - _SpecLoader is a SafeLoader


def spec_error(path: Path, message: str) -> click.UsageError:
    """A problem with the spec at ``path``: ``Error: PATH: MESSAGE`` and exit status 2."""
    return click.UsageError(f"{path}: {message}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_space(path: Path, data: Any) -> Space:
    """The declared space; :meth:`Space.from_json` checks the domains and its errors name the parameter."""
    if not isinstance(data, Mapping) or not data:
        raise spec_error(
            path, f"`space` must map parameter names to domains like {{kind: float, low: 0, high: 1}}, got {data!r}"
        )
    domains = {str(k): v for k, v in data.items()}
    try:
        return Space.from_json(domains)
    except InvalidParameterError as exc:
        raise spec_error(path, f"`space`: {exc}") from None


def load_spec(path: str | os.PathLike[str]) -> RunSpec:
    """Read and validate a run spec; raises :class:`click.UsageError` naming the bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise spec_error(path, f"cannot read the spec: {exc.strerror or exc}") from None
    try:
        data = yaml_load(text)
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and friends
        raise spec_error(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise spec_error(path, f"the spec must be a YAML mapping of {', '.join(_SPEC_KEYS)}; got {data!r}")
    for key in data:
        if key not in _SPEC_KEYS:
            close = difflib.get_close_matches(str(key), _SPEC_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise spec_error(path, f"unknown key {key!r}{hint}; expected keys: {', '.join(_SPEC_KEYS)}")

    if "study" not in data:
        raise spec_error(path, "missing key `study`: the study's name")
    study = data["study"]
    if not isinstance(study, str):
        raise spec_error(path, f"`study` must be a string (the study's name), got {study!r}")
    try:
        check_study_name(study)
    except InvalidParameterError as exc:
        raise spec_error(path, f"`study`: {exc}") from None

    if "objective" not in data:
        raise spec_error(path, "missing key `objective`: the objective function as 'module:function'")
    objective = data["objective"]
    if not isinstance(objective, str) or objective.count(":") != 1:
        raise spec_error(path, f"`objective` must be 'module:function' (e.g. my_objective:objective), got {objective!r}")
    mod, func = (s.strip() for s in objective.split(":"))
    if not _DOTTED.fullmatch(mod) or not _DOTTED.fullmatch(func):
        raise spec_error(path, f"`objective` must be 'module:function' (e.g. my_objective:objective), got {objective!r}")

    storage = data.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise spec_error(path, f"`storage` must be a storage URL such as sqlite:///selftune.db, got {storage!r}")

    direction = data.get("direction", "minimize")
    if direction not in _DIRECTIONS:
        raise spec_error(path, f"`direction` must be 'minimize' or 'maximize', got {direction!r}")

    trials = data.get("trials")
    if trials is not None and not (_is_int(trials) and trials >= 0):
        raise spec_error(path, f"`trials` must be an integer >= 0 (the study-wide budget), got {trials!r}")
    timeout = data.get("timeout")
    if timeout is not None and not (_is_number(timeout) and timeout > 0 and math.isfinite(timeout)):
        raise spec_error(path, f"`timeout` must be a number of seconds > 0, got {timeout!r}")

    test_seeds = data.get("test_seeds", DEFAULT_TEST_SEEDS)
    if not (_is_int(test_seeds) and test_seeds >= 0):
        raise spec_error(path, f"`test_seeds` must be an integer >= 0 (0: no test-seed evaluation), got {test_seeds!r}")
    workers = data.get("workers", 1)
    if not (_is_int(workers) and workers >= 1):
        raise spec_error(path, f"`workers` must be an integer >= 1 (local worker processes), got {workers!r}")
    retries = data.get("retries", 0)
    if not (_is_int(retries) and retries >= 0):
        raise spec_error(path, f"`retries` must be an integer >= 0, got {retries!r}")
    trial_timeout = data.get("trial_timeout")
    if trial_timeout is not None and not (_is_number(trial_timeout) and trial_timeout > 0 and math.isfinite(trial_timeout)):
        raise spec_error(path, f"`trial_timeout` must be a number of seconds > 0, got {trial_timeout!r}")
    beat = data.get("heartbeat_interval", 10.0)
    if not (_is_number(beat) and beat > 0 and math.isfinite(beat)):
        raise spec_error(path, f"`heartbeat_interval` must be a number of seconds > 0, got {beat!r}")
    grace = data.get("grace_period", 60.0)
    if not (_is_number(grace) and math.isfinite(grace) and grace >= 2 * beat):
        raise spec_error(
            path, f"`grace_period` must be a number of seconds >= 2 * heartbeat_interval ({2 * beat:g}), got {grace!r}"
        )
    sampler, seed = _check_sampler(path, data.get("sampler", "auto"))
    space = _check_space(path, data["space"]) if data.get("space") is not None else None
    scheduler = _check_scheduler(path, data.get("scheduler"))
    return RunSpec(
        path=path, study=study, objective=f"{mod}:{func}", storage=storage, direction=direction,
        trials=trials, timeout=None if timeout is None else float(timeout), sampler=sampler, seed=seed, space=space,
        scheduler=scheduler, test_seeds=int(test_seeds), workers=int(workers), retries=int(retries),
        trial_timeout=None if trial_timeout is None else float(trial_timeout),
        heartbeat_interval=float(beat), grace_period=float(grace),
    )


def _check_scheduler(path: Path, value: Any) -> tuple[str, dict[str, Any]] | None:
    """``scheduler: asha`` or ``scheduler: {name: asha, max_resource: 27, ...}``; checked by building it."""
    if value is None or value == "none":
        return None
    names = ", ".join([*SCHEDULERS, "none"])
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise spec_error(path, f"`scheduler` must be a name ({names}) or {{name: ..., <arguments>}}, got {value!r}")
    name = value.get("name")
    if name not in SCHEDULERS:
        raise spec_error(path, f"`scheduler.name` must be one of {names}, got {name!r}")
    kwargs = {str(k): v for k, v in value.items() if k != "name"}
    spec = RunSpec(path=path, study="", objective="", scheduler=(name, kwargs))
    try:
        spec.make_scheduler()
    except TypeError as exc:  # an argument the class does not take, or a required one missing
        raise spec_error(path, f"`scheduler` ({name}): {exc}") from None
    except ValueError as exc:  # InvalidParameterError names the argument and the rule
        raise spec_error(path, f"`scheduler` ({name}): {exc}") from None
    return name, kwargs


def _check_sampler(path: Path, value: Any) -> tuple[str, int | None]:
    names = ", ".join(SAMPLERS)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise spec_error(path, f"`sampler` must be a name ({names}) or {{name: ..., seed: ...}}, got {value!r}")
    unknown = [k for k in value if k not in ("name", "seed")]
    if unknown:
        raise spec_error(path, f"`sampler`: unknown key {unknown[0]!r}; expected name, seed")
    name = value.get("name")
    if name not in SAMPLERS:
        raise spec_error(path, f"`sampler.name` must be one of {names}, got {name!r}")
    seed = value.get("seed")
    if seed is not None and not _is_int(seed):
        raise spec_error(path, f"`sampler.seed` must be an integer, got {seed!r}")
    return name, seed


def import_objective(spec: RunSpec) -> Callable[..., Any]:
    """Import ``module:function`` with the spec's directory and the working directory on ``sys.path``."""
    mod_name, attr = spec.objective.split(":")
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            dirs = ", ".join(repr(d) for d in dict.fromkeys([str(spec.path.resolve().parent), os.getcwd()]))
            raise spec_error(
                spec.path,
                f"`objective`: cannot import module {mod_name!r} (looked in {dirs} and the installed packages)",
            ) from None
        raise spec_error(spec.path, f"`objective`: importing {mod_name!r} failed: ModuleNotFoundError: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any error raised while the module runs
        raise spec_error(
            spec.path, f"`objective`: importing {mod_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise spec_error(spec.path, f"`objective`: module {mod_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise spec_error(
            spec.path, f"`objective`: {spec.objective!r} is a {type(target).__name__}, not a function"
        )
    return target


@contextlib.contextmanager
def import_path(*dirs: Path) -> Iterator[None]:
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
