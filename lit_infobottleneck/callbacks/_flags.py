"""Honesty flags of InfoMetrics records: when a number measures the estimator, not the layer.

Each record gets a ``flags`` list (empty when the estimate is informative) of these codes:

- ``saturated_xt``: I(X;T) >= 97 % of H(X) = log n for an estimator that treats X by
  identity (binning, kde, noisy): it resolves every sample, so it measures n, not the layer.
- ``saturated_ty``: I(T;Y) >= 97 % of H(Y): the classes are fully separated at this
  resolution (true of a trained network, but I(T;Y) cannot show anything more).
- ``clipped``: binning with a fixed ``value_range`` while activations fell outside it (the
  fraction is recorded as ``clipped_fraction``).
- ``high_dim_knn``: KSG / Kozachenko-Leonenko on more than 20 joint dimensions, where it is
  known to be biased low (Kraskov et al. 2004; Gao, Ver Steeg & Galstyan 2015).
- ``bound_cap``: InfoNCE within 0.1 nats of its ceiling log(batch size).
- ``dpi``: I(X;T) above the previous layer's by more than ``dpi_tolerance`` (a Markov chain
  X -> T_1 -> T_2 cannot gain information, Geiger 2021). Not checked for calibrated
  estimators (``noise_var="auto"``, ...): they measure I(X; T_l + Z_l) with noise set per
  layer, and quantities at different resolutions are not ordered by data processing;
  compare their epochs, not their layers.

``record_flags`` computes them for one estimate and returns, per flag, a hint for the
user that carries the numbers behind it and a fix; ``flag_summary`` sums up a history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from lit_infobottleneck.estimators import Estimator
from lit_infobottleneck.estimators.kde import AUTO_NOISE_FRACTION, median_squared_distance

FLAGS = ("saturated_xt", "saturated_ty", "clipped", "high_dim_knn", "bound_cap", "dpi")
SATURATION = 0.97
KNN_MAX_DIMS = 20
BOUND_CAP_MARGIN = 0.1  # nats


def record_flags(
    estimator: Estimator,
    x: torch.Tensor,
    t: torch.Tensor,
    i_xt: float,
    i_ty: float,
    *,
    h_x: float,
    h_y: float,
    explained: frozenset[str] = frozenset(),
) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """``(flags, hints, extra record fields)`` for one estimate; ``i_xt``, ``i_ty``, ``h_x``
    and ``h_y`` in nats, ``x`` ``(n, d_x)`` and ``t`` ``(n, d_t)`` the data estimated from.
    Flags in ``explained`` (already told to the user) get no hint, which spares the costly
    ones (a median distance) on every later epoch."""
    flags: list[str] = []
    hints: dict[str, str] = {}
    extra: dict[str, Any] = {}
    params = estimator.params()
    if estimator.treats_x_by_identity and i_xt >= SATURATION * h_x:
        flags.append("saturated_xt")
        if "saturated_xt" not in explained:
            hints["saturated_xt"] = _saturation_hint(estimator.name, params, t, i_xt, h_x)
    if estimator.unit == "nats" and h_y > 0 and i_ty >= SATURATION * h_y:
        flags.append("saturated_ty")
        hints["saturated_ty"] = (
            f"I(T;Y) = {i_ty:.3g} of H(Y) = {h_y:.3g} nats: the classes are fully separated "
            "at this resolution, so I(T;Y) cannot show more; a coarser resolution (larger "
            "noise_var, fewer bins) can"
        )
    value_range = params.get("value_range")
    if estimator.name == "binning" and isinstance(value_range, (tuple, list)):
        low, high = float(value_range[0]), float(value_range[1])
        fraction = float(((t < low) | (t > high)).double().mean())
        if fraction > 0:
            flags.append("clipped")
            extra["clipped_fraction"] = fraction
            hints["clipped"] = (
                f"{fraction:.1%} of the activations fell outside value_range ({low:g}, "
                f"{high:g}) and were put in the edge bins; widen the range or use "
                "value_range='auto'"
            )
    if estimator.name == "ksg":
        dims = max(x.shape[1] + t.shape[1], t.shape[1])
        if dims > KNN_MAX_DIMS:
            flags.append("high_dim_knn")
            hints["high_dim_knn"] = (
                f"{dims} joint dimensions (> {KNN_MAX_DIMS}): k-NN estimates are biased low "
                "there (Kraskov et al. 2004; Gao et al. 2015); use 'gaussian' or 'noisy', or "
                "measure a narrower layer"
            )
    if estimator.name == "infonce":
        ceiling = math.log(min(int(params["batch_size"]), x.shape[0]))
        if max(i_xt, i_ty) >= ceiling - BOUND_CAP_MARGIN:
            flags.append("bound_cap")
            hints["bound_cap"] = (
                f"InfoNCE reads {max(i_xt, i_ty):.3g} nats, at its ceiling log(batch_size) = "
                f"{ceiling:.3g}; raise batch_size (the ceiling grows as its log)"
            )
    return flags, hints, extra


def _saturation_hint(
    name: str, params: dict[str, Any], t: torch.Tensor, i_xt: float, h_x: float
) -> str:
    """Why an identity-based I(X;T) sits at log n, and what to change, with numbers."""
    head = f"I(X;T) = {i_xt:.3g} of H(X) = log n = {h_x:.3g} nats: "
    if name in ("kde", "noisy"):
        median_sq = median_squared_distance(t)
        noise_var = params.get("noise_var")
        noise = f"{noise_var:.3g}" if isinstance(noise_var, float) else str(noise_var)
        return head + (
            f"the median squared distance between samples is {median_sq:.3g}, and noise_var "
            f"{noise} resolves every sample; use noise_var='auto' "
            f"({AUTO_NOISE_FRACTION:g} x median = {AUTO_NOISE_FRACTION * median_sq:.3g}) or "
            "larger"
        )
    if name == "binning":
        return head + (
            f"{params.get('bins')} bins on {t.shape[1]} units give every sample its own "
            "cell; measure a narrower layer, use fewer bins, or use 'kde'/'noisy' with "
            "noise_var='auto'"
        )
    return head + "the estimator resolves every sample; coarsen its parameter"


def last_records(history: Sequence[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """``(epoch, records)`` of the last measured epoch of ``history`` (``(-1, [])`` if empty)."""
    if not history:
        return -1, []
    last = max(r["epoch"] for r in history)
    return last, [r for r in history if r["epoch"] == last]


def flag_summary(history: Sequence[dict[str, Any]]) -> str:
    """One line on the flags of the last measured epoch of ``history`` ("" if empty)."""
    last, records = last_records(history)
    if not records:
        return ""
    counts: dict[str, int] = {}
    for record in records:
        for flag in record.get("flags", []):
            counts[flag] = counts.get(flag, 0) + 1
    flagged = sum(1 for r in records if r.get("flags"))
    if not flagged:
        return f"InfoMetrics: no flags at epoch {last} ({len(records)} estimates)."
    listed = ", ".join(f"{flag} {count}" for flag, count in counts.items())
    return (
        f"InfoMetrics: {flagged} of {len(records)} estimates flagged at epoch {last} "
        f"({listed}); see info_metrics.json."
    )
