"""InfoMetrics' checkpoint state as plain data: copies, and unit conversion on resume.

The state is ``{"history": [records], "meta": {...}, "calibration": {label: {layer:
params}}}`` (tensors-free: checkpoints load with ``weights_only=True``). A run resumed in
the other information unit converts the records of the information estimators, and the
meta's ``h_x``, ``h_y`` and ``units``; records of version 0.1.0 carry no ``unit`` and get
the one their estimator had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lit_infobottleneck.callbacks._estimate import BOUND_KEYS, INFORMATION_UNITS, record_unit
from lit_infobottleneck.estimators import Estimator

Calibration = dict[str, dict[str, dict[str, Any]]]


def copy_calibration(calibration: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Calibration:
    """A deep copy of ``{label: {layer: params}}``."""
    return {
        label: {layer: dict(params) for layer, params in layers.items()}
        for label, layers in calibration.items()
    }


def conversion(source: str, target: str) -> float:
    """Factor from information unit ``source`` to ``target`` (bits or nats)."""
    if source == target:
        return 1.0
    return math.log(2) if source == "bits" else 1.0 / math.log(2)


def restore_history(
    state: Mapping[str, Any], estimators: Mapping[str, Estimator], unit: str
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """``(history, meta, saved unit)`` of a checkpoint state, in ``unit``."""
    meta = dict(state.get("meta", {}))
    saved_unit = meta.get("unit", unit)
    history = []
    for record in state.get("history", []):
        record = dict(record)
        estimator = estimators.get(record.get("estimator", ""))
        record.setdefault("unit", record_unit(estimator, saved_unit) if estimator else saved_unit)
        if record["unit"] in INFORMATION_UNITS and record["unit"] != unit:
            factor = conversion(record["unit"], unit)
            for key in ("I_XT", "I_TY", *BOUND_KEYS):
                if key in record:
                    record[key] = record[key] * factor
            record["unit"] = unit
        history.append(record)
    if saved_unit in INFORMATION_UNITS and saved_unit != unit:
        factor = conversion(saved_unit, unit)
        for key in ("h_x", "h_y"):
            if key in meta:
                meta[key] = meta[key] * factor
        meta["unit"] = unit
        meta["units"] = {label: record_unit(est, unit) for label, est in estimators.items()}
    return history, meta, saved_unit
