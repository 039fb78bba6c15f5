"""``lit-ib plot --animate``: one GIF frame per measured epoch, fixed axes, trails."""

from __future__ import annotations

import math

import pytest
from matplotlib.figure import Figure
from PIL import Image

from lit_infobottleneck.plot_animation import (
    information_plane_animation,
    plane_limits,
    save_information_plane_gif,
)
from lit_infobottleneck.plot_command import plot_main
from tests.test_plot_runs import write_run
from tests.test_plotting import LAYERS, hsic_records, make_records


def test_animate_writes_one_frame_per_measured_epoch(tmp_path):
    epochs = (0, 1, 2, 4, 7)
    run = write_run(tmp_path / "version_0", epochs=epochs, hsic=False)
    written = plot_main([str(run), "--animate", "--fps", "5", "--dpi", "40"])
    gifs = [path for path in written if path.suffix == ".gif"]
    assert [path.name for path in gifs] == ["info_plane_binning.gif"]
    for gif in gifs:
        with Image.open(gif) as image:
            assert image.format == "GIF"
            assert image.n_frames == len(epochs)
            assert image.size == (6 * 80, int(4.5 * 80))  # figsize x the GIF dpi (80)
            assert image.info["duration"] == 200  # 5 frames a second
            image.seek(0)
            first = image.convert("RGB").tobytes()
            image.seek(image.n_frames - 1)
            last = image.convert("RGB").tobytes()
            assert first != last


def test_gif_dpi_sets_the_size_and_fps_must_be_positive(tmp_path, capsys):
    path = save_information_plane_gif(
        make_records(epochs=(0, 3)), "binning", tmp_path / "a.gif", dpi=40
    )
    with Image.open(path) as image:
        assert (image.n_frames, image.size) == (2, (240, 180))
    with pytest.raises(SystemExit):
        plot_main([str(tmp_path), "--animate", "--fps", "0"])
    assert "--fps must be positive" in capsys.readouterr().err


def test_frames_in_epoch_order_with_trails_and_the_epoch_in_the_title(tmp_path):
    records = make_records(epochs=(4, 0, 2, 1))  # any order in the history
    for r in records:
        if r["epoch"] == 4 and r["layer"] == "encoder.1":
            r["flags"] = ["saturated_xt"]
    fig = Figure(layout="constrained")
    animation = information_plane_animation(records, "binning", h_x=10.8, h_y=3.3, fig=fig)
    assert list(animation.new_frame_seq()) == [0, 1, 2, 4]
    animation.save(str(tmp_path / "b.gif"), writer="pillow", dpi=20)
    ax = fig.axes[0]  # after saving: the artists of the last frame
    assert ax.get_title().startswith("Information plane (binning): epoch 4")
    assert ax.get_xlim() == pytest.approx((0, 1.05 * 10.8))
    assert ax.get_ylim() == pytest.approx((0, 1.05 * 3.3))
    lines = [line for line in ax.get_lines() if line.get_linestyle() != ":"]
    trails, heads = lines[0::2], lines[1::2]
    assert len(trails) == len(LAYERS)
    assert list(trails[0].get_xdata()) == pytest.approx([8.0, 7.7, 7.4, 6.8])  # the path
    assert list(heads[0].get_xdata()) == pytest.approx([6.8])  # the current point
    assert heads[0].get_markerfacecolor() == "none"  # flagged: hollow
    assert heads[1].get_markerfacecolor() != "none"
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [*LAYERS, "hollow: flagged"]


def test_fixed_axes_without_entropies_span_the_data():
    records = make_records()
    (x_low, x_high), (y_low, y_high) = plane_limits(records, "bits", None, None)
    xs, ys = [r["I_XT"] for r in records], [r["I_TY"] for r in records]
    assert x_low < min(xs) and x_high > max(xs)
    assert x_high - max(xs) == pytest.approx(0.05 * (max(xs) - min(xs)))
    assert y_low < min(ys) and y_high > max(ys)
    assert plane_limits(records, "bits", 10.8, None)[0] == pytest.approx((0, 1.05 * 10.8))
    assert plane_limits(hsic_records(), "nHSIC", 10.8, 3.3) == ((0, 1.05), (0, 1.05))
    single = plane_limits(make_records(epochs=(0,))[:1], "HSIC", None, None)
    assert all(math.isfinite(v) and low < high for low, high in single for v in (low, high))
