"""``lit-ib plot RUN_DIR``: re-draw a run's information plane and curves from its history.

Reads ``info_metrics.json`` (written by InfoMetrics into the run's log dir) and writes, for
every estimator, ``info_plane_<estimator>.png`` and ``info_curves_<estimator>.png`` into
``RUN_DIR`` (or ``--out``), at ``--dpi`` (default 150) for papers. Each estimator is drawn in
the unit its records carry (bits, nats, or nHSIC for the HSIC estimator). ``RUN_DIR`` may
also be a parent such as ``runs/default``: the newest run below it is plotted (the highest
``version_N``, compared as numbers; see :func:`find_history`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

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


def plot_run(run_dir: Path, out: Path | None = None, dpi: int = 150) -> list[Path]:
    """Write the PNGs of one run; returns their paths."""
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
    return written


def plot_main(argv: Sequence[str]) -> list[Path]:
    parser = argparse.ArgumentParser(prog="lit-ib plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args(list(argv))
    try:
        written = plot_run(args.run_dir, args.out, args.dpi)
    except (FileNotFoundError, ValueError) as err:
        if os.environ.get("LIT_IB_DEBUG", "0") not in ("", "0"):
            raise
        sys.stderr.write(f"lit-ib plot: error: {err} {DEBUG_HINT}\n")
        raise SystemExit(2) from None
    for path in written:
        sys.stdout.write(f"{path}\n")
    return written
