"""Search spaces: the parameter domains :class:`Float`, :class:`Int`, :class:`Choice` and :class:`Space`.

Every domain encodes its values into the unit interval ``[0, 1]`` and decodes any point of it back into a
valid value; model-based samplers work in that unit cube. Conditions (``when=``) make a space tree-shaped:
a parameter is active only when its parents hold one of the listed values.

Constructors only store their arguments; :meth:`Param.check` validates them and is called by
:class:`Space` and by the trial when a parameter is defined, so every error names the parameter.
"""

from __future__ import annotations

import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from selftune.exceptions import InvalidParameterError

__all__ = ["Param", "Float", "Int", "Choice", "Space", "param_from_json"]

_GRID_TOL = 1e-9


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_integral(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, numbers.Integral):
        return True
    return isinstance(x, numbers.Real) and math.isfinite(float(x)) and float(x).is_integer()


def _plain(value: Any) -> Any:
    """Turn NumPy scalars into the Python values they stand for."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fail(name: str | None, rule: str) -> InvalidParameterError:
    where = f" for parameter {name!r}" if name is not None else ""
    return InvalidParameterError(f"{rule}{where}")


def _check_log(log: Any, name: str | None) -> None:
    if not isinstance(log, bool | np.bool_):
        raise _fail(name, f"`log` must be True or False, got log={log!r}")


def _normalise_when(when: Mapping[str, Any] | None) -> dict[str, tuple[Any, ...]] | None:
    if when is None:
        return None
    out: dict[str, tuple[Any, ...]] = {}
    for parent, allowed in when.items():
        if isinstance(allowed, list | tuple | set | frozenset):
            out[str(parent)] = tuple(_plain(v) for v in allowed)
        else:
            out[str(parent)] = (_plain(allowed),)
    return out


class Param(ABC):
    """A parameter domain. Values map to the unit interval through :meth:`to_unit` / :meth:`from_unit`."""

    kind: ClassVar[str]
    #: ``{parent: allowed values}``; normalised to tuples of values on construction
    when: Mapping[str, Any] | None

    @abstractmethod
    def check(self, name: str | None = None) -> None:
        """Raise :class:`InvalidParameterError` naming ``name`` if the definition breaks a rule."""

    @abstractmethod
    def validate(self, value: Any, name: str | None = None) -> Any:
        """Return ``value`` as this domain's Python type, or raise naming ``name`` and the domain."""

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """Encode a valid value into ``[0, 1]``."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """Decode any ``u`` in ``[0, 1]`` (clipped) into a valid value."""

    @abstractmethod
    def _domain_json(self) -> dict[str, Any]: ...

    @property
    def size(self) -> float:
        """Number of distinct values (``inf`` for a continuous range)."""
        return math.inf

    @property
    def cells(self) -> int:
        """Number of equal-width cells the unit encoding is divided into (0: not such a grid).

        Linear integers and stepped floats are; log-scaled integers are not (their cells shrink with
        the value), so models treat them as continuous and decoding rounds.
        """
        return 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description of this domain (condition included)."""
        data = {"kind": self.kind, **self._domain_json()}
        if self.when is not None:
            data["when"] = {k: list(v) for k, v in self.when.items()}
        return data

    def same_domain(self, other: Param) -> bool:
        """True when ``other`` has the same type and domain (conditions are ignored)."""
        return self._domain_json() == other._domain_json() and self.kind == other.kind

    def describe(self) -> str:
        """A short human-readable description, used in error messages."""
        body = ", ".join(f"{k}={v!r}" for k, v in self._domain_json().items())
        return f"{type(self).__name__}({body})"


@dataclass(frozen=True, eq=True)
class Float(Param):
    """A real-valued parameter in ``[low, high]``, optionally log-scaled or on a grid of ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: Mapping[str, Any] | None = field(default=None, hash=False)
    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _normalise_when(self.when))

    def check(self, name: str | None = None) -> None:
        _check_log(self.log, name)
        for label, bound in (("low", self.low), ("high", self.high)):
            if not _is_real(bound) or not math.isfinite(float(bound)):
                raise _fail(name, f"`{label}` must be a finite number, got {label}={bound!r}")
        if not self.low <= self.high:
            raise _fail(name, f"`low <= high` must hold, got low={self.low!r}, high={self.high!r}")
        if self.log and self.low <= 0:
            raise _fail(name, f"`low > 0` must hold for a log-scaled parameter, got low={self.low!r}")
        if self.step is not None:
            if self.log:
                raise _fail(name, "`step` cannot be combined with `log=True`")
            if not _is_real(self.step) or not (float(self.step) > 0 and math.isfinite(float(self.step))):
                raise _fail(name, f"`step > 0` must hold, got step={self.step!r}")
            ratio = (self.high - self.low) / self.step
            if abs(ratio - round(ratio)) > _GRID_TOL * max(1.0, abs(ratio)):
                raise _fail(
                    name,
                    f"step={self.step!r} must divide high - low = {self.high - self.low!r} "
                    f"(low={self.low!r}, high={self.high!r})",
                )

    @property
    def _n_grid(self) -> int:
        assert self.step is not None
        return int(round((self.high - self.low) / self.step)) + 1

    @property
    def size(self) -> float:
        if self.low == self.high:
            return 1
        return self._n_grid if self.step is not None else math.inf

    @property
    def cells(self) -> int:
        return self._n_grid if self.step is not None else 0

    def validate(self, value: Any, name: str | None = None) -> float:
        value = _plain(value)
        if not _is_real(value) or not math.isfinite(float(value)):
            raise _fail(name, f"expected a finite number in {self.describe()}, got {value!r}")
        v = float(value)
        span = self.high - self.low
        tol = _GRID_TOL * max(1.0, abs(self.low), abs(self.high))
        if not (self.low - tol <= v <= self.high + tol):
            raise _fail(name, f"expected a value in [{self.low!r}, {self.high!r}], got {v!r}")
        v = min(max(v, self.low), self.high)
        if self.step is not None and span > 0:
            k = (v - self.low) / self.step
            if abs(k - round(k)) > 1e-6:
                raise _fail(name, f"expected a value on the grid low + k*step (step={self.step!r}), got {v!r}")
        return v

    def to_unit(self, value: Any) -> float:
        v = float(value)
        if self.low == self.high:
            return 0.5
        if self.step is not None:
            k = int(round((v - self.low) / self.step))
            return (k + 0.5) / self._n_grid
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(max((math.log(v) - lo) / (hi - lo), 0.0), 1.0)
        return min(max((v - self.low) / (self.high - self.low), 0.0), 1.0)

    def from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.low == self.high:
            return float(self.low)
        if self.step is not None:
            n = self._n_grid
            k = min(int(u * n), n - 1)
            return float(min(self.low + k * self.step, self.high))
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            v = math.exp(lo + u * (hi - lo))
        else:
            v = self.low + u * (self.high - self.low)
        return float(min(max(v, self.low), self.high))

    def _domain_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": float(self.low), "high": float(self.high), "log": bool(self.log)}
        if self.step is not None:
            out["step"] = float(self.step)
        return out


@dataclass(frozen=True, eq=True)
class Int(Param):
    """An integer parameter in ``[low, high]`` on a grid of ``step``, optionally log-scaled (``step=1``)."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    when: Mapping[str, Any] | None = field(default=None, hash=False)
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _normalise_when(self.when))

    def check(self, name: str | None = None) -> None:
        _check_log(self.log, name)
        for label, bound in (("low", self.low), ("high", self.high)):
            if not _is_integral(bound):
                raise _fail(name, f"`{label}` must be an integer, got {label}={bound!r}")
        if not self.low <= self.high:
            raise _fail(name, f"`low <= high` must hold, got low={self.low!r}, high={self.high!r}")
        if not _is_integral(self.step) or int(self.step) < 1:
            raise _fail(name, f"`step` must be an integer >= 1, got step={self.step!r}")
        if self.log:
            if self.low < 1:
                raise _fail(name, f"`low >= 1` must hold for a log-scaled integer, got low={self.low!r}")
            if self.step != 1:
                raise _fail(name, f"`step` must be 1 for a log-scaled integer, got step={self.step!r}")
        if (int(self.high) - int(self.low)) % int(self.step) != 0:
            raise _fail(
                name,
                f"step={self.step!r} must divide high - low = {int(self.high) - int(self.low)} "
                f"(low={self.low!r}, high={self.high!r})",
            )

    @property
    def _n_grid(self) -> int:
        return (int(self.high) - int(self.low)) // int(self.step) + 1

    @property
    def size(self) -> float:
        return self._n_grid

    @property
    def cells(self) -> int:
        return 0 if self.log else self._n_grid

    def validate(self, value: Any, name: str | None = None) -> int:
        value = _plain(value)
        if not _is_integral(value):
            raise _fail(name, f"expected an integer in {self.describe()}, got {value!r}")
        v = int(value)
        if not self.low <= v <= self.high:
            raise _fail(name, f"expected an integer in [{self.low}, {self.high}], got {v}")
        if (v - int(self.low)) % int(self.step) != 0:
            raise _fail(name, f"expected an integer on the grid low + k*step (step={self.step}), got {v}")
        return v

    def to_unit(self, value: Any) -> float:
        v = int(value)
        if self.log and self.low != self.high:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return min(max((math.log(v) - lo) / (hi - lo), 0.0), 1.0)
        k = (v - int(self.low)) // int(self.step)
        return (k + 0.5) / self._n_grid

    def from_unit(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log and self.low != self.high:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            v = int(round(math.exp(lo + u * (hi - lo))))
            return min(max(v, int(self.low)), int(self.high))
        n = self._n_grid
        k = min(int(u * n), n - 1)
        return int(self.low) + k * int(self.step)

    def _domain_json(self) -> dict[str, Any]:
        return {"low": int(self.low), "high": int(self.high), "log": bool(self.log), "step": int(self.step)}


def _json_roundtrips(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value and _same_type_tree(
            json.loads(json.dumps(value)), value
        )
    except (TypeError, ValueError):
        return False


def _same_type_tree(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and all(_same_type_tree(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and all(_same_type_tree(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b)


@dataclass(frozen=True, eq=True)
class Choice(Param):
    """A categorical parameter: one of ``choices`` (any values that survive a JSON round trip unchanged)."""

    choices: Sequence[Any]
    when: Mapping[str, Any] | None = field(default=None, hash=False)
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _normalise_when(self.when))
        if isinstance(self.choices, list | tuple):
            object.__setattr__(self, "choices", tuple(_plain(c) for c in self.choices))

    def check(self, name: str | None = None) -> None:
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Sequence):
            raise _fail(name, f"`choices` must be a list of values, got {self.choices!r}")
        if len(self.choices) == 0:
            raise _fail(name, "`choices` must not be empty")
        for c in self.choices:
            if not _json_roundtrips(c):
                raise _fail(
                    name,
                    f"every choice must survive a JSON round trip unchanged (None, bool, int, finite float, "
                    f"str, or lists/dicts of those), got {c!r} of type {type(c).__name__}",
                )
        for i, c in enumerate(self.choices):
            if self._index(c, self.choices[:i]) is not None:
                raise _fail(name, f"`choices` must be distinct, got {c!r} twice")

    @staticmethod
    def _index(value: Any, choices: Sequence[Any]) -> int | None:
        for i, c in enumerate(choices):
            if type(c) is type(value) and c == value:
                return i
        return None

    @property
    def size(self) -> float:
        return len(self.choices)

    def validate(self, value: Any, name: str | None = None) -> Any:
        value = _plain(value)
        i = self._index(value, self.choices)
        if i is None:
            raise _fail(name, f"expected one of {list(self.choices)!r}, got {value!r}")
        return self.choices[i]

    def index(self, value: Any) -> int:
        """Position of ``value`` among the choices."""
        i = self._index(_plain(value), self.choices)
        if i is None:
            raise _fail(None, f"expected one of {list(self.choices)!r}, got {value!r}")
        return i

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u: float) -> Any:
        n = len(self.choices)
        return self.choices[min(int(min(max(float(u), 0.0), 1.0) * n), n - 1)]

    def _domain_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


_KINDS: dict[str, type[Param]] = {"float": Float, "int": Int, "choice": Choice}


_FIELDS = {"float": {"low", "high", "log", "step", "when"}, "int": {"low", "high", "log", "step", "when"},
           "choice": {"choices", "when"}}
_REQUIRED = {"float": {"low", "high"}, "int": {"low", "high"}, "choice": {"choices"}}


def param_from_json(data: Mapping[str, Any], name: str | None = None) -> Param:
    """Rebuild a domain from :meth:`Param.to_json` output (or a YAML/JSON spec of the same shape)."""
    if not isinstance(data, Mapping):
        raise _fail(name, f"a domain must be a mapping with a `kind`, got {data!r}")
    data = dict(data)
    kind = data.pop("kind", None)
    if not isinstance(kind, str) or kind not in _KINDS:
        raise _fail(name, f"unknown parameter kind {kind!r}; expected one of {sorted(_KINDS)}")
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        raise _fail(name, f"unknown key {unknown[0]!r} for kind {kind!r}; expected some of {sorted(_FIELDS[kind])}")
    missing = sorted(_REQUIRED[kind] - set(data))
    if missing:
        raise _fail(name, f"missing key {missing[0]!r} for kind {kind!r}")
    if data.get("when") is not None and not isinstance(data["when"], Mapping):
        raise _fail(name, f"`when` must map parent names to values, got {data['when']!r}")
    param: Param = _KINDS[kind](**data)
    param.check(name)
    return param


class Space(Mapping[str, Param]):
    """A declared search space: named domains, in order, with optional conditions.

    A parameter with ``when={"parent": value_or_values}`` is active only when each named parent is active
    and holds one of the values. Parents must be declared before their children.

    >>> space = Space({"opt": Choice(["adam", "sgd"]),
    ...                "lr": Float(1e-5, 1e-1, log=True),
    ...                "momentum": Float(0.0, 0.99, when={"opt": "sgd"})})
    >>> space.active_names({"opt": "adam", "lr": 0.01})
    ['opt', 'lr']
    """

    def __init__(self, params: Mapping[str, Param] | None = None, /, **kwargs: Param) -> None:
        items: dict[str, Param] = dict(params or {})
        items.update(kwargs)
        seen: dict[str, Param] = {}
        for name, param in items.items():
            if not isinstance(name, str) or not name:
                raise InvalidParameterError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(param, Param):
                raise InvalidParameterError(
                    f"parameter {name!r} must be a Float, Int or Choice, got {type(param).__name__}"
                )
            param.check(name)
            for parent, allowed in (param.when or {}).items():
                if parent not in seen:
                    raise InvalidParameterError(
                        f"parameter {name!r} is conditional on {parent!r}, which must be declared before it"
                    )
                for v in allowed:
                    seen[parent].validate(v, parent)
            seen[name] = param
        self._params = seen

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """True when ``name``'s condition holds for ``params`` (its parents active and matching)."""
        when = self._params[name].when
        if not when:
            return True
        for parent, allowed in when.items():
            if parent not in params or not self.is_active(parent, params):
                return False
            if Choice._index(_plain(params[parent]), allowed) is None:
                return False
        return True

    def active_names(self, params: Mapping[str, Any]) -> list[str]:
        """The names active under ``params``, in declaration order."""
        return [n for n in self._params if self.is_active(n, params)]

    def validate(self, params: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Check ``params`` against the space and return them normalised.

        Unknown names and values for inactive parameters are errors; missing active parameters are errors
        unless ``partial`` is true.
        """
        unknown = [n for n in params if n not in self._params]
        if unknown:
            raise InvalidParameterError(
                f"unknown parameter {unknown[0]!r}; the space declares {list(self._params)!r}"
            )
        out: dict[str, Any] = {}
        for name, param in self._params.items():
            if name in params:
                out[name] = param.validate(params[name], name)
        for name in list(out):
            if not self.is_active(name, out):
                raise InvalidParameterError(
                    f"parameter {name!r} is inactive under its condition {self._params[name].when!r}"
                )
        if not partial:
            for name in self._params:
                if name not in out and self.is_active(name, out):
                    raise InvalidParameterError(f"parameter {name!r} is missing")
        return out

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encode ``params`` into a ``(d,)`` array in the unit cube; inactive or missing entries are NaN."""
        out = np.full(len(self._params), np.nan)
        for i, (name, param) in enumerate(self._params.items()):
            if name in params:
                out[i] = param.to_unit(params[name])
        return out

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """Decode a ``(d,)`` point of the unit cube into the parameters active there."""
        out: dict[str, Any] = {}
        for i, (name, param) in enumerate(self._params.items()):
            if self.is_active(name, out):
                out[name] = param.from_unit(float(u[i]))
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description of the space."""
        return {name: p.to_json() for name, p in self._params.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Space:
        """Rebuild a space from :meth:`to_json` output (or a YAML/JSON spec of the same shape)."""
        return cls({name: param_from_json(p, name) for name, p in data.items()})
