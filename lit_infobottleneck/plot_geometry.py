"""Representation-geometry curves of a run: class collapse and effective dimension per layer.

Input is the ``"geometry"`` list of an InfoMetrics history: records
``{"epoch": int, "step": int, "layer": str, "within_class_ratio": float | None,
"effective_dim": float | None}``, where

- ``within_class_ratio`` = tr(S_within) / tr(S_total), unitless in [0, 1]: 0 when every class
  has collapsed to its mean (neural collapse NC1, Papyan et al. 2020), 1 when the class
  means coincide;
- ``effective_dim`` = (sum λ)² / sum λ², the participation ratio of the covariance spectrum,
  in [1, d] dimensions.

``None`` (a value the callback could not compute) is left out of the line. A record may carry
``<key>_low`` and ``<key>_high`` (the mean of several runs, see ``plot_runs``): the band
between them is shaded. Like ``lit_infobottleneck.plotting``, figures are built with the
object-oriented API (no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: The geometry quantities, in the order of the panels.
GEOMETRY_KEYS = ("within_class_ratio", "effective_dim")
_TITLES = {
    "within_class_ratio": "Within-class / total scatter (NC1)",
    "effective_dim": "Effective dimension (Σλ)² / Σλ²",
}
_Y_LABELS = {
    "within_class_ratio": "tr(S_within) / tr(S_total) [unitless]",
    "effective_dim": "dimensions (participation ratio)",
}


def _layers(records: Sequence[dict[str, Any]], layers: Sequence[str] | None) -> list[str]:
    """``layers`` (depth order) first, then any other layer in order of appearance."""
    seen = dict.fromkeys(layers or ())
    for record in records:
        seen.setdefault(record["layer"], None)
    return [layer for layer in seen if any(r["layer"] == layer for r in records)]


def geometry_curves(
    geometry_records: Sequence[dict[str, Any]],
    *,
    layers: Sequence[str] | None = None,
    note: str | None = None,
) -> Figure:
    """Two panels against the epoch, one line per layer (in the order of ``layers``, the
    history's depth order, else of first appearance): the within-class / total scatter
    ratio on [0, 1.05] and the effective dimension. ``note`` (e.g. "mean of 5 runs, band:
    ±1 standard error") is added to the title; bands are shaded where records carry
    ``<key>_low`` and ``<key>_high``."""
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    axes = dict(zip(GEOMETRY_KEYS, fig.subplots(1, 2, sharex=True), strict=True))
    for layer in _layers(geometry_records, layers):
        points = sorted(
            (r for r in geometry_records if r["layer"] == layer), key=lambda r: r["epoch"]
        )
        color = None
        for key, ax in axes.items():
            known = [r for r in points if r.get(key) is not None]
            if not known:
                continue
            epochs = [r["epoch"] for r in known]
            (line,) = ax.plot(epochs, [r[key] for r in known], marker=".", label=layer, color=color)
            color = line.get_color()  # one colour per layer in both panels
            banded = [
                r
                for r in known
                if r.get(f"{key}_low") is not None and r.get(f"{key}_high") is not None
            ]
            if banded:
                ax.fill_between(
                    [r["epoch"] for r in banded],
                    [r[f"{key}_low"] for r in banded],
                    [r[f"{key}_high"] for r in banded],
                    color=color,
                    alpha=0.2,
                    linewidth=0,
                )
    for key, ax in axes.items():
        ax.set_title(_TITLES[key], fontsize=10)
        ax.set_ylabel(_Y_LABELS[key])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes["within_class_ratio"].set_ylim(0, 1.05)
    axes["effective_dim"].set_ylim(bottom=0)
    with_lines = [ax for ax in axes.values() if ax.get_lines()]
    if with_lines:
        with_lines[-1].legend(fontsize=7)
    title = "Representation geometry"
    fig.suptitle(f"{title}: {note}" if note else title)
    return fig
