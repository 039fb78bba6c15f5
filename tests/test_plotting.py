"""Information-plane figures: no global matplotlib state, the unit of each record, error bars."""

from __future__ import annotations

import ast
import inspect
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from lit_infobottleneck import plot_animation, plot_command, plot_geometry, plot_runs, plotting
from lit_infobottleneck.plotting import information_curves, information_plane

LAYERS = ("encoder.1", "encoder.3", "representation")
H_X = math.log2(1797)  # bits: 1,797 distinct inputs (the digits)
H_Y = math.log2(10)


def make_records(
    estimator: str = "binning",
    unit: str | None = "bits",
    epochs: tuple[int, ...] = (0, 1, 2, 4),
    bounds: bool = False,
    scale: float = 1.0,
) -> list[dict]:
    """Records as InfoMetrics writes them; ``scale`` 1 gives bits-like values up to ~8,
    ``unit=None`` an old history without the ``unit`` key."""
    records = []
    for epoch in epochs:
        for i, layer in enumerate(LAYERS):
            i_xt = scale * (8.0 - 2.0 * i - 0.3 * epoch)
            i_ty = scale * (1.0 + 0.5 * epoch - 0.2 * i) * 0.3
            record = {"epoch": epoch, "estimator": estimator, "layer": layer}
            record.update(I_XT=i_xt, I_TY=i_ty)
            if unit is not None:
                record["unit"] = unit
            if bounds:
                record.update(
                    I_XT_low=i_xt - 0.1 * scale,
                    I_XT_high=i_xt + 0.2 * scale,
                    I_TY_low=i_ty - 0.05 * scale,
                    I_TY_high=i_ty + 0.05 * scale,
                )
            records.append(record)
    return records


def hsic_records(bounds: bool = False) -> list[dict]:
    """nHSIC scores in [0, 1] (values of make_records scaled by 0.1)."""
    return make_records("hsic", "nHSIC", bounds=bounds, scale=0.1)


def reference_lines(ax) -> list[tuple[str, float]]:
    """The H(X) (vertical) and H(Y) (horizontal) dotted lines drawn on ``ax``."""
    found = []
    for line in ax.get_lines():
        xs, ys = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if line.get_linestyle() == ":" and len(xs) == 2:
            if xs[0] == xs[1]:
                found.append(("x", float(xs[0])))
            elif ys[0] == ys[1]:
                found.append(("y", float(ys[0])))
    return found


def errorbar_containers(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


# ---------------------------------------------------------------------- no pyplot state


def test_import_keeps_the_users_backend():
    """Importing the plotting module (or ``lit-ib plot``'s) in a notebook does not switch
    the user's matplotlib backend to Agg."""
    code = (
        "import matplotlib\n"
        "before = matplotlib.get_backend()\n"
        "import lit_infobottleneck.plotting, lit_infobottleneck.plot_command\n"
        "print(before, matplotlib.get_backend())\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "svg"]


@pytest.mark.parametrize(
    "module",
    [plotting, plot_command, plot_runs, plot_animation, plot_geometry],
    ids=lambda m: m.__name__,
)
def test_no_pyplot(module):
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            imported.add(node.module)
    assert not any("pyplot" in name for name in imported), imported
    assert not hasattr(module, "plt")


@pytest.mark.parametrize("draw", [information_plane, information_curves])
def test_figures_render_with_agg(draw):
    figure = draw(make_records(bounds=True), "binning")
    assert isinstance(figure, Figure)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    width, height = canvas.get_width_height()
    image = np.asarray(canvas.buffer_rgba())
    assert image.shape == (height, width, 4)
    assert (image[..., :3] < 128).any()  # something dark was drawn (text, points)


def test_figure_goes_to_tensorboard_with_close(tmp_path):
    """``SummaryWriter.add_figure(..., close=True)`` (what InfoMetrics calls) renders a
    figure that pyplot does not manage; ``plt.close`` of it is harmless."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    writer.add_figure("info_plane/hsic", information_plane(hsic_records(), "hsic"), 0, close=True)
    writer.add_figure("info_plane/binning", information_plane(make_records(), "binning"), 1)
    writer.close()
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert set(accumulator.Tags()["images"]) == {"info_plane/hsic", "info_plane/binning"}
    image = accumulator.Images("info_plane/hsic")[0]
    assert image.width > 100
    assert image.height > 100


# ---------------------------------------------------------------------- units and limits


def test_bits_plane_is_clipped_to_the_entropies():
    ax = information_plane(make_records(), "binning", h_x=H_X, h_y=H_Y).axes[0]
    assert ax.get_xlim() == pytest.approx((0, 1.05 * H_X))
    assert ax.get_ylim() == pytest.approx((0, 1.05 * H_Y))
    assert ax.get_xlabel() == "I(X;T) [bits]"
    assert ax.get_ylabel() == "I(T;Y) [bits]"
    assert sorted(reference_lines(ax)) == [("x", pytest.approx(H_X)), ("y", pytest.approx(H_Y))]


def test_hsic_plane_uses_its_unit_and_no_entropy_limits():
    """nHSIC is a unitless dependence score in [0, 1], not information: labelled as such,
    on [0, 1] axes, with no H(X)/H(Y) lines, whatever the run's ``unit`` and entropies."""
    ax = information_plane(hsic_records(), "hsic", unit="bits", h_x=H_X, h_y=H_Y).axes[0]
    assert "nHSIC" in ax.get_xlabel()
    assert "nHSIC" in ax.get_ylabel()
    assert "bits" not in ax.get_xlabel() + ax.get_ylabel()
    assert "I(" not in ax.get_xlabel() + ax.get_ylabel()
    assert ax.get_xlim() != pytest.approx((0, 1.05 * H_X))
    assert ax.get_ylim() != pytest.approx((0, 1.05 * H_Y))
    assert ax.get_xlim()[1] <= 1.1
    assert ax.get_ylim()[1] <= 1.1
    assert reference_lines(ax) == []
    assert "nHSIC" in ax.get_title()


def test_raw_hsic_is_not_clipped_to_one():
    records = make_records("hsic", "HSIC", scale=0.01)
    ax = information_plane(records, "hsic", h_x=H_X, h_y=H_Y).axes[0]
    assert "HSIC" in ax.get_xlabel()
    assert reference_lines(ax) == []
    assert ax.get_xlim()[1] < 1.05 * H_X
    assert ax.get_xlim()[1] >= max(r["I_XT"] for r in records)


def test_curves_use_the_unit_of_the_records():
    figure = information_curves(hsic_records(), "hsic", unit="bits")
    ax_xt, ax_ty = figure.axes[:2]
    assert "nHSIC" in ax_xt.get_ylabel()
    assert "nHSIC" in ax_ty.get_ylabel()
    assert "bits" not in ax_xt.get_ylabel() + ax_ty.get_ylabel()
    nats = information_curves(make_records(unit="nats"), "binning", unit="bits")
    assert [ax.get_ylabel() for ax in nats.axes[:2]] == ["I(X;T) [nats]", "I(T;Y) [nats]"]


def test_record_unit_overrides_the_argument_and_old_histories_use_it():
    nats = information_plane(make_records(unit="nats"), "binning", unit="bits").axes[0]
    assert nats.get_xlabel() == "I(X;T) [nats]"
    old = information_plane(make_records(unit=None), "binning", unit="nats").axes[0]
    assert old.get_xlabel() == "I(X;T) [nats]"


def test_only_the_estimators_own_records_set_its_unit():
    records = make_records() + hsic_records()
    assert information_plane(records, "binning").axes[0].get_xlabel() == "I(X;T) [bits]"
    assert "nHSIC" in information_plane(records, "hsic").axes[0].get_xlabel()


def test_mixed_units_of_one_estimator_are_refused():
    records = make_records(epochs=(0,)) + make_records(unit="nats", epochs=(1,))
    with pytest.raises(ValueError, match="binning.*bits.*nats"):
        information_plane(records, "binning")


# ---------------------------------------------------------------------- error bars


def test_plane_draws_error_bars_when_bounds_are_given():
    records = make_records(bounds=True)
    ax = information_plane(records, "binning", h_x=H_X, h_y=H_Y).axes[0]
    containers = errorbar_containers(ax)
    assert len(containers) == len(LAYERS)
    assert all(c.has_xerr and c.has_yerr for c in containers)
    # one segment per point and direction, from the lower to the upper bound
    segments = np.concatenate([c.lines[2][0].get_segments() for c in containers])
    lows = sorted(r["I_XT_low"] for r in records)
    assert sorted(segment[0][0] for segment in segments) == pytest.approx(lows)
    assert errorbar_containers(information_plane(make_records(), "binning").axes[0]) == []


def test_curves_draw_error_bars_when_bounds_are_given():
    figure = information_curves(hsic_records(bounds=True), "hsic")
    for ax in figure.axes[:2]:
        containers = errorbar_containers(ax)
        assert len(containers) == len(LAYERS)
        assert all(c.has_yerr for c in containers)
    plain = information_curves(hsic_records(), "hsic")
    assert all(errorbar_containers(ax) == [] for ax in plain.axes[:2])


def test_bounds_on_the_wrong_side_of_the_estimate_do_not_fail():
    """Bias-corrected percentile bounds can lie above the estimate: drawn as zero length."""
    records = make_records(bounds=True, epochs=(0,))
    records[0]["I_XT_low"] = records[0]["I_XT"] + 0.5
    records[1].pop("I_TY_high")  # a record without complete bounds gets no bar
    for draw in (information_plane, information_curves):
        FigureCanvasAgg(draw(records, "binning")).draw()


def test_flagged_points_are_drawn_hollow_and_explained_in_the_legend():
    records = make_records()
    for record in records:
        if record["epoch"] == 0:
            record["flags"] = ["saturated_xt"]
    ax = information_plane(records, "binning", h_x=8.0, h_y=3.3).axes[0]
    hollow = [c for c in ax.collections if len(c.get_facecolors()) == 0]
    filled = [c for c in ax.collections if len(c.get_facecolors()) > 0]
    flagged = sum(1 for r in records if r.get("flags") and r["estimator"] == "binning")
    assert sum(len(c.get_offsets()) for c in hollow) == flagged > 0
    assert sum(len(c.get_offsets()) for c in filled) == sum(
        1 for r in records if not r.get("flags") and r["estimator"] == "binning"
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("hollow: flagged") for label in labels)
    clean = information_plane(make_records(), "binning", h_x=8.0, h_y=3.3).axes[0]
    assert not any(t.get_text().startswith("hollow") for t in clean.get_legend().get_texts())


def _outside_the_figure(fig: Figure) -> list[str]:
    """The axis labels, titles and colorbar labels of ``fig`` that reach past its edges."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # lays the figure out (the constrained engine runs at draw time)
    box = fig.bbox
    outside = []
    for ax in fig.axes:
        for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
            if not text.get_text():
                continue
            extent = text.get_window_extent(renderer)
            if (
                extent.x0 < box.x0 - 0.5
                or extent.y0 < box.y0 - 0.5
                or extent.x1 > box.x1 + 0.5
                or extent.y1 > box.y1 + 0.5
            ):
                outside.append(text.get_text())
    return outside


@pytest.mark.parametrize(
    ("records", "kwargs"),
    [
        (make_records(), {"h_x": H_X, "h_y": H_Y}),  # fixed margins
        (hsic_records(), {}),  # fixed margins: [0, 1]
        (make_records("hsic", "HSIC", scale=0.001), {}),  # tick labels like 0.0075
        (make_records(scale=-100.0), {}),  # negative, wide, no entropies given
        (make_records(epochs=(0, 1500, 3000)), {"h_x": H_X, "h_y": H_Y}),  # 4-digit epochs
    ],
    ids=["bits", "nHSIC", "raw-HSIC", "negative-no-limits", "epoch-3000"],
)
def test_labels_and_titles_stay_inside_the_plane(records, kwargs):
    estimator = records[0]["estimator"]
    assert _outside_the_figure(information_plane(records, estimator, **kwargs)) == []
