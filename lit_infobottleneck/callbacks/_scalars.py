"""One measured epoch's scalars through ``pl_module.log``, for InfoMetrics.

Every logger and EarlyStopping/ModelCheckpoint see them (names in ``info_metrics.py``'s
docstring): the estimates and their bounds, the flag counts, the frozen calibration, the
data-processing violations (warned about too), the geometry and the estimation time.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from lit_infobottleneck.callbacks._estimate import BOUND_KEYS, EstimateResult
from lit_infobottleneck.geometry import QUANTITIES as GEOMETRY_QUANTITIES


def _log(pl_module: pl.LightningModule, name: str, value: float) -> None:
    pl_module.log(name, value, on_epoch=True, sync_dist=True)


def log_scalars(
    pl_module: pl.LightningModule,
    result: EstimateResult,
    labels: list[str],
    calibration: dict[str, dict[str, dict[str, Any]]],
    *,
    dpi_tolerance: float,
    unit: str,
    epoch: int,
) -> None:
    """Log ``result`` (one epoch's estimates of the estimators ``labels``) and the
    ``calibration`` frozen so far; warn about its data-processing violations."""
    for record in result.records:
        for key in ("I_XT", "I_TY", *BOUND_KEYS):
            if key in record:
                _log(pl_module, f"info/{record['estimator']}/{key}/{record['layer']}", record[key])
    for label in labels:
        mine = [r for r in result.records if r["estimator"] == label]
        flagged = [r for r in mine if r.get("flags")]
        saturated = [r for r in mine if {"saturated_xt", "saturated_ty"} & set(r.get("flags", []))]
        _log(pl_module, f"info/{label}/flagged", float(len(flagged)))
        _log(pl_module, f"info/{label}/saturated", float(len(saturated)))
        for layer, params in calibration.get(label, {}).items():
            for key, value in params.items():
                if isinstance(value, float):
                    _log(pl_module, f"info/{label}/{key}/{layer}", value)
    for label, violations in result.dpi.items():
        _log(pl_module, f"info/{label}/dpi_violations", float(len(violations)))
        if violations:
            rank_zero_warn(
                f"InfoMetrics ({label}, epoch {epoch}): I(X;T) grows with depth beyond "
                f"{dpi_tolerance} {unit} at {', '.join(violations)}; a Markov chain cannot "
                "gain information, so the estimator's parameter sets these numbers "
                "(Geiger 2021)."
            )
    for row in result.geometry:
        for quantity in GEOMETRY_QUANTITIES:
            if row.get(quantity) is not None:
                _log(pl_module, f"info/geometry/{quantity}/{row['layer']}", row[quantity])
    _log(pl_module, "info/seconds", result.seconds)
