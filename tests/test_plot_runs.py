"""``lit-ib plot RUN_DIR RUN_DIR ...``: the mean of several runs, its band, aligned epochs,
refused mixtures, and the files written (real histories on disk, numbers read back)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image

from lit_infobottleneck.plot_command import plot_main
from lit_infobottleneck.plot_runs import (
    aggregate,
    band_of,
    load_runs,
    mean_information_curves,
    mean_information_plane,
)
from tests.test_plotting import LAYERS, make_records

EPOCHS = (0, 1, 2, 4)
ESTIMATORS = {"binning": {"bins": 30, "value_range": [-1.0, 1.0]}, "hsic": {"sigma": "median"}}


def make_geometry(epochs: tuple[int, ...] = EPOCHS, offset: float = 0.0) -> list[dict]:
    """Geometry records as InfoMetrics writes them; ``offset`` shifts every value."""
    return [
        {
            "epoch": epoch,
            "step": 10 * epoch,
            "layer": layer,
            "within_class_ratio": 0.9 - 0.1 * epoch - 0.05 * i + offset,
            "effective_dim": 12.0 - epoch - i + offset,
        }
        for epoch in epochs
        for i, layer in enumerate(LAYERS)
    ]


def write_run(
    directory: Path,
    *,
    offset: float = 0.0,
    epochs: tuple[int, ...] = EPOCHS,
    geometry: bool = False,
    hsic: bool = True,
    **meta: object,
) -> Path:
    """A history with binning (bits) and, if ``hsic``, hsic (nHSIC) records; ``offset`` is
    added to every I_XT of binning (and to the geometry); ``meta`` overrides the history's
    fields."""
    records = make_records(epochs=epochs)
    if hsic:
        records += make_records("hsic", "nHSIC", epochs=epochs, scale=0.1)  # hsic_records()
    labels = ("binning", "hsic") if hsic else ("binning",)
    for record in records:
        if record["estimator"] == "binning":
            record["I_XT"] += offset
    history = {
        "unit": "bits",
        "units": {label: {"binning": "bits", "hsic": "nHSIC"}[label] for label in labels},
        "h_x": 10.8,
        "h_y": 3.3,
        "samples": 1797,
        "estimators": {label: ESTIMATORS[label] for label in labels},
        "layers": list(LAYERS),
        **meta,
        "records": records,
    }
    if geometry:
        history["geometry"] = make_geometry(epochs, offset=0.01 * offset)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "info_metrics.json").write_text(json.dumps(history))
    return directory


def three_runs(root: Path, **kwargs: object) -> list[Path]:
    """version_0..2 whose binning I_XT differ by 0, 1, 2 (at encoder.1, epoch 2: 1, 2, 3)."""
    return [write_run(root / f"version_{i}", offset=float(i), **kwargs) for i in range(3)]


def record(mean: dict, estimator: str, layer: str, epoch: int) -> dict:
    (found,) = [
        r
        for r in mean["records"]
        if (r["estimator"], r["layer"], r["epoch"]) == (estimator, layer, epoch)
    ]
    return found


# ---------------------------------------------------------------------- numbers


def test_band_of_is_the_standard_error_or_the_range():
    mean, low, high = band_of([1.0, 2.0, 3.0])
    se = np.std([1.0, 2.0, 3.0], ddof=1) / math.sqrt(3)
    assert se == pytest.approx(1 / math.sqrt(3))
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - se, 2.0 + se))
    assert band_of([1.0, 2.0, 3.0], "minmax") == pytest.approx((2.0, 1.0, 3.0))
    with pytest.raises(ValueError, match="at least two runs"):
        band_of([1.0])
    with pytest.raises(ValueError, match="band must be one of"):
        band_of([1.0, 2.0], "iqr")


def test_plot_main_writes_the_mean_files_and_numbers(tmp_path, capsys):
    """Three runs with I_XT = 1, 2, 3 at (binning, encoder.1, epoch 2) give mean 2 and band
    2 ± 1/sqrt(3) in info_metrics_mean.json; the figures go to the runs' common parent."""
    root = tmp_path / "runs" / "tishby"
    dirs = three_runs(root, geometry=True)
    base = make_records(epochs=(2,))[0]
    assert base["layer"] == "encoder.1" and base["I_XT"] == pytest.approx(7.4)
    for i, directory in enumerate(dirs):  # I_XT = 1, 2, 3 exactly
        path = directory / "info_metrics.json"
        history = json.loads(path.read_text())
        for r in history["records"]:
            if (r["estimator"], r["layer"], r["epoch"]) == ("binning", "encoder.1", 2):
                r["I_XT"] = 1.0 + i
        path.write_text(json.dumps(history))
    written = plot_main([*map(str, dirs), "--dpi", "40"])
    names = sorted(path.name for path in written)
    assert names == sorted(
        [
            "info_metrics_mean.json",
            "info_plane_binning_mean.png",
            "info_curves_binning_mean.png",
            "info_plane_hsic_mean.png",
            "info_curves_hsic_mean.png",
            "info_geometry_mean.png",
        ]
    )
    assert {path.parent for path in written} == {root}
    assert capsys.readouterr().out.split() == [str(path) for path in written]
    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.format == "PNG"
                assert image.size[0] > 200
    mean = json.loads((root / "info_metrics_mean.json").read_text())
    assert mean["n_runs"] == 3
    assert mean["band"] == "se"
    assert mean["description"] == "mean of 3 runs, band: ±1 standard error"
    assert mean["runs"] == [str(d) for d in dirs]
    point = record(mean, "binning", "encoder.1", 2)
    assert point["n_runs"] == 3
    assert point["I_XT_runs"] == [1.0, 2.0, 3.0]
    assert point["I_XT"] == pytest.approx(2.0)
    assert point["I_XT_low"] == pytest.approx(2.0 - 1 / math.sqrt(3))
    assert point["I_XT_high"] == pytest.approx(2.0 + 1 / math.sqrt(3))
    # I_TY is the same in every run: a band of zero width
    assert point["I_TY_low"] == pytest.approx(point["I_TY"]) == point["I_TY_high"]
    other = record(mean, "binning", "encoder.3", 4)  # offsets 0, 1, 2: mean +1, SE 1/sqrt(3)
    expected = 8.0 - 2.0 - 0.3 * 4 + 1.0
    assert other["I_XT"] == pytest.approx(expected)
    assert other["I_XT_high"] - other["I_XT"] == pytest.approx(1 / math.sqrt(3))
    assert record(mean, "hsic", "representation", 0)["unit"] == "nHSIC"
    assert len(mean["records"]) == 2 * len(LAYERS) * len(EPOCHS)
    geo = [g for g in mean["geometry"] if (g["layer"], g["epoch"]) == ("encoder.1", 1)]
    assert geo[0]["within_class_ratio"] == pytest.approx(0.8 + 0.01)  # offsets 0, .01, .02
    assert geo[0]["within_class_ratio_high"] - geo[0]["within_class_ratio"] == pytest.approx(
        0.01 / math.sqrt(3)
    )


def test_minmax_band_and_out(tmp_path, capsys):
    dirs = three_runs(tmp_path / "runs", hsic=False)
    out = tmp_path / "figures"
    plot_main([*map(str, dirs), "--band", "minmax", "--out", str(out), "--dpi", "40"])
    assert capsys.readouterr().err == ""  # every run has every epoch: no note
    mean = json.loads((out / "info_metrics_mean.json").read_text())
    point = record(mean, "binning", "encoder.1", 0)
    assert (point["I_XT_low"], point["I_XT"], point["I_XT_high"]) == pytest.approx((8.0, 9.0, 10.0))
    assert mean["description"] == "mean of 3 runs, band: min-max"
    assert not (tmp_path / "runs" / "info_metrics_mean.json").exists()


def test_figures_name_the_band_and_the_run_count(tmp_path):
    mean = aggregate(load_runs(three_runs(tmp_path)))
    plane = mean_information_plane(mean, "binning").axes[0]
    assert "mean of 3 runs" in plane.get_title()
    assert "±1 standard error" in plane.get_title()
    assert plane.get_xlim() == pytest.approx((0, 1.05 * 10.8))
    assert len([c for c in plane.containers if c.has_xerr and c.has_yerr]) == len(LAYERS)
    curves = mean_information_curves(mean, "binning")
    assert "mean of 3 runs, band: ±1 standard error" in curves.get_suptitle()
    ax_xt = curves.axes[0]
    bands = [c for c in ax_xt.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(LAYERS)
    # the band of encoder.1 spans mean ± SE: 1/sqrt(3) around 8 + 1 - 0.3 epoch
    vertices = bands[0].get_paths()[0].vertices
    assert vertices[:, 1].max() == pytest.approx(9.0 + 1 / math.sqrt(3))
    legend = [t.get_text() for t in curves.axes[1].get_legend().get_texts()]
    assert legend == [*LAYERS, "band: ±1 standard error"]
    hsic = mean_information_curves(mean, "hsic")
    assert "nHSIC" in hsic.axes[0].get_ylabel()
    assert hsic.axes[0].get_ylim() == pytest.approx((0, 1.05))


# ---------------------------------------------------------------------- aligned epochs


def test_only_epochs_of_every_run_are_drawn_with_a_note(tmp_path, capsys):
    dirs = three_runs(tmp_path, hsic=False)
    write_run(dirs[1], offset=1.0, epochs=(0, 2, 4), hsic=False)  # run 1 did not measure epoch 1
    plot_main([*map(str, dirs), "--dpi", "40"])
    mean = json.loads((tmp_path / "info_metrics_mean.json").read_text())
    assert sorted({r["epoch"] for r in mean["records"]}) == [0, 2, 4]
    assert mean["dropped_epochs"] == [1]
    err = capsys.readouterr().err
    assert err.startswith("lit-ib plot: note: 1 epoch(s) not measured in every one of the 3")
    assert err.rstrip().endswith("left out: 1.")
    assert len(err.strip().splitlines()) == 1
    curves = mean_information_curves(mean, "binning")
    assert list(curves.axes[0].get_lines()[0].get_xdata()) == [0, 2, 4]


# ---------------------------------------------------------------------- refused mixtures


@pytest.mark.parametrize(
    ("meta", "difference"),
    [
        ({"layers": ["encoder.1", "encoder.3"]}, "runs differ in layers"),
        ({"estimators": {"binning": ESTIMATORS["binning"]}}, "runs differ in estimators"),
        (
            {"estimators": {**ESTIMATORS, "binning": {"bins": 10, "value_range": [-1, 1]}}},
            "runs differ in the parameters of estimator 'binning'",
        ),
        ({"unit": "nats"}, "runs differ in unit"),
    ],
    ids=["layers", "estimators", "params", "unit"],
)
def test_runs_of_different_configurations_are_refused(tmp_path, capsys, meta, difference):
    first = write_run(tmp_path / "version_0")
    second = write_run(tmp_path / "version_1", **meta)
    with pytest.raises(SystemExit) as exit_info:
        plot_main([str(first), str(second)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lit-ib plot: error: {difference}: {first} has ")
    assert f", {second} has " in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "info_metrics_mean.json").exists()


def test_the_unit_of_the_records_is_compared(tmp_path):
    first = write_run(tmp_path / "a")
    second = write_run(tmp_path / "b")
    path = second / "info_metrics.json"
    history = json.loads(path.read_text())
    for r in history["records"]:
        if r["estimator"] == "binning":
            r["unit"] = "nats"
    path.write_text(json.dumps(history))
    with pytest.raises(ValueError, match="unit of estimator 'binning': .* has bits, .* has nats"):
        aggregate(load_runs([first, second]))


def test_a_run_given_twice_is_refused(tmp_path):
    root = tmp_path / "runs"
    three_runs(root)
    with pytest.raises(ValueError, match="are the same run"):
        load_runs([root, root / "version_2"])  # the parent stands for its newest run


# ---------------------------------------------------------------------- which runs


def test_a_parent_of_several_runs_plots_its_newest_only(tmp_path, capsys):
    """No implicit aggregation: a parent is its newest run; the note says how to aggregate."""
    root = tmp_path / "runs"
    three_runs(root, hsic=False)
    written = plot_main([str(root), "--dpi", "40"])
    assert {path.parent for path in written} == {root / "version_2"}
    assert not any("_mean" in path.name for path in written)
    err = capsys.readouterr().err
    assert err.startswith(f"lit-ib plot: note: {root} holds 3 runs; plotting the newest.")
    assert f"lit-ib plot {root / 'version_*'}" in err
    assert len(err.strip().splitlines()) == 1


def test_geometry_mean_needs_geometry_in_every_run(tmp_path, capsys):
    dirs = three_runs(tmp_path, geometry=True, hsic=False)
    write_run(dirs[0], hsic=False)  # an older history: no geometry
    written = plot_main([*map(str, dirs), "--dpi", "40"])
    assert "info_geometry_mean.png" not in {path.name for path in written}
    err = capsys.readouterr().err
    assert "no geometry figure: 1 of the runs have no geometry records" in err
    assert json.loads((tmp_path / "info_metrics_mean.json").read_text())["geometry"] == []


def test_mean_animation(tmp_path):
    dirs = three_runs(tmp_path, hsic=False, epochs=(0, 1, 3))
    written = plot_main([*map(str, dirs), "--animate", "--dpi", "40", "--gif_dpi", "40"])
    gifs = [path.name for path in written if path.suffix == ".gif"]
    assert gifs == ["info_plane_binning_mean.gif"]
    with Image.open(tmp_path / "info_plane_binning_mean.gif") as image:
        assert image.n_frames == 3
        assert image.size == (240, 180)


# ---------------------------------------------------------------------- examples/run_seeds.py


def load_run_seeds():
    path = Path(__file__).resolve().parents[1] / "examples" / "run_seeds.py"
    spec = importlib.util.spec_from_file_location("run_seeds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_seeds_builds_fit_commands_and_reads_the_run_directory(capsys):
    """The loop's parts, without training: one fit of configs/default.yaml takes 10-40 s,
    too slow for this suite."""
    run_seeds = load_run_seeds()
    command = run_seeds.fit_command(
        Path("configs/default.yaml"), 3, ["--trainer.max_epochs", "1"], False
    )
    assert command[1:] == [
        "-m",
        "lit_infobottleneck",
        "fit",
        "--config",
        "configs/default.yaml",
        "--seed_everything",
        "3",
        "--trainer.max_epochs",
        "1",
    ]
    assert "--data.init_args.seed" in run_seeds.fit_command(Path("c.yaml"), 3, [], True)
    fake_fit = "print('Epoch 0: 100%'); print('Results: runs/x/version_7'); print('  lit-ib plot')"
    assert run_seeds.fit([sys.executable, "-c", fake_fit]) == Path("runs/x/version_7")
    assert "Results: runs/x/version_7" in capsys.readouterr().out  # shown as it came
    with pytest.raises(SystemExit, match="exited with 3"):
        run_seeds.fit([sys.executable, "-c", "raise SystemExit(3)"])
