"""Information-plane figures (matplotlib's object-oriented API; no pyplot, no display).

The functions return a ``matplotlib.figure.Figure`` that no pyplot state manages: it
leaves the user's backend alone, needs no ``close``, and renders with ``fig.savefig(...)``,
``FigureCanvasAgg(fig)`` or TensorBoard's ``SummaryWriter.add_figure``.

Input is the history InfoMetrics keeps: a list of records
``{"epoch": int, "estimator": str, "layer": str, "I_XT": float, "I_TY": float, "unit": str}``,
optionally with bootstrap bounds ``I_XT_low``, ``I_XT_high``, ``I_TY_low``, ``I_TY_high``
(drawn as error bars), and ``flags`` (a non-empty list marks an estimate that measures
the estimator rather than the layer, e.g. ``saturated_xt``: drawn hollow). ``unit`` is
``"bits"`` or ``"nats"`` for information estimators and the score's own name for
dependence measures that are not information (``"nHSIC"``, unitless in [0, 1], or
``"HSIC"``); records of one estimator share one unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

MARKERS = "osD^v<>ph*"
#: Units of mutual information: their planes are bounded by H(X) and H(Y).
INFORMATION_UNITS = ("bits", "nats")
#: Scores bounded by 1 (normalised HSIC): their planes are drawn on [0, 1].
UNIT_INTERVAL_SCORES = ("nHSIC",)
_MARGIN = 1.05  # axes end 5 % beyond their bound


def _rows(records: Sequence[dict[str, Any]], estimator: str) -> list[dict[str, Any]]:
    return [r for r in records if r["estimator"] == estimator]


def _layers_in_order(records: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.setdefault(record["layer"], None)
    return list(seen)


def _points(rows: Sequence[dict[str, Any]], layer: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])


def _unit(rows: Sequence[dict[str, Any]], estimator: str, fallback: str) -> str:
    """The unit the records of ``estimator`` carry; ``fallback`` for old histories without."""
    units = sorted({r["unit"] for r in rows if "unit" in r})
    if len(units) > 1:
        raise ValueError(f"the records of estimator {estimator!r} mix units {units}.")
    return units[0] if units else fallback


def _labels(unit: str) -> tuple[str, str]:
    """Axis labels of the two quantities: I(X;T), I(T;Y) with an information unit, else the
    score's name (``nHSIC(X, T)``): a dependence score is not information."""
    if unit in INFORMATION_UNITS:
        return f"I(X;T) [{unit}]", f"I(T;Y) [{unit}]"
    return f"{unit}(X, T) [unitless]", f"{unit}(T, Y) [unitless]"


def _bounded(points: Sequence[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """The points that carry both bounds (``<key>_low``, ``<key>_high``) of every key."""
    return [r for r in points if all(f"{k}_low" in r and f"{k}_high" in r for k in keys)]


def _errors(points: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    """``[[below], [above]]``: distances from ``key`` to its bounds, for ``errorbar`` (a
    bias-corrected percentile bound can lie on the wrong side of the estimate: drawn as 0)."""
    below = [max(r[key] - r[f"{key}_low"], 0.0) for r in points]
    above = [max(r[f"{key}_high"] - r[key], 0.0) for r in points]
    return [below, above]


def information_plane(
    records: Sequence[dict[str, Any]],
    estimator: str,
    *,
    unit: str = "bits",
    h_x: float | None = None,
    h_y: float | None = None,
) -> Figure:
    """The information plane of one estimator: x = I(X;T), y = I(T;Y), one line per layer
    through the measured epochs, points coloured by epoch, bootstrap bounds as error bars.

    ``unit`` is used only for records without a ``unit`` key. In bits or nats the axes are
    fixed to [0, H(X)] and [0, H(Y)] (``h_x``, ``h_y`` in that unit) when given, so that
    figures of different epochs are comparable. A dependence score (nHSIC, HSIC) is not
    bounded by the entropies: its axes are named after it, with no H(X)/H(Y) lines; nHSIC
    axes are [0, 1].
    """
    rows = _rows(records, estimator)
    unit = _unit(rows, estimator, unit)
    epochs = [r["epoch"] for r in rows] or [0]
    fixed = _fixed_axes(unit, h_x, h_y, epochs)
    fig = Figure(figsize=(6.0, 4.5), layout=None if fixed else "constrained")
    if fixed:
        # fixed margins: the "constrained" engine costs about 40 % of drawing a plane (drawn
        # at every measured epoch); they fit the short tick labels of fixed axes only
        fig.subplots_adjust(left=0.11, right=0.89, bottom=0.11, top=0.93)
    ax = fig.subplots()
    norm = Normalize(vmin=min(epochs), vmax=max(max(epochs), min(epochs) + 1))
    scatter = None
    any_flagged = False
    for i, layer in enumerate(_layers_in_order(rows)):
        points = _points(rows, layer)
        xs, ys = [r["I_XT"] for r in points], [r["I_TY"] for r in points]
        ax.plot(xs, ys, color="0.7", linewidth=0.8, zorder=1)
        bounded = _bounded(points, "I_XT", "I_TY")
        if bounded:
            ax.errorbar(
                [r["I_XT"] for r in bounded],
                [r["I_TY"] for r in bounded],
                xerr=_errors(bounded, "I_XT"),
                yerr=_errors(bounded, "I_TY"),
                fmt="none",
                ecolor="0.55",
                elinewidth=0.7,
                capsize=1.5,
                zorder=1.5,
            )
        marker = MARKERS[i % len(MARKERS)]
        clean = [r for r in points if not r.get("flags")]
        flagged = [r for r in points if r.get("flags")]
        scatter = ax.scatter(
            [r["I_XT"] for r in clean],
            [r["I_TY"] for r in clean],
            c=[r["epoch"] for r in clean],
            cmap="viridis",
            norm=norm,
            marker=marker,
            s=22,
            zorder=2,
            label=layer if clean else None,
        )
        if flagged:
            ax.scatter(
                [r["I_XT"] for r in flagged],
                [r["I_TY"] for r in flagged],
                facecolors="none",
                edgecolors=[colormaps["viridis"](norm(r["epoch"])) for r in flagged],
                marker=marker,
                s=22,
                linewidths=1.0,
                zorder=2,
                label=layer if not clean else None,
            )
            any_flagged = True
    _set_limits(ax, unit, h_x, h_y)
    x_label, y_label = _labels(unit)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if unit in INFORMATION_UNITS:
        ax.set_title(f"Information plane ({estimator})")
    else:
        ax.set_title(f"Dependence plane ({estimator}: {unit}, not information)")
    if scatter is not None:
        colorbar = fig.colorbar(scatter, ax=ax, label="epoch", fraction=0.05, pad=0.02)
        colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = ax.get_legend_handles_labels()
        if any_flagged:
            handles.append(
                Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="0.3")
            )
            labels.append("hollow: flagged (saturated, clipped, ...)")
        ax.legend(handles, labels, fontsize=7, loc="best")
    return fig


def _fixed_axes(unit: str, h_x: float | None, h_y: float | None, epochs: list[int]) -> bool:
    """True if both axes are fixed by ``_set_limits`` to short ranges ([0, H] in bits or
    nats with both entropies given, or [0, 1]) and the epochs have at most three digits:
    then every tick label is short and fixed margins hold the labels."""
    fixed = (unit in INFORMATION_UNITS and h_x is not None and h_y is not None) or (
        unit in UNIT_INTERVAL_SCORES
    )
    return fixed and max(epochs) < 1000 and (h_x or 0) < 1000 and (h_y or 0) < 1000


def _set_limits(ax: Axes, unit: str, h_x: float | None, h_y: float | None) -> None:
    if unit in INFORMATION_UNITS:
        for bound, set_lim, line in (
            (h_x, ax.set_xlim, ax.axvline),
            (h_y, ax.set_ylim, ax.axhline),
        ):
            if bound is not None:
                set_lim(0, _MARGIN * bound)
                line(bound, color="0.5", linestyle=":", linewidth=0.8)
    elif unit in UNIT_INTERVAL_SCORES:
        ax.set_xlim(0, _MARGIN)
        ax.set_ylim(0, _MARGIN)


def label_curve_axes(ax_xt: Axes, ax_ty: Axes, unit: str) -> None:
    """Axis labels (in ``unit``), integer epochs, and [0, 1] for nHSIC, of the two panels of
    a curves figure."""
    for ax, label in zip((ax_xt, ax_ty), _labels(unit), strict=True):
        ax.set_ylabel(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if unit in UNIT_INTERVAL_SCORES:
        ax_xt.set_ylim(0, _MARGIN)
        ax_ty.set_ylim(0, _MARGIN)


def information_curves(
    records: Sequence[dict[str, Any]], estimator: str, *, unit: str = "bits"
) -> Figure:
    """I(X;T) and I(T;Y) of every layer against the epoch, for one estimator, with bootstrap
    bounds as error bars; ``unit`` (the axis label) is used only for records without one."""
    rows = _rows(records, estimator)
    unit = _unit(rows, estimator, unit)
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_xt, ax_ty = fig.subplots(1, 2, sharex=True)
    for layer in _layers_in_order(rows):
        points = _points(rows, layer)
        epochs = [r["epoch"] for r in points]
        for ax, key in ((ax_xt, "I_XT"), (ax_ty, "I_TY")):
            (line,) = ax.plot(epochs, [r[key] for r in points], marker=".", label=layer)
            bounded = _bounded(points, key)
            if bounded:
                ax.errorbar(
                    [r["epoch"] for r in bounded],
                    [r[key] for r in bounded],
                    yerr=_errors(bounded, key),
                    fmt="none",
                    ecolor=line.get_color(),
                    elinewidth=0.8,
                    capsize=2.0,
                    alpha=0.6,
                )
    label_curve_axes(ax_xt, ax_ty, unit)
    ax_ty.legend(fontsize=7)
    if unit in INFORMATION_UNITS:
        fig.suptitle(f"Information curves ({estimator})")
    else:
        fig.suptitle(f"Dependence curves ({estimator}: {unit}, not information)")
    return fig
