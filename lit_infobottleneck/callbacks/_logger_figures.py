"""The information-plane figures and the history, in every logger of the Trainer.

Scalars reach every logger through ``pl_module.log``; figures and files need one adapter per
logger kind, chosen from ``trainer.loggers`` (each logger gets its own, several loggers all
get theirs). Each measured epoch, every estimator's plane is drawn once and handed to each
adapter:

- ``TensorBoardLogger``: the custom-scalars layout (once per fit) and the image
  ``info_plane/<label>`` at step ``epoch``.
- ``MLFlowLogger``: the artifact ``info_plane/<label>/epoch_<NNNN>.png`` per measured epoch,
  and after every measured epoch (so a killed run keeps them) the history files
  (``info_metrics.json``, ``info_metrics.csv``, ``info_geometry.csv``) under the artifact
  folder ``info_metrics/``.
- ``WandbLogger``: a ``wandb.Image`` under the key ``info_plane/<label>`` per measured epoch
  (caption: the epoch) and, at the end of fit or of a ``validate`` run (or when it raises),
  the history as the table ``info_metrics/history``.
- ``CSVLogger`` and any other logger: PNG files ``<log_dir>/info_plane/<label>_epoch_<NNNN>.png``,
  one per estimator and measured epoch (a resumed run rewrites the epochs it repeats). A
  logger kind without its own adapter gets these files and one info line naming it.

The figures are drawn and written on a background thread (``_figure_worker.py``) unless
a logger must be written from the training thread (W&B): then all are drawn there.

One adapter failing (a full disk, an unreachable tracking server) is warned about and does
not stop the others: the history is safe in the callback's state and files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import lightning.pytorch as pl
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lit_infobottleneck.callbacks._outputs import table_columns, table_row
from lit_infobottleneck.geometry import QUANTITIES as GEOMETRY_QUANTITIES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLANE_TAG = "info_plane"  # TensorBoard tag, W&B key and folder name of the figures
HISTORY_ARTIFACT_DIR = "info_metrics"  # MLflow artifact folder of the history files
WANDB_TABLE_KEY = "info_metrics/history"
LoggerT = TypeVar("LoggerT", bound=Logger)


def custom_scalars_layout(labels: Sequence[str], geometry: bool = False) -> dict[str, Any]:
    """TensorBoard's custom-scalars layout: one chart per (estimator ``label``, quantity), one
    line per layer (and its bounds); with ``geometry``, one chart per geometric quantity."""
    layout: dict[str, Any] = {
        f"info/{label}": {
            quantity: ["Multiline", [f"info/{label}/{quantity}(_low|_high)?/.*"]]
            for quantity in ("I_XT", "I_TY")
        }
        for label in labels
    }
    if geometry:
        layout["info/geometry"] = {
            quantity: ["Multiline", [f"info/geometry/{quantity}/.*"]]
            for quantity in GEOMETRY_QUANTITIES
        }
    return layout


def png_name(label: str, epoch: int) -> str:
    """File name of one plane: ``<label>_epoch_<NNNN>.png``."""
    return f"{label}_epoch_{epoch:04d}.png"


class FigureAdapter(Generic[LoggerT]):
    """Puts the planes and the history into one logger; the base does nothing.

    ``background``: its ``figures`` may run on the figure thread (``_figure_worker.py``).
    """

    background = True

    def __init__(self, logger: LoggerT) -> None:
        self.logger = logger

    def figures(self, figures: dict[str, Figure], epoch: int, step: int) -> None:
        """Log the plane of each estimator label (``figures``) measured at ``epoch``, with
        the trainer at global ``step``."""

    def history(self, files: Sequence[Path]) -> None:
        """The history files were (re)written after a measured epoch."""

    def finish(self, records: Sequence[dict[str, Any]]) -> None:
        """The fit (or validate run) ended with the history ``records``."""


class TensorBoardFigures(FigureAdapter[TensorBoardLogger]):
    """``add_custom_scalars`` once, then ``add_figure("info_plane/<label>", step=epoch)``."""

    def __init__(self, logger: TensorBoardLogger, labels: Sequence[str], geometry: bool):
        super().__init__(logger)
        self.labels, self.geometry = list(labels), geometry
        self.layout_written = False

    def figures(self, figures: dict[str, Figure], epoch: int, step: int) -> None:
        writer = self.logger.experiment
        if not self.layout_written:
            writer.add_custom_scalars(custom_scalars_layout(self.labels, self.geometry))
            self.layout_written = True
        for label, figure in figures.items():
            writer.add_figure(f"{PLANE_TAG}/{label}", figure, global_step=epoch, close=False)
        writer.flush()


class MLflowFigures(FigureAdapter[MLFlowLogger]):
    """Run artifacts: ``info_plane/<label>/epoch_<NNNN>.png`` and ``info_metrics/<file>``."""

    def figures(self, figures: dict[str, Figure], epoch: int, step: int) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        for label, figure in figures.items():
            client.log_figure(run_id, figure, f"{PLANE_TAG}/{label}/epoch_{epoch:04d}.png")

    def history(self, files: Sequence[Path]) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        for path in files:
            client.log_artifact(run_id, str(path), artifact_path=HISTORY_ARTIFACT_DIR)


class WandbFigures(FigureAdapter[WandbLogger]):
    """``wandb.Image`` per plane under ``info_plane/<label>``; the history table at the end.

    Logs from the training thread only (``background = False``): W&B's run is shared with
    Lightning's own metric logging.
    """

    background = False

    def figures(self, figures: dict[str, Figure], epoch: int, step: int) -> None:
        if not figures:
            return
        import wandb

        row: dict[str, Any] = {
            f"{PLANE_TAG}/{label}": wandb.Image(figure, caption=f"epoch {epoch}")
            for label, figure in figures.items()
        }
        # one W&B row for all planes of the epoch, on the x-axis WandbLogger defines
        self.logger.experiment.log({**row, "trainer/global_step": step})

    def finish(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        columns = table_columns(records)
        rows = [[row.get(column) for column in columns] for row in map(table_row, records)]
        self.logger.log_table(WANDB_TABLE_KEY, columns=columns, data=rows)


class PngFiles(FigureAdapter[Logger]):
    """``<directory>/info_plane/<label>_epoch_<NNNN>.png`` per estimator and measured epoch."""

    def __init__(self, logger: Logger, directory: Path) -> None:
        super().__init__(logger)
        self.directory = directory / PLANE_TAG

    def figures(self, figures: dict[str, Figure], epoch: int, step: int) -> None:
        if figures:
            self.directory.mkdir(parents=True, exist_ok=True)
        for label, figure in figures.items():
            figure.savefig(self.directory / png_name(label, epoch), dpi=100)


def _logger_directory(logger: Logger, trainer: pl.Trainer) -> Path:
    """Where a logger without its own figure store gets the PNG files: its ``log_dir``, else
    its ``save_dir``, else the trainer's ``default_root_dir`` (not ``trainer.log_dir``: that
    is a collective, and adapters are built on rank 0 only)."""
    for attribute in ("log_dir", "save_dir"):
        value = getattr(logger, attribute, None)
        if isinstance(value, (str, Path)) and value:
            return Path(value)
    return Path(trainer.default_root_dir)


def figure_adapters(
    trainer: pl.Trainer, labels: Sequence[str], geometry: bool
) -> list[FigureAdapter[Any]]:
    """One adapter per logger of ``trainer`` (none without loggers), in ``trainer.loggers``
    order; says once which logger kinds get PNG files because they have no adapter."""
    adapters: list[FigureAdapter[Any]] = []
    png_directories: set[Path] = set()
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            adapters.append(TensorBoardFigures(logger, labels, geometry))
        elif isinstance(logger, MLFlowLogger):
            adapters.append(MLflowFigures(logger))
        elif isinstance(logger, WandbLogger):
            adapters.append(WandbFigures(logger))
        else:
            directory = _logger_directory(logger, trainer)
            if not isinstance(logger, CSVLogger):
                rank_zero_info(
                    f"InfoMetrics has no figure adapter for {type(logger).__name__}: its "
                    f"information-plane figures go to {directory / PLANE_TAG}/*.png (its "
                    "scalars reach it through self.log as usual)."
                )
            if directory not in png_directories:  # two loggers sharing a folder: one copy
                png_directories.add(directory)
                adapters.append(PngFiles(logger, directory))
    return adapters


def _warn_failed(adapter: FigureAdapter[Any], what: str, err: Exception) -> None:
    rank_zero_warn(
        f"InfoMetrics could not write its {what} to {type(adapter.logger).__name__}: "
        f"{type(err).__name__}: {err}. Training goes on; the history is in the callback's "
        "state and its CSV/JSON files."
    )


def log_figures(
    adapters: Sequence[FigureAdapter[Any]],
    history: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    labels: Sequence[str],
    epoch: int,
    step: int,
    plot: bool = True,
) -> None:
    """Draw each estimator's plane once (if ``plot`` and any logger is there to take it)
    and hand the figures to every adapter (with ``plot=False`` an empty dict: TensorBoard
    still gets its layout); each adapter's failure is warned about on its own."""
    if not adapters:
        return
    from lit_infobottleneck.plotting import information_plane

    figures: dict[str, Figure] = {
        label: information_plane(
            history,
            label,
            unit=meta.get("unit", "bits"),
            h_x=meta.get("h_x"),
            h_y=meta.get("h_y"),
        )
        for label in (labels if plot else ())
    }
    for adapter in adapters:
        try:
            adapter.figures(figures, epoch, step)
        except Exception as err:
            _warn_failed(adapter, "information-plane figures", err)


def all_in_background(adapters: Sequence[FigureAdapter[Any]]) -> bool:
    """True if every adapter's figures may be drawn and written on the figure thread."""
    return all(adapter.background for adapter in adapters)


def log_history(adapters: Sequence[FigureAdapter[Any]], files: Sequence[Path]) -> None:
    """Hand the rewritten history ``files`` (those that exist) to every adapter."""
    existing = [path for path in files if path.is_file()]
    for adapter in adapters:
        try:
            adapter.history(existing)
        except Exception as err:
            _warn_failed(adapter, "history files", err)


def finish(adapters: Sequence[FigureAdapter[Any]], records: Sequence[dict[str, Any]]) -> None:
    """End of fit or validate: every adapter's last word (the W&B table)."""
    for adapter in adapters:
        try:
            adapter.finish(records)
        except Exception as err:
            _warn_failed(adapter, "history table", err)
