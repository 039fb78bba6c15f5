"""Information-plane figures (matplotlib, Agg backend; no display needed).

Input is the history InfoMetrics keeps: a list of records
``{"epoch": int, "estimator": str, "layer": str, "I_XT": float, "I_TY": float, ...}``
(values in the unit of the run, bits by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

MARKERS = "osD^v<>ph*"


def _layers_in_order(records: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.setdefault(record["layer"], None)
    return list(seen)


def information_plane(
    records: Sequence[dict[str, Any]],
    estimator: str,
    *,
    unit: str = "bits",
    h_x: float | None = None,
    h_y: float | None = None,
) -> Figure:
    """The information plane of one estimator: x = I(X;T), y = I(T;Y), one line per layer
    through the measured epochs, points coloured by epoch; axes fixed to [0, H(X)] and
    [0, H(Y)] when given, so that figures of different epochs are comparable."""
    rows = [r for r in records if r["estimator"] == estimator]
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    epochs = [r["epoch"] for r in rows] or [0]
    norm = matplotlib.colors.Normalize(vmin=min(epochs), vmax=max(max(epochs), min(epochs) + 1))
    scatter = None
    for i, layer in enumerate(_layers_in_order(rows)):
        points = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
        xs, ys = [r["I_XT"] for r in points], [r["I_TY"] for r in points]
        ax.plot(xs, ys, color="0.7", linewidth=0.8, zorder=1)
        scatter = ax.scatter(
            xs,
            ys,
            c=[r["epoch"] for r in points],
            cmap="viridis",
            norm=norm,
            marker=MARKERS[i % len(MARKERS)],
            s=22,
            zorder=2,
            label=layer,
        )
    if h_x is not None:
        ax.set_xlim(0, 1.05 * h_x)
        ax.axvline(h_x, color="0.5", linestyle=":", linewidth=0.8)
    if h_y is not None:
        ax.set_ylim(0, 1.05 * h_y)
        ax.axhline(h_y, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"I(X;T) [{unit}]")
    ax.set_ylabel(f"I(T;Y) [{unit}]")
    ax.set_title(f"Information plane ({estimator})")
    if scatter is not None:
        fig.colorbar(scatter, ax=ax, label="epoch")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def information_curves(
    records: Sequence[dict[str, Any]], estimator: str, *, unit: str = "bits"
) -> Figure:
    """I(X;T) and I(T;Y) of every layer against the epoch, for one estimator."""
    rows = [r for r in records if r["estimator"] == estimator]
    fig, (ax_xt, ax_ty) = plt.subplots(1, 2, figsize=(9.0, 3.6), sharex=True)
    for layer in _layers_in_order(rows):
        points = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
        epochs = [r["epoch"] for r in points]
        ax_xt.plot(epochs, [r["I_XT"] for r in points], marker=".", label=layer)
        ax_ty.plot(epochs, [r["I_TY"] for r in points], marker=".", label=layer)
    ax_xt.set_ylabel(f"I(X;T) [{unit}]")
    ax_ty.set_ylabel(f"I(T;Y) [{unit}]")
    for ax in (ax_xt, ax_ty):
        ax.set_xlabel("epoch")
    ax_ty.legend(fontsize=7)
    fig.suptitle(f"Information curves ({estimator})")
    fig.tight_layout()
    return fig
