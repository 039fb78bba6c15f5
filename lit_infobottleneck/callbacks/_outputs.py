"""InfoMetrics' history files and TensorBoard's restart marker (figures: ``_logger_figures``).

- ``write_history`` writes ``info_metrics.csv``, ``info_metrics.json`` (with the geometry
  under ``"geometry"``) and ``info_geometry.csv``, each whole to a temporary name and renamed
  over the old one (a job killed while writing leaves the previous complete file).
- ``mark_tensorboard_session_start`` writes TensorBoard's session-start event, so that a
  resumed run hides what a killed run logged after its checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

HISTORY_FILES = ("info_metrics.csv", "info_metrics.json")
GEOMETRY_FILE = "info_geometry.csv"


def write_history(
    directory: Path,
    history: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    geometry: Sequence[dict[str, Any]] = (),
) -> None:
    """The whole history as CSV (one row per record, ``flags`` joined by ``;``) and JSON
    (``meta`` plus ``records`` and ``geometry``); the geometry rows also as their own CSV
    (one row per epoch and layer; an undefined value is an empty cell)."""
    directory.mkdir(parents=True, exist_ok=True)
    records = sorted(history, key=lambda r: (r["epoch"], r["estimator"]))
    _write_csv(directory / "info_metrics.csv", records)
    rows = sorted(geometry, key=lambda r: r["epoch"])
    if rows:
        _write_csv(directory / GEOMETRY_FILE, rows)
    with _replace_atomically(directory / "info_metrics.json") as f:
        json.dump({**meta, "records": records, "geometry": rows}, f, indent=1)


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with _replace_atomically(path) as f:
        writer = csv.DictWriter(f, fieldnames=table_columns(rows))
        writer.writeheader()
        writer.writerows(table_row(r) for r in rows)


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of the rows, in first-seen order: the columns of the CSV and W&B tables."""
    return list(dict.fromkeys(k for r in rows for k in r))


def table_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a CSV or W&B table row: the ``flags`` list ``;``-joined."""
    row = dict(record)
    if isinstance(row.get("flags"), list):
        row["flags"] = ";".join(row["flags"])
    return row


def first_tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    return loggers[0] if loggers else None


def mark_tensorboard_session_start(trainer: pl.Trainer) -> bool:
    """Write TensorBoard's session-start event at the current global step; True if written.

    TensorBoard reads the second and later ``SessionLog.START`` of a run as a restart and
    hides every earlier event at that step or later (what PyTorch's ``SummaryWriter(...,
    purge_step=)`` writes): the scalars and figures a killed run logged after the checkpoint
    it is resumed from. Lightning's loggers write no such marker. The event goes through
    ``SummaryWriter._get_file_writer()``, a private PyTorch API; if it is missing, the
    marker is skipped with a warning (a resumed run may then show those epochs twice).
    """
    logger = first_tensorboard(trainer)
    if logger is None or not trainer.is_global_zero:
        return False
    writer = logger.experiment
    get_file_writer = getattr(writer, "_get_file_writer", None)
    file_writer = get_file_writer() if callable(get_file_writer) else None
    add_event = getattr(file_writer, "add_event", None)
    if not callable(add_event):
        rank_zero_warn(
            "InfoMetrics cannot mark the (re)start in TensorBoard: this PyTorch's "
            "SummaryWriter has no `_get_file_writer().add_event`. After a resume, TensorBoard "
            "may show the epochs logged after the checkpoint twice; the CSV/JSON history is "
            "unaffected."
        )
        return False
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    add_event(
        Event(
            wall_time=time.time(),
            step=trainer.global_step,
            session_log=SessionLog(status=SessionLog.START),
        )
    )
    writer.flush()
    return True


@contextlib.contextmanager
def _replace_atomically(path: Path) -> Iterator[TextIO]:
    """Open ``path.tmp`` for writing; on success, rename it to ``path`` (atomic on POSIX)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
