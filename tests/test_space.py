"""Parameter domains: validation messages and the unit-cube encoding (property-based)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from selftune import Choice, Float, Int, InvalidParameterError, Space
from selftune.space import param_from_json

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-8, max_value=1e6, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def float_params(draw: st.DrawFn) -> Float:
    kind = draw(st.sampled_from(["linear", "log", "step"]))
    if kind == "log":
        lo, hi = sorted([draw(positive), draw(positive)])
        return Float(lo, hi, log=True)
    lo = draw(finite)
    if kind == "step":
        step = draw(st.sampled_from([0.5, 0.25, 1.0, 0.1, 3.0]))
        n = draw(st.integers(0, 50))
        return Float(lo, lo + n * step, step=step)
    hi = draw(finite)
    lo, hi = min(lo, hi), max(lo, hi)
    return Float(lo, hi)


@st.composite
def int_params(draw: st.DrawFn) -> Int:
    if draw(st.booleans()):
        lo = draw(st.integers(1, 10_000))
        return Int(lo, lo + draw(st.integers(0, 100_000)), log=True)
    lo = draw(st.integers(-10_000, 10_000))
    step = draw(st.integers(1, 7))
    return Int(lo, lo + step * draw(st.integers(0, 1000)), step=step)


json_leaf = st.none() | st.booleans() | st.integers(-(10**9), 10**9) | finite | st.text(max_size=8)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=6)


@st.composite
def choice_params(draw: st.DrawFn) -> Choice:
    values = draw(st.lists(json_value, min_size=1, max_size=6))
    unique: list = []
    for v in values:
        if not any(type(u) is type(v) and u == v for u in unique):
            unique.append(v)
    return Choice(unique)


any_param = float_params() | int_params() | choice_params()


@settings(max_examples=300, deadline=None)
@given(param=any_param, u=unit)
def test_decode_is_always_valid(param, u: float) -> None:
    param.check("p")
    value = param.from_unit(u)
    assert param.validate(value, "p") == value
    assert 0.0 <= param.to_unit(value) <= 1.0


@settings(max_examples=300, deadline=None)
@given(param=any_param, u=unit)
def test_encode_decode_round_trip(param, u: float) -> None:
    """decode(encode(v)) == v for every valid v (floats to a relative 1e-9)."""
    value = param.from_unit(u)
    back = param.from_unit(param.to_unit(value))
    if isinstance(param, Float) and param.step is None:
        assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, param.high - param.low))
    else:
        assert back == value and type(back) is type(value)


@settings(max_examples=200, deadline=None)
@given(param=int_params() | choice_params() | float_params(), data=st.data())
def test_discrete_values_each_own_cell(param, data: st.DataObject) -> None:
    """Every value of a discrete domain is reachable and encodes to the centre of its own cell."""
    assume(param.size < 200 and not getattr(param, "log", False))
    n = int(param.size)
    values = [param.from_unit((k + 0.5) / n) for k in range(n)]
    assert len({repr(v) for v in values}) == n
    for k, v in enumerate(values):
        assert param.to_unit(v) == pytest.approx((k + 0.5) / n)


@settings(max_examples=100, deadline=None)
@given(param=any_param)
def test_json_round_trip(param) -> None:
    assert param_from_json(param.to_json()) == param


def test_log_int_covers_ends_and_is_log_uniform() -> None:
    p = Int(1, 1000, log=True)
    assert p.from_unit(0.0) == 1 and p.from_unit(1.0) == 1000
    draws = np.array([p.from_unit(u) for u in np.random.default_rng(0).random(20000)])
    share_below_32 = np.mean(draws <= 31)
    assert 0.45 < share_below_32 < 0.55  # log-uniform: half the mass below sqrt(1000)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (Float(3, 1), r"`low <= high` must hold, got low=3, high=1 for parameter 'lr'"),
        (Float(0, 1, log=True), r"`low > 0` must hold for a log-scaled parameter, got low=0 for parameter 'lr'"),
        (Float(-1, 1, log=True), "low > 0"),
        (Float(0, 1, step=0.3), r"step=0.3 must divide high - low = 1"),
        (Float(0, 1, step=0), r"`step > 0` must hold"),
        (Float(0.1, 1, step=0.1, log=True), "cannot be combined"),
        (Float(0, math.inf), "finite"),
        (Float(math.nan, 1), "finite"),
        (Float("0", 1), "finite number"),  # type: ignore[arg-type]
        (Int(5, 1), "`low <= high`"),
        (Int(0, 10, log=True), r"`low >= 1` must hold for a log-scaled integer"),
        (Int(1, 10, step=4), r"step=4 must divide high - low = 9"),
        (Int(1, 10, step=0), r"`step` must be an integer >= 1"),
        (Int(1.5, 10), r"`low` must be an integer"),  # type: ignore[arg-type]
        (Int(2, 10, log=True, step=2), r"`step` must be 1 for a log-scaled integer"),
        (Choice([]), "must not be empty"),
        (Choice("abc"), "must be a list"),  # type: ignore[arg-type]
        (Choice([object()]), "JSON round trip"),
        (Choice([(1, 2)]), "JSON round trip"),
        (Choice([math.nan]), "JSON round trip"),
        (Choice([1, 1]), "distinct"),
        (Choice([{1: "a"}]), "JSON round trip"),
    ],
)
def test_bad_definitions_name_the_parameter(param, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message) as err:
        param.check("lr")
    assert "'lr'" in str(err.value)
    with pytest.raises(InvalidParameterError, match="'lr'"):
        Space({"lr": param})


def test_validate_values() -> None:
    assert Float(0, 1).validate(np.float32(0.5)) == 0.5
    assert Int(0, 10, step=2).validate(np.int64(4)) == 4
    assert Choice([1, "1", True]).validate(True) is True
    assert Choice([1, "1", True]).validate(1) == 1
    for param, bad, msg in [
        (Float(0, 1), 2.0, r"expected a value in \[0, 1\], got 2.0"),
        (Float(0, 1, step=0.5), 0.3, "grid"),
        (Float(0, 1), "0.5", "finite number"),
        (Float(0, 1), math.nan, "finite number"),
        (Int(0, 10, step=2), 3, "grid"),
        (Int(0, 10), 2.5, "integer"),
        (Int(0, 10), True, "integer"),
        (Choice(["a", "b"]), "c", r"expected one of \['a', 'b'\], got 'c'"),
    ]:
        with pytest.raises(InvalidParameterError, match=msg):
            param.validate(bad, "p")


def test_space_conditions() -> None:
    space = Space(
        {
            "opt": Choice(["adam", "sgd"]),
            "momentum": Float(0.0, 0.99, when={"opt": "sgd"}),
            "nesterov": Choice([True, False], when={"opt": ["sgd"]}),
            "lr": Float(1e-5, 1.0, log=True),
        }
    )
    assert space.active_names({"opt": "adam"}) == ["opt", "lr"]
    assert space.active_names({"opt": "sgd"}) == ["opt", "momentum", "nesterov", "lr"]
    p = space.decode(np.full(4, 0.9))
    assert p["opt"] == "sgd" and set(p) == {"opt", "momentum", "nesterov", "lr"}
    enc = space.encode({"opt": "adam", "lr": 0.01})
    assert np.isnan(enc[1]) and np.isnan(enc[2]) and not np.isnan(enc[3])
    with pytest.raises(InvalidParameterError, match="'momentum' is inactive"):
        space.validate({"opt": "adam", "momentum": 0.5, "lr": 0.1})
    with pytest.raises(InvalidParameterError, match="'lr' is missing"):
        space.validate({"opt": "adam"})
    with pytest.raises(InvalidParameterError, match="unknown parameter 'zz'"):
        space.validate({"zz": 1})
    assert Space.from_json(space.to_json()) == space


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "choice", "choices": "abc"}, "must be a list"),
        ({"kind": "float", "low": 0.1, "high": 1, "log": "no"}, "`log` must be True or False"),
        ({"kind": "float", "lo": 0, "high": 1}, "unknown key 'lo' for kind 'float'"),
        ({"kind": "choice"}, "missing key 'choices'"),
        ({"kind": "tensor"}, "unknown parameter kind 'tensor'"),
        ({"kind": "int", "low": 1, "high": 3, "when": ["x"]}, "`when` must map parent names"),
        ("float", "must be a mapping"),
    ],
)
def test_space_from_json_errors_name_the_parameter(spec, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message) as err:
        Space.from_json({"p": spec})
    assert "'p'" in str(err.value)


def test_space_condition_on_undeclared_parent() -> None:
    with pytest.raises(InvalidParameterError, match="conditional on 'opt', which must be declared before it"):
        Space({"momentum": Float(0, 1, when={"opt": "sgd"}), "opt": Choice(["sgd"])})
    with pytest.raises(InvalidParameterError, match=r"expected one of \['sgd'\], got 'adam'"):
        Space({"opt": Choice(["sgd"]), "m": Float(0, 1, when={"opt": "adam"})})


def test_equal_width_cells() -> None:
    """Models treat only equal-width grids of the unit encoding as grids; log integers are not."""
    assert Int(0, 9).cells == 10 and Int(0, 10, step=5).cells == 3
    assert Float(0, 1, step=0.25).cells == 5 and Float(0, 1).cells == 0
    assert Int(1, 1000, log=True).cells == 0 and Choice(["a", "b"]).cells == 0
