"""Geometry curves: class collapse and effective dimension per layer, and ``lit-ib plot``
writing ``info_geometry.png`` only for histories with geometry records."""

from __future__ import annotations

import json

import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from lit_infobottleneck.plot_command import plot_main
from lit_infobottleneck.plot_geometry import geometry_curves
from tests.test_plot_runs import make_geometry, write_run
from tests.test_plotting import LAYERS


def test_two_panels_one_line_per_layer_in_depth_order():
    records = make_geometry()
    records[0]["effective_dim"] = None  # not computable at that epoch: left out
    # appearance order differs from depth order: the history's layers decide
    records = sorted(records, key=lambda r: r["layer"] != "representation")
    figure = geometry_curves(records, layers=LAYERS)
    ratio, dim = figure.axes[:2]
    assert ratio.get_ylim() == pytest.approx((0, 1.05))
    assert "unitless" in ratio.get_ylabel()
    assert "tr(S_within) / tr(S_total)" in ratio.get_ylabel()
    assert dim.get_ylabel() == "dimensions (participation ratio)"
    assert "Effective dimension" in dim.get_title()
    assert "NC1" in ratio.get_title()
    assert [line.get_label() for line in ratio.get_lines()] == list(LAYERS)
    assert [t.get_text() for t in dim.get_legend().get_texts()] == list(LAYERS)
    first = dim.get_lines()[0]  # encoder.1 lacks its epoch-0 effective dimension
    assert list(first.get_xdata()) == [1, 2, 4]
    assert list(first.get_ydata()) == pytest.approx([11.0, 10.0, 8.0])
    assert list(ratio.get_lines()[2].get_ydata()) == pytest.approx([0.8, 0.7, 0.6, 0.4])
    # one colour per layer in both panels
    assert [a.get_color() for a in ratio.get_lines()] == [b.get_color() for b in dim.get_lines()]
    assert not [c for c in ratio.collections if isinstance(c, PolyCollection)]


def test_bands_are_shaded_when_records_carry_bounds():
    records = make_geometry()
    for r in records:
        r.update(within_class_ratio_low=r["within_class_ratio"] - 0.05)
        r.update(within_class_ratio_high=r["within_class_ratio"] + 0.05)
    figure = geometry_curves(records, note="mean of 3 runs, band: min-max")
    bands = [c for c in figure.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(LAYERS)
    assert bands[0].get_paths()[0].vertices[:, 1].max() == pytest.approx(0.95)
    assert not [c for c in figure.axes[1].collections if isinstance(c, PolyCollection)]
    assert figure.get_suptitle() == "Representation geometry: mean of 3 runs, band: min-max"


def test_plot_writes_the_geometry_figure_only_when_the_history_has_geometry(tmp_path):
    with_geometry = write_run(tmp_path / "new", geometry=True, hsic=False)
    written = plot_main([str(with_geometry), "--dpi", "60"])
    assert [path.name for path in written] == [
        "info_plane_binning.png",
        "info_curves_binning.png",
        "info_geometry.png",
    ]
    with Image.open(with_geometry / "info_geometry.png") as image:
        assert image.size == (9 * 60, int(3.6 * 60))
    older = write_run(tmp_path / "old", hsic=False)  # written before geometry was measured
    assert "info_geometry.png" not in {path.name for path in plot_main([str(older), "--dpi", "40"])}
    empty = write_run(tmp_path / "empty", hsic=False)
    path = empty / "info_metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "geometry": []}))
    assert "info_geometry.png" not in {path.name for path in plot_main([str(empty), "--dpi", "40"])}
    assert not (tmp_path / "old" / "info_geometry.png").exists()
