"""``lit-ib plot RUN_DIR [RUN_DIR ...]``: re-draw information planes and curves from histories.

Reads ``info_metrics.json`` (written by InfoMetrics into the run's log dir) and writes, for
every estimator, ``info_plane_<estimator>.png`` and ``info_curves_<estimator>.png`` into
``RUN_DIR`` (or ``--out``), at ``--dpi`` (default 150) for papers, and
``info_geometry.png`` (class collapse and effective dimension per layer) when the history has
geometry records. Each estimator is drawn in the unit its records carry (bits, nats, or nHSIC
for the HSIC estimator). ``RUN_DIR`` may also be a parent such as ``runs/default``: the newest
run below it is plotted (the highest ``version_N``, compared as numbers; see
``find_history``). ``--animate`` also writes ``info_plane_<estimator>.gif``, one frame per
measured epoch (``--fps``, ``--gif_dpi``).

Several RUN_DIRs (e.g. ``lit-ib plot runs/tishby_tanh/version_*``, runs of one configuration
with different seeds) are aggregated into ``*_mean.png`` figures of the mean with a band
(``--band se`` or ``minmax``) and ``info_metrics_mean.json``, written into ``--out`` or else
the runs' common parent directory: see ``lit_infobottleneck.plot_runs``. A single parent
directory is never aggregated implicitly: it stands for its newest run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from lit_infobottleneck.plot_animation import save_information_plane_gif
from lit_infobottleneck.plot_geometry import geometry_curves
from lit_infobottleneck.plotting import information_curves, information_plane

DEBUG_HINT = "(set LIT_IB_DEBUG=1 for the traceback)"


def find_history(run_dir: Path) -> Path:
    """The run's ``info_metrics.json``: in ``run_dir`` itself, else the newest one below it.

    Newest means the highest ``version_N`` directories (Lightning's loggers), compared as
    numbers, outermost first: ``version_10`` is newer than ``version_9``, whatever the
    files' times (a resumed old version is rewritten later), and a path with a version is
    newer than one without. Between histories whose paths hold the same versions (or none,
    as in custom log dirs), the most recently modified wins.
    """
    direct = run_dir / "info_metrics.json"
    if direct.is_file():
        return direct
    found = list(run_dir.rglob("info_metrics.json"))
    if not found:
        raise FileNotFoundError(
            f"no info_metrics.json in {run_dir}; point to a run directory written by a "
            "Trainer with the InfoMetrics callback (e.g. runs/default/version_0)."
        )
    return max(found, key=lambda path: _age_key(path, run_dir))


def _age_key(path: Path, run_dir: Path) -> tuple[tuple[int, ...], float]:
    versions = tuple(
        int(match.group(1))
        for part in path.relative_to(run_dir).parent.parts
        if (match := re.fullmatch(r"version_(\d+)", part))
    )
    return versions, path.stat().st_mtime


def plot_run(
    run_dir: Path,
    out: Path | None = None,
    dpi: int = 150,
    *,
    animate: bool = False,
    fps: int = 4,
    gif_dpi: int = 80,
) -> list[Path]:
    """Write the PNGs of one run (and its GIFs when ``animate``); returns their paths."""
    history_path = find_history(run_dir)
    history = json.loads(history_path.read_text())
    records = history.get("records", [])
    if not records:
        raise ValueError(f"{history_path} has no records yet (no measured epoch).")
    out = out or history_path.parent
    out.mkdir(parents=True, exist_ok=True)
    # each record carries its unit; these are for records without one (older histories)
    run_unit, units = history.get("unit", "bits"), history.get("units", {})
    written = []
    for estimator in dict.fromkeys(r["estimator"] for r in records):
        unit = units.get(estimator, run_unit)
        plane = information_plane(
            records, estimator, unit=unit, h_x=history.get("h_x"), h_y=history.get("h_y")
        )
        curves = information_curves(records, estimator, unit=unit)
        for name, figure in (
            (f"info_plane_{estimator}", plane),
            (f"info_curves_{estimator}", curves),
        ):
            path = out / f"{name}.png"
            figure.savefig(path, dpi=dpi)  # no pyplot figure: nothing to close
            written.append(path)
        if animate:
            path = out / f"info_plane_{estimator}.gif"
            save_information_plane_gif(
                records,
                estimator,
                path,
                unit=unit,
                h_x=history.get("h_x"),
                h_y=history.get("h_y"),
                fps=fps,
                dpi=gif_dpi,
            )
            written.append(path)
    if history.get("geometry"):  # histories written before geometry was measured have none
        path = out / "info_geometry.png"
        geometry_curves(history["geometry"], layers=history.get("layers")).savefig(path, dpi=dpi)
        written.append(path)
    return written


def _several_runs_note(run_dir: Path) -> str | None:
    """A note when ``run_dir`` is a parent of several runs (only its newest is plotted)."""
    if (run_dir / "info_metrics.json").is_file():
        return None
    found = sum(1 for _ in run_dir.rglob("info_metrics.json"))
    if found < 2:
        return None
    versions = any(run_dir.glob("version_*"))
    how = run_dir / "version_*" if versions else "RUN_DIR RUN_DIR ..."
    return (
        f"{run_dir} holds {found} runs; plotting the newest. To draw their mean, pass the "
        f"runs themselves: lit-ib plot {how}"
    )


def plot_main(argv: Sequence[str]) -> list[Path]:
    """``lit-ib plot`` with the arguments ``argv`` (without the program name); returns the
    paths of the figures written."""
    parser = argparse.ArgumentParser(prog="lit-ib plot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dir",
        type=Path,
        nargs="+",
        help="a run's log dir (or a parent: its newest run); several: their mean",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default: the run's dir; for several runs their common parent)",
    )
    parser.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    parser.add_argument(
        "--band",
        choices=("se", "minmax"),
        default="se",
        help="several runs: band around the mean, ±1 standard error (default) or min-max",
    )
    parser.add_argument(
        "--animate", action="store_true", help="also write info_plane_<estimator>.gif"
    )
    parser.add_argument("--fps", type=int, default=4, help="GIF frames per second (default 4)")
    parser.add_argument("--gif_dpi", type=int, default=80, help="GIF resolution (default 80)")
    args = parser.parse_args(list(argv))
    if args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps}")
    gif = {"animate": args.animate, "fps": args.fps, "gif_dpi": args.gif_dpi}
    try:
        if len(args.run_dir) > 1:
            from lit_infobottleneck.plot_runs import plot_runs

            written = plot_runs(args.run_dir, args.out, dpi=args.dpi, band=args.band, **gif)
        else:
            written = plot_run(args.run_dir[0], args.out, args.dpi, **gif)
            note = _several_runs_note(args.run_dir[0])
            if note:
                sys.stderr.write(f"lit-ib plot: note: {note}\n")
    except (FileNotFoundError, ValueError) as err:
        if os.environ.get("LIT_IB_DEBUG", "0") not in ("", "0"):
            raise
        sys.stderr.write(f"lit-ib plot: error: {err} {DEBUG_HINT}\n")
        raise SystemExit(2) from None
    for path in written:
        sys.stdout.write(f"{path}\n")
    return written
