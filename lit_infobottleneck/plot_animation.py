"""The information plane as an animated GIF: one frame per measured epoch.

Each frame shows every layer's trail (its path through the plane up to the frame's epoch,
small dots) and its current point (large, hollow when the estimate is flagged, as in
``lit_infobottleneck.plotting.information_plane``), with the epoch in the title.
The axes are fixed over all frames so that motion is motion of the layers, not of the axes:
[0, 1.05 H(X)] x [0, 1.05 H(Y)] in bits or nats when ``h_x``/``h_y`` are known, [0, 1.05] for
nHSIC, else the range of the data with a 5 % margin.

Built with ``matplotlib.animation.FuncAnimation`` on a ``matplotlib.figure.Figure``
with a ``matplotlib.backends.backend_agg.FigureCanvasAgg`` (no pyplot state) and written
by ``matplotlib.animation.PillowWriter``. ``lit-ib plot RUN_DIR --animate`` writes one
``info_plane_<estimator>.gif`` per estimator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lit_infobottleneck.plotting import (
    _MARGIN,
    INFORMATION_UNITS,
    MARKERS,
    UNIT_INTERVAL_SCORES,
    _labels,
    _layers_in_order,
    _points,
    _rows,
    _unit,
)

#: GIF defaults: small files (480 x 360 pixels), four epochs a second.
GIF_DPI = 80
GIF_FPS = 4
FIGSIZE = (6.0, 4.5)

Limits = tuple[float, float]


def plane_limits(
    rows: Sequence[dict[str, Any]], unit: str, h_x: float | None, h_y: float | None
) -> tuple[Limits, Limits]:
    """The fixed ``(xlim, ylim)`` of every frame (see the module docstring)."""
    if unit in UNIT_INTERVAL_SCORES:
        return (0.0, _MARGIN), (0.0, _MARGIN)
    information = unit in INFORMATION_UNITS
    limits = []
    for key, bound in (("I_XT", h_x), ("I_TY", h_y)):
        if information and bound is not None:
            limits.append((0.0, _MARGIN * bound))
        else:
            limits.append(_data_range([r[key] for r in rows]))
    return limits[0], limits[1]


def _data_range(values: Sequence[float]) -> Limits:
    low, high = min(values), max(values)
    span = high - low or max(abs(high), 1.0)
    return low - 0.05 * span, high + 0.05 * span


def information_plane_animation(
    records: Sequence[dict[str, Any]],
    estimator: str,
    *,
    unit: str = "bits",
    h_x: float | None = None,
    h_y: float | None = None,
    note: str | None = None,
    figsize: tuple[float, float] = FIGSIZE,
    fig: Figure | None = None,
) -> FuncAnimation:
    """The animation of one estimator's plane, one frame per measured epoch in epoch order
    (``unit`` is used only for records without one; ``note`` is added to the title), drawn
    on ``fig`` (an empty ``Figure``; a new one of ``figsize`` by default). Save it with
    ``.save(path, writer=PillowWriter(fps=...), dpi=...)``, or call
    ``save_information_plane_gif``."""
    rows = _rows(records, estimator)
    if not rows:
        raise ValueError(f"no records of estimator {estimator!r} to animate.")
    unit = _unit(rows, estimator, unit)
    epochs = sorted({r["epoch"] for r in rows})
    fig = fig if fig is not None else Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xlim, ylim = plane_limits(rows, unit, h_x, h_y)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    if unit in INFORMATION_UNITS:
        for bound, line in ((h_x, ax.axvline), (h_y, ax.axhline)):
            if bound is not None:
                line(bound, color="0.5", linestyle=":", linewidth=0.8)
    x_label, y_label = _labels(unit)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if unit in INFORMATION_UNITS:
        title = f"Information plane ({estimator})"
    else:
        title = f"Dependence plane ({estimator}: {unit}, not information)"
    heading = ax.set_title("", fontsize=10)  # the epoch in the title: off the data
    colors = colormaps["tab10"]
    layers = []  # (points, trail, head, colour) of every layer in depth order
    handles: list[Artist] = []
    for i, layer in enumerate(_layers_in_order(rows)):
        color = colors(i % colors.N)
        marker = MARKERS[i % len(MARKERS)]
        (trail,) = ax.plot([], [], color=color, linewidth=1.0, marker=".", markersize=4)
        (head,) = ax.plot([], [], linestyle="", marker=marker, markersize=9, color=color, zorder=3)
        layers.append((_points(rows, layer), trail, head, color))
        handles.append(Line2D([], [], color=color, marker=marker, label=layer))
    if any(r.get("flags") for r in rows):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="none",
                color="0.3",
                label="hollow: flagged",
            )
        )
    fig.legend(handles=handles, fontsize=7, loc="outside right upper")  # off the data too

    def draw(epoch: int) -> list[Artist]:
        for points, trail, head, color in layers:
            path = [r for r in points if r["epoch"] <= epoch]
            trail.set_data([r["I_XT"] for r in path], [r["I_TY"] for r in path])
            current = path[-1:]  # nothing yet when the layer's first record is later
            head.set_data([r["I_XT"] for r in current], [r["I_TY"] for r in current])
            flagged = bool(current and current[0].get("flags"))
            head.set_markerfacecolor("none" if flagged else color)
        heading.set_text(f"{title}: epoch {epoch}" + (f"\n{note}" if note else ""))
        return [heading, *(a for _, trail, head, _ in layers for a in (trail, head))]

    return FuncAnimation(fig, draw, frames=epochs, repeat=False, cache_frame_data=False)


def save_information_plane_gif(
    records: Sequence[dict[str, Any]],
    estimator: str,
    path: Path,
    *,
    unit: str = "bits",
    h_x: float | None = None,
    h_y: float | None = None,
    note: str | None = None,
    fps: int = GIF_FPS,
    dpi: int = GIF_DPI,
) -> Path:
    """Write the animation of ``information_plane_animation`` to ``path`` (a GIF of
    ``figsize * dpi`` pixels, ``fps`` frames a second, looping); returns ``path``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    animation = information_plane_animation(
        records, estimator, unit=unit, h_x=h_x, h_y=h_y, note=note
    )
    animation.save(str(path), writer=PillowWriter(fps=fps), dpi=dpi)
    return path
