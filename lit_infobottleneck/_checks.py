"""Checks of scalar arguments (sizes, weights, fractions, switches, choices).

Each check returns the value in its canonical type (``int``, ``float``, ...) or raises a
``ValueError`` that names the argument and its valid range, e.g.
``"`beta` must be a number >= 0, got -1.0."``. A ``bool`` is never accepted as a number.
Pure Python: no torch or lightning import.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import TypeGuard, TypeVar, cast

T = TypeVar("T")


def _is_real(value: object) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(value: object, name: str, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    strict: bool = False,
    finite: bool = True,
) -> float:
    """Return ``value`` as a ``float`` if it is a real number (not a bool) in range.

    The range is ``>= minimum`` (``> minimum`` when ``strict``); ``finite`` also refuses
    +-inf. NaN is always refused.
    """
    ok = (
        _is_real(value)
        and not math.isnan(value)
        and (math.isfinite(value) or not finite)
        and (minimum is None or (value > minimum if strict else value >= minimum))
    )
    if not ok:
        kind = "a finite number" if finite else "a number"
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum}"
        raise ValueError(f"`{name}` must be {kind}{bound}, got {value!r}.")
    return float(cast(float, value))


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a ``float`` if it is a finite number ``> 0`` (``>= 0`` if allowed)."""
    return check_number(value, name, minimum=0, strict=not allow_zero)


def check_weight(value: object, name: str) -> float:
    """Return a loss weight (``beta``, ``lambda1``, ...) as a float: a finite number ``>= 0``."""
    value = check_number(value, name, minimum=0, finite=False)
    if math.isinf(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    return value


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` as a ``float`` if it is a number strictly between 0 and 1."""
    if not (_is_real(value) and 0 < value < 1):  # NaN fails the comparison
        raise ValueError(f"`{name}` must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (a string such as "no" is truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r}.")
    return value


def check_choice(value: T, name: str, choices: Iterable[object]) -> T:
    """Return ``value`` if it is one of ``choices`` (e.g. the keys of a registry dict)."""
    options = tuple(choices)
    if value not in options:  # a tuple: unhashable values compare instead of raising
        listed = ", ".join(str(c) for c in options)
        raise ValueError(f"unknown `{name}` {value!r}; choose one of: {listed}.")
    return value
