"""Estimation for InfoMetrics as a pure function: captured tensors in, records out.

``estimate_layers`` takes the measured inputs ``x`` ``(n, d_x)``, the captured layers
``{name: (n, d_l)}`` in depth order, class labels ``y`` ``(n,)`` and the estimators, and
returns an ``EstimateResult``: one record per (estimator, layer), each carrying its
``unit``, plus warnings for what was skipped. No Lightning, no logging, no I/O: tested
without a Trainer.

Units: mutual-information estimators return nats and are converted to ``unit`` ("bits" or
"nats"); estimators whose ``Estimator.unit`` is something else (the HSIC family's
unitless scores) keep their own unit and are left out of the bits conversion, of the
ceilings H(X), H(Y) and of the data-processing check.

Flags and calibration: every record carries a ``flags`` list (see ``_flags.py``) and
``result.hints`` says, once per flagged estimate, why and what to change. Estimators with an
automatic parameter (``noise_var="auto"``, ``value_range="auto"``) are calibrated per layer
on the first data they see; the values chosen are returned in ``result.calibration`` and
passed back in through ``calibration`` on later epochs, so every epoch uses the same ones.

Failures: an estimate that raises anything (a documented ``ValueError`` refusal, a
``LinAlgError``, out-of-memory, a bug) is skipped with a warning naming the estimator, the
layer, the exception type and its message; the other estimates go on. With
``strict=True`` the first exception propagates instead (for debugging).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lit_infobottleneck.callbacks._flags import record_flags
from lit_infobottleneck.callbacks._intervals import half_sample_bounds
from lit_infobottleneck.estimators import Estimator
from lit_infobottleneck.estimators._validation import all_finite
from lit_infobottleneck.estimators.binning import plugin_entropy
from lit_infobottleneck.geometry import layer_geometry

#: Units of mutual information InfoMetrics can report; "nats" estimators convert to them.
INFORMATION_UNITS = ("bits", "nats")
BOUND_KEYS = ("I_XT_low", "I_XT_high", "I_TY_low", "I_TY_high")
MIN_SAMPLES = 4


@dataclass
class EstimateResult:
    """What one measured epoch produced: plain data, so it can be broadcast to every rank.

    ``records``: ``{"epoch", "step", "estimator", "layer", "unit", "I_XT", "I_TY",
    "flags"}`` (and the interval bounds, ``clipped_fraction``), in estimator then layer
    order. ``geometry``: per layer, ``{"epoch", "step", "layer", "within_class_ratio",
    "effective_dim"}`` (see ``lit_infobottleneck.geometry``; None where undefined).
    ``dpi``: per estimator label, the layers whose I(X;T) exceeds the previous layer's by
    more than the tolerance (only for information units measured at one parameter: a
    calibrated estimator measures each layer at its own resolution, which the
    data-processing inequality does not order). ``hints``: ``(label, layer, flag,
    message)`` per raised flag. ``calibration``: ``{label: {layer: params}}``
    chosen at this call. ``h_x`` = log n and ``h_y`` = H(Y) in ``unit``; ``n`` samples.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    geometry: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dpi: dict[str, list[str]] = field(default_factory=dict)
    hints: list[tuple[str, str, str, str]] = field(default_factory=list)
    calibration: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    h_x: float = 0.0
    h_y: float = 0.0
    n: int = 0


def record_unit(estimator: Estimator, unit: str) -> str:
    """The unit an estimator's records are reported in: ``unit`` for nats estimators, the
    estimator's own unit (e.g. ``"nHSIC"``) otherwise."""
    return unit if estimator.unit == "nats" else estimator.unit


def _nats_to(unit: str) -> float:
    return 1.0 / math.log(2) if unit == "bits" else 1.0


def estimate_layers(
    x: torch.Tensor,
    layers: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    estimators: Mapping[str, Estimator],
    *,
    unit: str = "bits",
    bootstrap: int = 0,
    seed: int = 0,
    dpi_tolerance: float = 0.1,
    epoch: int = 0,
    step: int = 0,
    strict: bool = False,
    calibration: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    explained: Collection[tuple[str, str, str]] = (),
    geometry: bool = False,
) -> EstimateResult:
    """I(X;T) and I(T;Y) of every layer by every estimator (see the module docstring).

    Args:
        x: measured inputs ``(n, d_x)``, float.
        layers: ``{name: activations (n, d_l)}`` in depth order (the DPI check compares
            consecutive layers).
        y: class labels ``(n,)``, integer.
        estimators: ``{label: estimator}``.
        unit: ``"bits"`` or ``"nats"`` for the information estimators.
        bootstrap: half-samples (random halves without replacement, see ``_intervals``)
            for 95 % bounds, 0 for none, else >= 2.
        seed: seed of the half-samples.
        dpi_tolerance: allowed growth of I(X;T) with depth, in ``unit``.
        epoch, step: stamped on every record.
        strict: re-raise the first exception of an estimate instead of skipping it.
        calibration: ``{label: {layer: params}}`` fixed at earlier epochs; layers missing
            here are calibrated now (see the module docstring).
        explained: ``(label, layer, flag)`` already told to the user: no hint is built.
        geometry: also summarise each layer's geometry (``result.geometry``).
    """
    if unit not in INFORMATION_UNITS:
        raise ValueError(f"`unit` must be one of {INFORMATION_UNITS}, got {unit!r}.")
    start = time.perf_counter()
    n = x.shape[0]
    if n < MIN_SAMPLES:
        return EstimateResult(warnings=[f"only {n} samples captured; need >= {MIN_SAMPLES}"])
    scale = _nats_to(unit)
    result = EstimateResult(n=n, h_x=math.log(n) * scale)
    result.h_y = float(plugin_entropy(torch.unique(y, return_inverse=True)[1])) * scale
    if not all_finite(x):
        result.warnings.append(
            f"the measured inputs contain NaN/Inf at epoch {epoch}; no estimates"
        )
        return result
    usable = _usable_layers(layers, n, epoch, result.warnings)
    if geometry:
        result.geometry = _geometry(usable, y, epoch, step, strict, result.warnings)
    h_x_nats, h_y_nats = result.h_x / scale, result.h_y / scale
    known = calibration or {}
    for label, estimator in estimators.items():
        est_unit = record_unit(estimator, unit)
        est_scale = scale if estimator.unit == "nats" else 1.0
        for name, t, constant in usable:
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": step,
                "estimator": label,
                "layer": name,
                "unit": est_unit,
            }
            if constant:  # a function of nothing: I(X;T) = I(T;Y) = 0 exactly
                keys = ("I_XT", "I_TY") + (BOUND_KEYS if bootstrap else ())
                result.records.append({**record, **dict.fromkeys(keys, 0.0), "flags": []})
                continue
            try:
                params = known.get(label, {}).get(name)
                if params is None:
                    params = estimator.calibration(t)
                    if params:
                        result.calibration.setdefault(label, {})[name] = dict(params)
                layer_estimator = estimator.with_params(**params) if params else estimator
                i_xt, i_ty = layer_estimator.layer_information(x, t, y)
                record["I_XT"] = float(i_xt) * est_scale
                record["I_TY"] = float(i_ty) * est_scale
                if bootstrap:
                    record.update(
                        _interval(
                            layer_estimator,
                            (x, t, y),
                            record,
                            (float(i_xt), float(i_ty)),
                            bootstrap,
                            seed,
                            est_scale,
                            (h_x_nats, h_y_nats),
                            strict,
                            result.warnings,
                        )
                    )
                flags, hints, extra = record_flags(
                    layer_estimator,
                    x,
                    t,
                    float(i_xt),
                    float(i_ty),
                    h_x=h_x_nats,
                    h_y=h_y_nats,
                    explained=frozenset(
                        f for (e, lay, f) in explained if (e, lay) == (label, name)
                    ),
                )
                record.update(extra)
                record["flags"] = flags
                result.hints.extend((label, name, flag, hints[flag]) for flag in hints)
            except Exception as err:  # any failure skips this one estimate, never the run
                if strict:
                    raise
                result.warnings.append(
                    f"{label} on layer {name!r} skipped at epoch {epoch}: "
                    f"{type(err).__name__}: {err}"
                )
                continue
            result.records.append(record)
        calibrated = bool(known.get(label) or result.calibration.get(label))
        if estimator.unit == "nats" and not calibrated:
            mine = [r for r in result.records if r["estimator"] == label]
            result.dpi[label] = dpi_violations(mine, dpi_tolerance)
    result.seconds = time.perf_counter() - start
    return result


def _interval(
    estimator: Estimator,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    record: dict[str, Any],
    estimate: tuple[float, float],
    resamples: int,
    seed: int,
    scale: float,
    entropies: tuple[float, float],
    strict: bool,
    warnings: list[str],
) -> dict[str, float]:
    """The half-sample bounds of one record (``_intervals``): ``data`` ``(x, t, y)``,
    ``estimate`` and ``entropies`` (H(X) = log n, H(Y)) in the estimator's own unit, bounds
    times ``scale``. Information bounds are clipped to [0, H(X)] (estimators that treat X
    by identity) and [0, H(Y)]. ``{}`` with a warning if the estimator fails on half the
    rows: the estimate itself is kept."""
    h_x, h_y = entropies
    ceilings = (
        (h_x if estimator.treats_x_by_identity else None, h_y) if estimator.unit == "nats" else None
    )
    x, t, y = data
    try:
        return half_sample_bounds(
            estimator, x, t, y, estimate, resamples, seed, scale, ceilings=ceilings
        )
    except Exception as err:
        if strict:
            raise
        warnings.append(
            f"the 95 % interval of {record['estimator']} on layer {record['layer']!r} is "
            f"skipped at epoch {record['epoch']} (the estimate is kept): it failed on half "
            f"the samples ({x.shape[0] // 2}): {type(err).__name__}: {err}"
        )
        return {}


def _geometry(
    usable: list[tuple[str, torch.Tensor, bool]],
    y: torch.Tensor,
    epoch: int,
    step: int,
    strict: bool,
    warnings: list[str],
) -> list[dict[str, Any]]:
    """One geometry record per usable layer; a failure skips that layer's, with a warning."""
    rows = []
    for name, t, constant in usable:
        row: dict[str, Any] = {"epoch": epoch, "step": step, "layer": name}
        try:
            values = layer_geometry(t, y) if not constant else {}
        except Exception as err:
            if strict:
                raise
            warnings.append(
                f"geometry of layer {name!r} skipped at epoch {epoch}: {type(err).__name__}: {err}"
            )
            continue
        row["within_class_ratio"] = values.get("within_class_ratio")
        row["effective_dim"] = values.get("effective_dim")
        rows.append(row)
    return rows


def _usable_layers(
    layers: Mapping[str, torch.Tensor], n: int, epoch: int, warnings: list[str]
) -> list[tuple[str, torch.Tensor, bool]]:
    """``(name, t, is_constant)`` of the layers with finite activations."""
    usable = []
    for name, t in layers.items():
        if not all_finite(t):
            warnings.append(
                f"layer {name!r} has NaN/Inf activations at epoch {epoch}; its estimates "
                "are skipped"
            )
        elif t.shape[1] == 0 or bool((t == t[:1]).all()):
            warnings.append(
                f"layer {name!r} is constant over the {n} measured samples at epoch "
                f"{epoch} (a dead layer): its information is 0 and is logged as 0"
            )
            usable.append((name, t, True))
        else:
            usable.append((name, t, False))
    return usable


def dpi_violations(records: list[dict[str, Any]], tolerance: float) -> list[str]:
    """Layers (in record order) whose I(X;T) exceeds the previous layer's by more than
    ``tolerance``: impossible for a Markov chain X -> T_1 -> T_2 -> ... Each such record
    gets the ``dpi`` flag."""
    flagged = []
    for previous, current in itertools.pairwise(records):
        if current["I_XT"] > previous["I_XT"] + tolerance:
            flagged.append(f"{current['layer']} (after {previous['layer']})")
            current.setdefault("flags", []).append("dpi")
    return flagged
