"""Several runs of one configuration in one figure: ``lit-ib plot RUN_DIR RUN_DIR ...``.

Runs that differ only in their seed (see ``examples/run_seeds.py``) are aggregated per
estimator, layer and epoch: the figures draw the mean over the runs with a band, the
standard error of the mean (``std(ddof=1) / sqrt(n)``, ``--band se``, the default) or the
range of the runs (``--band minmax``); the band and the number of runs are written in each
figure's title. Epochs are aligned: only the epochs measured in every run are drawn (a
one-line note on stderr names the others). Bootstrap bounds of single runs are not used.

- ``info_plane_<estimator>_mean.png``: mean I(X;T) against mean I(T;Y) of every layer, the
  band as error bars in both directions (points coloured by epoch, as for one run);
- ``info_curves_<estimator>_mean.png``: the means against the epoch, the band shaded;
- ``info_geometry_mean.png``: the geometry curves (class collapse, effective dimension),
  when every run has geometry records;
- ``info_plane_<estimator>_mean.gif`` with ``--animate``: the mean trajectories;
- ``info_metrics_mean.json``: the numbers behind the figures, per estimator, layer and
  epoch: the mean (``I_XT``, ``I_TY``), the band (``I_XT_low``, ``I_XT_high``, ...), the
  values of the runs (``I_XT_runs``, ...) and ``n_runs``.

**Where they go**: into ``--out`` when given, else into the common parent directory of the
runs (``runs/tishby_tanh`` for ``runs/tishby_tanh/version_*``).

**Which runs**: each RUN_DIR resolves as for one run (``find_history``): a directory
with an ``info_metrics.json``, or a parent, which stands for its *newest* run only. A single
parent holding several versions is therefore not aggregated: pass the runs themselves,
with a shell glob such as ``lit-ib plot runs/tishby_tanh/version_*``.

Runs that were not measured alike are refused (``ValueError``, naming the difference and two
run directories): different layers, estimators (labels or parameters), or units.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lit_infobottleneck.plot_command import find_history
from lit_infobottleneck.plot_geometry import GEOMETRY_KEYS, geometry_curves
from lit_infobottleneck.plotting import (
    INFORMATION_UNITS,
    _layers_in_order,
    _points,
    _rows,
    _unit,
    information_plane,
    label_curve_axes,
)

#: The bands around the mean: ``--band`` choices and how figures name them.
BANDS = {"se": "±1 standard error", "minmax": "min-max"}
QUANTITIES = ("I_XT", "I_TY")
MEAN_HISTORY = "info_metrics_mean.json"


@dataclass(frozen=True)
class Run:
    """One run: the directory of its ``info_metrics.json`` and the history it holds."""

    directory: Path
    history: dict[str, Any]


def load_runs(run_dirs: Sequence[Path]) -> list[Run]:
    """The runs of ``run_dirs`` (each resolved by ``find_history``); refuses a run given
    twice and runs without records."""
    runs: list[Run] = []
    given: dict[Path, Path] = {}
    for run_dir in run_dirs:
        path = find_history(Path(run_dir))
        same = given.setdefault(path.resolve(), Path(run_dir))
        if same != Path(run_dir):
            raise ValueError(
                f"{same} and {run_dir} are the same run ({path.parent}): pass each run once."
            )
        history = json.loads(path.read_text())
        if not history.get("records"):
            raise ValueError(f"{path} has no records yet (no measured epoch).")
        runs.append(Run(path.parent, history))
    return runs


def _configuration(history: dict[str, Any]) -> dict[str, Any]:
    """What must be equal across runs: layers, estimators and their parameters, units."""
    records = history["records"]
    labels = list(history.get("estimators") or dict.fromkeys(r["estimator"] for r in records))
    run_unit, units = history.get("unit", "bits"), history.get("units", {})
    return {
        "layers": list(history.get("layers") or _layers_in_order(records)),
        "estimators": labels,
        "params": dict(history.get("estimators") or {}),
        "unit": run_unit,
        "units": {
            label: _unit(_rows(records, label), label, units.get(label, run_unit))
            for label in labels
        },
    }


def check_same_configuration(runs: Sequence[Run]) -> None:
    """Raise ``ValueError`` naming the first difference between a run and the first run:
    layers, estimator labels, an estimator's parameters, the unit, an estimator's unit."""
    first = _configuration(runs[0].history)
    for run in runs[1:]:
        difference = _difference(first, _configuration(run.history))
        if difference is not None:
            what, mine, theirs = difference
            raise ValueError(
                f"runs differ in {what}: {runs[0].directory} has {_show(mine)}, "
                f"{run.directory} has {_show(theirs)}; aggregate only runs of one "
                "configuration."
            )


def _difference(first: dict[str, Any], other: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """``(what, first's, other's)`` of the first difference of two configurations."""
    if other["layers"] != first["layers"]:
        return "layers", first["layers"], other["layers"]
    if sorted(other["estimators"]) != sorted(first["estimators"]):
        return "estimators", first["estimators"], other["estimators"]
    for label in first["estimators"]:
        if first["params"].get(label) != other["params"].get(label):
            what = f"the parameters of estimator {label!r}"
            return what, first["params"].get(label), other["params"].get(label)
    if other["unit"] != first["unit"]:
        return "unit", first["unit"], other["unit"]
    for label in first["estimators"]:
        if other["units"][label] != first["units"][label]:
            return f"the unit of estimator {label!r}", first["units"][label], other["units"][label]
    return None


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def band_of(values: Sequence[float], band: str = "se") -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values``: mean ± std(ddof=1)/sqrt(n) for ``"se"``, the
    smallest and largest value for ``"minmax"``."""
    _check_band(band)
    if len(values) < 2:
        raise ValueError(f"a mean with a band needs at least two runs, got {len(values)}.")
    mean = statistics.fmean(values)
    if band == "minmax":
        return mean, min(values), max(values)
    se = statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - se, mean + se


def _check_band(band: str) -> None:
    if band not in BANDS:
        raise ValueError(f"band must be one of {sorted(BANDS)}, got {band!r}.")


def describe(n_runs: int, band: str, drawn_as: str = "band") -> str:
    """``"mean of 5 runs, band: ±1 standard error"``, as written in the figures."""
    return f"mean of {n_runs} runs, {drawn_as}: {BANDS[band]}"


def _by_key(records: Sequence[dict[str, Any]], *fields: str) -> dict[tuple, dict[str, Any]]:
    """Records by ``fields``; of records with the same key, the one of the latest step."""
    ordered = sorted(records, key=lambda r: r.get("step", 0))
    return {tuple(r[f] for f in fields): r for r in ordered}


def _band_fields(rows: Sequence[dict[str, Any]], keys: Sequence[str], band: str) -> dict[str, Any]:
    """The mean, band and run values of every quantity in ``keys`` (None where a run has
    no value)."""
    fields: dict[str, Any] = {}
    for key in keys:
        values = [r.get(key) for r in rows]
        fields[f"{key}_runs"] = values
        known = [float(v) for v in values if v is not None]
        if len(known) < len(values):
            fields.update({key: None, f"{key}_low": None, f"{key}_high": None})
            continue
        fields[key], fields[f"{key}_low"], fields[f"{key}_high"] = band_of(known, band)
    return fields


def aggregate(runs: Sequence[Run], band: str = "se") -> dict[str, Any]:
    """The mean history of ``runs`` (the content of ``info_metrics_mean.json``): records of
    the mean and band of I(X;T) and I(T;Y) per estimator, layer and epoch measured in every
    run (``flags``: those of any run, ``flagged_runs``: how many runs were flagged), and
    likewise ``geometry`` when every run has geometry records. ``dropped_epochs``: the
    epochs left out for some estimator and layer (not measured in every run)."""
    _check_band(band)
    check_same_configuration(runs)
    config = _configuration(runs[0].history)
    n_runs = len(runs)
    layer_rank = {layer: i for i, layer in enumerate(config["layers"])}
    estimator_rank = {label: i for i, label in enumerate(config["estimators"])}

    def depth(layer: str) -> int:
        return layer_rank.get(layer, len(layer_rank))

    by_run = [_by_key(run.history["records"], "estimator", "layer", "epoch") for run in runs]
    every, common = _union_and_common(by_run)
    dropped = {key[-1] for key in every - common}
    records = []
    for key in sorted(
        common,
        key=lambda k: (estimator_rank.get(k[0], len(estimator_rank)), k[2], depth(k[1])),
    ):
        rows = [records_of_run[key] for records_of_run in by_run]
        estimator, layer, epoch = key
        flags = sorted({flag for r in rows for flag in r.get("flags") or ()})
        records.append(
            {
                "epoch": epoch,
                "estimator": estimator,
                "layer": layer,
                "unit": config["units"][estimator],
                "n_runs": n_runs,
                **_band_fields(rows, QUANTITIES, band),
                "flags": flags,
                "flagged_runs": sum(1 for r in rows if r.get("flags")),
            }
        )
    if not records:
        raise ValueError(
            f"the runs {runs[0].directory} ... {runs[-1].directory} share no measured epoch."
        )
    geometry: list[dict[str, Any]] = []
    without_geometry = [str(run.directory) for run in runs if not run.history.get("geometry")]
    if not without_geometry:
        geo_by_run = [_by_key(run.history["geometry"], "layer", "epoch") for run in runs]
        geo_every, geo_common = _union_and_common(geo_by_run)
        dropped |= {key[-1] for key in geo_every - geo_common}
        for key in sorted(geo_common, key=lambda k: (k[1], depth(k[0]))):
            rows = [geometry_of_run[key] for geometry_of_run in geo_by_run]
            geometry.append(
                {
                    "epoch": key[1],
                    "layer": key[0],
                    "n_runs": n_runs,
                    **_band_fields(rows, GEOMETRY_KEYS, band),
                }
            )
    first = runs[0].history
    return {
        "runs": [str(run.directory) for run in runs],
        "n_runs": n_runs,
        "band": band,
        "description": describe(n_runs, band),
        "unit": config["unit"],
        "units": config["units"],
        # the axes' bounds; runs of one configuration measure the same samples
        "h_x": _largest(run.history.get("h_x") for run in runs),
        "h_y": _largest(run.history.get("h_y") for run in runs),
        "samples": first.get("samples"),
        "estimators": first.get("estimators") or {label: None for label in config["estimators"]},
        "layers": config["layers"],
        "dropped_epochs": sorted(dropped),
        "runs_without_geometry": without_geometry if len(without_geometry) < n_runs else [],
        "records": records,
        "geometry": geometry,
    }


def _union_and_common(
    by_run: Sequence[dict[tuple, dict[str, Any]]],
) -> tuple[set[tuple], set[tuple]]:
    keys = [set(records) for records in by_run]
    return set().union(*keys), set.intersection(*keys)


def _largest(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def notes(mean_history: dict[str, Any]) -> list[str]:
    """One-line notes for stderr: epochs left out, runs without geometry."""
    lines = []
    dropped = mean_history["dropped_epochs"]
    if dropped:
        shown = ", ".join(str(e) for e in dropped[:10]) + (", ..." if len(dropped) > 10 else "")
        lines.append(
            f"{len(dropped)} epoch(s) not measured in every one of the "
            f"{mean_history['n_runs']} runs are left out: {shown}."
        )
    missing = mean_history["runs_without_geometry"]
    if missing:
        lines.append(
            f"no geometry figure: {len(missing)} of the runs have no geometry records "
            f"({missing[0]}{', ...' if len(missing) > 1 else ''})."
        )
    return lines


def mean_information_plane(mean_history: dict[str, Any], estimator: str) -> Figure:
    """Mean I(X;T) against mean I(T;Y) of every layer through the common epochs, the band
    as error bars in both directions (hollow: flagged in at least one run)."""
    fig = information_plane(
        mean_history["records"],
        estimator,
        unit=mean_history["units"][estimator],
        h_x=mean_history.get("h_x"),
        h_y=mean_history.get("h_y"),
    )
    ax = fig.axes[0]
    note = describe(mean_history["n_runs"], mean_history["band"], "error bars")
    ax.set_title(f"{ax.get_title()}\n{note}", fontsize=10)
    return fig


def mean_information_curves(mean_history: dict[str, Any], estimator: str) -> Figure:
    """Mean I(X;T) and I(T;Y) of every layer against the epoch, the band shaded."""
    rows = _rows(mean_history["records"], estimator)
    unit = mean_history["units"][estimator]
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_xt, ax_ty = fig.subplots(1, 2, sharex=True)
    for layer in _layers_in_order(rows):
        points = _points(rows, layer)
        epochs = [r["epoch"] for r in points]
        for ax, key in ((ax_xt, "I_XT"), (ax_ty, "I_TY")):
            (line,) = ax.plot(epochs, [r[key] for r in points], marker=".", label=layer)
            ax.fill_between(
                epochs,
                [r[f"{key}_low"] for r in points],
                [r[f"{key}_high"] for r in points],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    label_curve_axes(ax_xt, ax_ty, unit)
    handles, labels = ax_ty.get_legend_handles_labels()
    handles.append(Patch(facecolor="0.5", alpha=0.3))
    labels.append(f"band: {BANDS[mean_history['band']]}")
    ax_ty.legend(handles, labels, fontsize=7)
    kind = "Information" if unit in INFORMATION_UNITS else "Dependence"
    what = f"{estimator}" if unit in INFORMATION_UNITS else f"{estimator}: {unit}"
    fig.suptitle(f"{kind} curves ({what}), {mean_history['description']}")
    return fig


def common_parent(runs: Sequence[Run]) -> Path:
    """The deepest directory that holds every run (where the mean figures go by default)."""
    directories = [str(run.directory) for run in runs]
    try:
        return Path(os.path.commonpath(directories))
    except ValueError:  # relative and absolute paths mixed
        return Path(os.path.commonpath([os.path.abspath(d) for d in directories]))


def plot_runs(
    run_dirs: Sequence[Path],
    out: Path | None = None,
    *,
    dpi: int = 150,
    band: str = "se",
    animate: bool = False,
    fps: int = 4,
    gif_dpi: int = 80,
) -> list[Path]:
    """Write the mean figures and ``info_metrics_mean.json`` of the runs of ``run_dirs``
    into ``out`` (default: their common parent); returns the paths written. Notes (epochs
    left out, runs without geometry) go to stderr, one line each."""
    runs = load_runs(run_dirs)
    mean = aggregate(runs, band)
    out = out or common_parent(runs)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / MEAN_HISTORY]
    written[0].write_text(json.dumps(mean, indent=1))
    for estimator in dict.fromkeys(r["estimator"] for r in mean["records"]):
        for name, figure in (
            (f"info_plane_{estimator}_mean", mean_information_plane(mean, estimator)),
            (f"info_curves_{estimator}_mean", mean_information_curves(mean, estimator)),
        ):
            path = out / f"{name}.png"
            figure.savefig(path, dpi=dpi)
            written.append(path)
        if animate:
            from lit_infobottleneck.plot_animation import save_information_plane_gif

            gif = save_information_plane_gif(
                mean["records"],
                estimator,
                out / f"info_plane_{estimator}_mean.gif",
                unit=mean["units"][estimator],
                h_x=mean["h_x"],
                h_y=mean["h_y"],
                note=f"mean of {mean['n_runs']} runs",
                fps=fps,
                dpi=gif_dpi,
            )
            written.append(gif)
    if mean["geometry"]:
        figure = geometry_curves(mean["geometry"], layers=mean["layers"], note=mean["description"])
        path = out / "info_geometry_mean.png"
        figure.savefig(path, dpi=dpi)
        written.append(path)
    for line in notes(mean):
        sys.stderr.write(f"lit-ib plot: note: {line}\n")
    return written
