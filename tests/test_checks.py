"""The scalar argument checks of ``lit_infobottleneck._checks``."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

from lit_infobottleneck._checks import (
    check_bool,
    check_choice,
    check_fraction,
    check_int,
    check_number,
    check_positive,
    check_weight,
)

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("value", [1, 7, 10**30, np.int64(3)])
def test_check_int_accepts_integers_at_or_above_the_minimum(value):
    out = check_int(value, "k", 1)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, True, False, "3", None, NAN, np.float64(2)])
def test_check_int_rejects_non_integers_bools_and_values_below_the_minimum(value):
    message = f"`k` must be an integer >= 1, got {value!r}."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_int(value, "k", 1)


def test_check_int_minimum_is_inclusive():
    assert check_int(0, "seed", 0) == 0
    assert check_int(2, "batch_size", 2) == 2
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 2, got 1\."):
        check_int(1, "batch_size", 2)


@pytest.mark.parametrize("value", [0, 0.0, 1e-300, 5, np.float32(0.5), Fraction(1, 3)])
def test_check_number_with_minimum_zero_accepts_the_boundary(value):
    out = check_number(value, "ridge", minimum=0)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [-1e-12, -3, NAN, INF, -INF, True, "1", None, [1.0]])
def test_check_number_rejects_out_of_range_non_finite_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"^`ridge` must be a finite number >= 0, got "):
        check_number(value, "ridge", minimum=0)


def test_check_number_strict_excludes_the_minimum():
    assert check_number(1e-9, "lr", minimum=0, strict=True) == 1e-9
    with pytest.raises(ValueError, match=r"`lr` must be a finite number > 0, got 0\."):
        check_number(0, "lr", minimum=0, strict=True)


def test_check_number_without_minimum_or_finiteness():
    assert check_number(-5, "shift") == -5.0
    assert check_number(-INF, "shift", finite=False) == -INF
    with pytest.raises(ValueError, match=r"^`shift` must be a finite number, got inf\.$"):
        check_number(INF, "shift")
    with pytest.raises(ValueError, match=r"^`shift` must be a number, got nan\.$"):
        check_number(NAN, "shift", finite=False)  # NaN is never a number in range


def test_check_positive_matches_check_number():
    assert check_positive(2, "sigma") == 2.0
    assert check_positive(0, "jitter", allow_zero=True) == 0.0
    for bad in (0, -1.0, NAN, INF, False):
        with pytest.raises(ValueError, match=r"^`sigma` must be a finite number > 0, got "):
            check_positive(bad, "sigma")
    for bad in (-1e-10, NAN, INF, True):
        with pytest.raises(ValueError, match=r"^`jitter` must be a finite number >= 0, got "):
            check_positive(bad, "jitter", allow_zero=True)


def test_check_weight_accepts_zero_and_rejects_negative_nan_inf_and_bools():
    assert check_weight(0, "beta") == 0.0 and type(check_weight(0, "beta")) is float
    assert check_weight(1e-3, "beta") == 1e-3
    for bad in (-1.0, -1e-300, NAN, -INF, True, "0.1", None):
        with pytest.raises(ValueError, match=r"^`beta` must be a number >= 0, got "):
            check_weight(bad, "beta")
    with pytest.raises(ValueError, match=r"^`beta` must be finite, got inf\.$"):
        check_weight(INF, "beta")


@pytest.mark.parametrize("value", [1e-12, 0.5, 1 - 1e-12, np.float32(0.25), Fraction(1, 2)])
def test_check_fraction_accepts_values_strictly_inside(value):
    assert check_fraction(value, "val_fraction") == float(value)


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, -0.1, 1.5, NAN, INF, True, False, "0.5"])
def test_check_fraction_rejects_the_ends_and_beyond(value):
    with pytest.raises(
        ValueError, match=r"^`val_fraction` must be a number strictly between 0 and 1, got "
    ):
        check_fraction(value, "val_fraction")


def test_check_bool_accepts_only_true_and_false():
    assert check_bool(True, "standardize") is True
    assert check_bool(False, "standardize") is False
    for bad in (0, 1, "no", "False", None, np.bool_(True)):
        with pytest.raises(ValueError, match=r"^`standardize` must be True or False, got "):
            check_bool(bad, "standardize")


def test_check_choice_lists_the_choices():
    assert check_choice("linear", "schedule", ("constant", "linear")) == "linear"
    assert check_choice("b", "key", {"a": 1, "b": 2}) == "b"  # a dict: its keys
    with pytest.raises(
        ValueError, match=r"^unknown `schedule` 'cubic'; choose one of: constant, linear\.$"
    ):
        check_choice("cubic", "schedule", ("constant", "linear"))
    with pytest.raises(ValueError, match=r"unknown `key` \['a'\]; choose one of: a, b\."):
        check_choice(["a"], "key", {"a": 1, "b": 2})  # unhashable: no TypeError


def test_the_estimators_keep_their_imports():
    from lit_infobottleneck.estimators import _validation

    assert _validation.check_int_at_least is check_int
    assert _validation.check_positive is check_positive
    assert _validation.check_bool is check_bool
