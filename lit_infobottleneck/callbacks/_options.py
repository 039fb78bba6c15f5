"""InfoMetrics' constructor arguments: the scalar options checked and the estimators built.

Each bad value raises a ``MisconfigurationException`` that names the option and its valid
range (``"InfoMetrics `max_samples` must be an integer >= 2, got 1."``), at construction,
before any training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_infobottleneck.callbacks._estimate import INFORMATION_UNITS
from lit_infobottleneck.callbacks._tokens import TOKEN_REDUCTIONS
from lit_infobottleneck.estimators import Estimator, get_estimator

UNITS = INFORMATION_UNITS
SCHEDULES = ("every", "log")


def check_options(
    *,
    max_samples: int,
    every_n_epochs: int,
    log_points: int,
    bootstrap: int,
    schedule: str,
    unit: str,
    token_reduction: str,
    dpi_tolerance: float,
    strict: bool,
    geometry: bool,
) -> None:
    """Refuse an out-of-range InfoMetrics option (see ``InfoMetrics`` for their meaning)."""
    for field, value, minimum in (
        ("max_samples", max_samples, 2),
        ("every_n_epochs", every_n_epochs, 1),
        ("log_points", log_points, 2),
        ("bootstrap", bootstrap, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise MisconfigurationException(
                f"InfoMetrics `{field}` must be an integer >= {minimum}, got {value!r}."
            )
    if bootstrap == 1:
        raise MisconfigurationException(
            "InfoMetrics `bootstrap` must be 0 (no intervals) or >= 2 half-samples (a "
            "spread needs two), got 1; 20 is a good default."
        )
    if schedule not in SCHEDULES:
        raise MisconfigurationException(
            f"InfoMetrics `schedule` must be one of {SCHEDULES}, got {schedule!r}."
        )
    if token_reduction not in TOKEN_REDUCTIONS:
        raise MisconfigurationException(
            f"InfoMetrics `token_reduction` must be one of {TOKEN_REDUCTIONS}, got "
            f"{token_reduction!r}."
        )
    if unit not in UNITS:
        raise MisconfigurationException(f"InfoMetrics `unit` must be one of {UNITS}, got {unit!r}.")
    if not (isinstance(dpi_tolerance, (int, float)) and dpi_tolerance >= 0):
        raise MisconfigurationException(
            f"InfoMetrics `dpi_tolerance` must be a number >= 0, got {dpi_tolerance!r}."
        )
    for field, flag in (("strict", strict), ("geometry", geometry)):
        if not isinstance(flag, bool):
            raise MisconfigurationException(
                f"InfoMetrics `{field}` must be True or False, got {flag!r}."
            )


def build_estimators(specs: Sequence[dict[str, Any] | str]) -> dict[str, Estimator]:
    """The estimators of registry names or ``{"name": ..., **params, "label": ...}`` dicts,
    keyed by label (default: the name), which must be unique."""
    built: dict[str, Estimator] = {}
    for spec in specs:
        params = {"name": spec} if isinstance(spec, str) else dict(spec)
        if "name" not in params:
            raise MisconfigurationException(
                f"InfoMetrics estimator {spec!r} has no 'name'; e.g. {{'name': 'kde', "
                "'noise_var': 0.1}."
            )
        name = params.pop("name")
        label = params.pop("label", name)
        if label in built:
            raise MisconfigurationException(
                f"InfoMetrics has two estimators labelled {label!r}; give one a 'label' key."
            )
        try:
            built[label] = get_estimator(name, **params)
        except ValueError as err:
            raise MisconfigurationException(f"InfoMetrics estimator {spec!r}: {err}") from None
    return built
