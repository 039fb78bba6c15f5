"""The information-plane figures and the history in MLflow, W&B, CSVLogger and unknown loggers.

Each test trains the digits MLP of ``test_info_metrics_outputs`` for a few epochs with real
loggers and reads back what they wrote on disk: the MLflow run in a local SQLite tracking
store with a file artifact folder, the W&B offline run folder (``WANDB_MODE=offline``:
nothing reaches the network), the PNG files under a CSVLogger's log dir.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import mlflow
import pytest
import wandb
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, WandbLogger
from matplotlib.image import imread

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.callbacks._logger_figures import PLANE_TAG as PLANE
from lit_infobottleneck.callbacks._logger_figures import png_name
from tests.callbacks.test_info_metrics_outputs import LAYERS, _fit, _read_json

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*flags saturated:UserWarning"),
]

ESTIMATORS = ("binning", "kde")
EPOCHS = 3
PNG = b"\x89PNG\r\n\x1a\n"


def _assert_plane_png(path: Path) -> None:
    """A real picture of a plane: PNG bytes, at least 300 x 200 pixels, not blank."""
    assert path.read_bytes()[:8] == PNG, path
    image = imread(path)
    assert image.shape[0] >= 200 and image.shape[1] >= 300, image.shape
    assert image[..., :3].std() > 0.05, "a blank image"


@pytest.fixture(scope="module")
def three_loggers(tmp_path_factory):
    """One fit logging to MLflow (SQLite store), W&B (offline) and a CSVLogger at once."""
    root = tmp_path_factory.mktemp("loggers")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(root))
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow_logger = MLFlowLogger(
        experiment_name="ib",
        tracking_uri=tracking_uri,
        artifact_location=(root / "artifacts").as_uri(),
    )
    wandb_logger = WandbLogger(project="ib", save_dir=str(root), offline=True)
    csv_logger = CSVLogger(save_dir=root, name="csv", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=list(ESTIMATORS), seed=3)
    drawn_on = _record_drawing_threads(monkeypatch)
    _fit(root, [callback], logger=[mlflow_logger, wandb_logger, csv_logger], max_epochs=EPOCHS)
    wandb_dir = Path(wandb_logger.experiment.dir).parent  # .../wandb/offline-run-*/
    wandb.finish()
    wandb.teardown()  # stop the wandb-core service this test started
    monkeypatch.undo()
    return {
        "root": root,
        "callback": callback,
        "tracking_uri": tracking_uri,
        "run_id": mlflow_logger.run_id,
        "wandb_dir": wandb_dir,
        "csv_dir": Path(csv_logger.log_dir),
        "history_dir": root,
        "drawn_on": drawn_on,
    }


def _record_drawing_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every plane drawing append the name of the thread it runs on to the list."""
    from lit_infobottleneck import plotting

    threads: list[str] = []
    draw = plotting.information_plane

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return draw(*args, **kwargs)

    monkeypatch.setattr(plotting, "information_plane", recording)
    return threads


def test_with_wandb_the_planes_are_drawn_on_the_training_thread(three_loggers):
    assert three_loggers["drawn_on"] == ["MainThread"] * EPOCHS * len(ESTIMATORS)


def _mlflow_logger(root: Path) -> MLFlowLogger:
    return MLFlowLogger(
        experiment_name="ib",
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
    )


def _mlflow_planes(logger: MLFlowLogger, label: str) -> list[str]:
    client = mlflow.MlflowClient(tracking_uri=logger._tracking_uri)
    return sorted(a.path for a in client.list_artifacts(logger.run_id, f"{PLANE}/{label}"))


def test_planes_are_drawn_off_the_training_thread_and_all_written_by_the_end(tmp_path, monkeypatch):
    drawn_on = _record_drawing_threads(monkeypatch)
    mlflow_logger = _mlflow_logger(tmp_path)
    csv_logger = CSVLogger(save_dir=tmp_path, name="csv", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=list(ESTIMATORS), geometry=False)
    _fit(tmp_path, [callback], logger=[mlflow_logger, csv_logger], max_epochs=EPOCHS)
    assert len(drawn_on) == EPOCHS * len(ESTIMATORS)
    assert all(name.startswith("InfoMetrics-figures") for name in drawn_on), drawn_on
    folder = Path(csv_logger.log_dir) / PLANE
    expected = sorted(png_name(label, e) for label in ESTIMATORS for e in range(EPOCHS))
    assert sorted(p.name for p in folder.iterdir()) == expected  # all written when fit returns
    _assert_plane_png(folder / png_name("kde", EPOCHS - 1))
    for label in ESTIMATORS:  # MLflow artifacts logged from the figure thread
        assert _mlflow_planes(mlflow_logger, label) == [
            f"{PLANE}/{label}/epoch_{e:04d}.png" for e in range(EPOCHS)
        ]
    assert callback._figure_worker._executor is None  # the thread is stopped at teardown


class FailAtEpoch(Callback):
    """Raises at the start of training epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("a crash in training")


def test_a_crash_still_writes_the_pending_planes_before_the_loggers_close(tmp_path):
    csv_logger = CSVLogger(save_dir=tmp_path, name="csv", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], geometry=False)
    with pytest.raises(RuntimeError, match="a crash in training"):
        _fit(tmp_path, [callback, FailAtEpoch(2)], logger=csv_logger, max_epochs=EPOCHS)
    folder = Path(csv_logger.log_dir) / PLANE
    assert sorted(p.name for p in folder.iterdir()) == [png_name("binning", e) for e in (0, 1)]
    assert callback._figure_worker._executor is None  # stopped in on_exception


# ------------------------------------------------------------------------------- MLflow


def test_mlflow_run_holds_a_plane_per_estimator_and_measured_epoch(three_loggers, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=three_loggers["tracking_uri"])
    run_id = three_loggers["run_id"]
    for label in ESTIMATORS:
        listed = sorted(a.path for a in client.list_artifacts(run_id, f"info_plane/{label}"))
        assert listed == [f"info_plane/{label}/epoch_{e:04d}.png" for e in range(EPOCHS)]
        local = client.download_artifacts(run_id, listed[-1], str(tmp_path))
        _assert_plane_png(Path(local))


def test_mlflow_run_holds_the_history_files_equal_to_the_callbacks(three_loggers, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=three_loggers["tracking_uri"])
    run_id = three_loggers["run_id"]
    listed = sorted(a.path for a in client.list_artifacts(run_id, "info_metrics"))
    assert listed == [
        "info_metrics/info_geometry.csv",
        "info_metrics/info_metrics.csv",
        "info_metrics/info_metrics.json",
    ]
    local = Path(client.download_artifacts(run_id, "info_metrics/info_metrics.json", str(tmp_path)))
    document = json.loads(local.read_text())
    history = three_loggers["callback"].history
    assert len(history) == EPOCHS * len(ESTIMATORS) * len(LAYERS)
    assert document["records"] == json.loads(json.dumps(history))


def test_mlflow_metrics_are_the_history_values(three_loggers):
    client = mlflow.MlflowClient(tracking_uri=three_loggers["tracking_uri"])
    run_id = three_loggers["run_id"]
    for label in ESTIMATORS:
        for layer in LAYERS:
            logged = client.get_metric_history(run_id, f"info/{label}/I_XT/{layer}")
            expected = [
                r["I_XT"]
                for r in three_loggers["callback"].history
                if r["estimator"] == label and r["layer"] == layer
            ]
            assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(
                expected, rel=1e-6
            )


# ---------------------------------------------------------------------------------- W&B


def test_wandb_offline_run_holds_a_plane_per_estimator_and_measured_epoch(three_loggers):
    media = three_loggers["wandb_dir"] / "files" / "media" / "images" / "info_plane"
    for label in ESTIMATORS:
        images = sorted(media.glob(f"{label}_*.png"))
        assert len(images) == EPOCHS, sorted(p.name for p in media.iterdir())
        for image in images:
            _assert_plane_png(image)


def test_wandb_offline_run_holds_the_history_table(three_loggers):
    tables = list((three_loggers["wandb_dir"] / "files" / "media").rglob("*.table.json"))
    assert len(tables) == 1, tables
    assert tables[0].parent.name == "info_metrics" and tables[0].name.startswith("history")
    table = json.loads(tables[0].read_text())
    history = three_loggers["callback"].history
    columns = table["columns"]
    assert {"epoch", "estimator", "layer", "I_XT", "I_TY", "unit", "flags"} <= set(columns)
    rows = [dict(zip(columns, row, strict=True)) for row in table["data"]]
    assert len(rows) == len(history)
    for row, record in zip(rows, history, strict=True):
        assert (row["epoch"], row["estimator"], row["layer"]) == (
            record["epoch"],
            record["estimator"],
            record["layer"],
        )
        assert row["I_XT"] == pytest.approx(record["I_XT"], rel=1e-12)
        assert row["flags"] == ";".join(record["flags"])


# ---------------------------------------------------------------------- CSVLogger, others


def test_csv_logger_gets_a_png_per_estimator_and_measured_epoch(three_loggers):
    folder = three_loggers["csv_dir"] / "info_plane"
    expected = sorted(png_name(label, e) for label in ESTIMATORS for e in range(EPOCHS))
    assert sorted(p.name for p in folder.iterdir()) == expected
    for path in folder.iterdir():
        _assert_plane_png(path)


def test_the_history_files_go_to_the_trainers_log_dir(three_loggers):
    """``trainer.log_dir`` is the first logger's ``save_dir``, which an MLflow logger with a
    SQLite store has not: then ``default_root_dir``, as for Lightning's checkpoints."""
    document = _read_json(three_loggers["history_dir"])
    assert len(document["records"]) == len(three_loggers["callback"].history)


class ListLogger(Logger):
    """A logger kind InfoMetrics has no adapter for: keeps the metrics in a list."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__()
        self._save_dir = save_dir
        self.metrics: list[dict] = []

    @property
    def name(self) -> str:
        return "list"

    @property
    def version(self) -> int:
        return 0

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.append(dict(metrics))


def test_an_unknown_logger_gets_png_files_and_one_info_line(tmp_path, caplog):
    logger = ListLogger(tmp_path / "list_logs")
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], geometry=False)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _fit(tmp_path, [callback], logger=logger, max_epochs=2)
    lines = [r.getMessage() for r in caplog.records if "no figure adapter" in r.getMessage()]
    assert len(lines) == 1 and "ListLogger" in lines[0], lines
    folder = tmp_path / "list_logs" / "info_plane"
    assert sorted(p.name for p in folder.iterdir()) == [png_name("binning", e) for e in (0, 1)]
    _assert_plane_png(folder / png_name("binning", 1))
    assert any("info/binning/I_XT/body.1" in m for m in logger.metrics)  # scalars as usual


def test_plot_false_writes_no_figures_but_still_the_history(tmp_path):
    csv_logger = CSVLogger(save_dir=tmp_path, name="csv", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], plot=False)
    _fit(tmp_path, [callback], logger=csv_logger, max_epochs=1)
    log_dir = Path(csv_logger.log_dir)
    assert not (log_dir / "info_plane").exists()
    assert len(_read_json(log_dir)["records"]) == len(LAYERS)


class BrokenTrackingServer(MLFlowLogger):
    """An MLflow logger whose artifact uploads fail (an unreachable server, a full disk)."""

    @property
    def experiment(self):
        client = super().experiment

        class Failing:
            def __getattr__(self, name):
                if name in ("log_figure", "log_artifact"):
                    raise ConnectionError("tracking server unreachable")
                return getattr(client, name)

        return Failing()


def test_a_failing_logger_is_warned_about_and_the_others_still_get_their_figures(tmp_path):
    broken = BrokenTrackingServer(
        experiment_name="ib",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    csv_logger = CSVLogger(save_dir=tmp_path, name="csv", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], geometry=False)
    with pytest.warns(
        UserWarning,
        match="could not write its information-plane figures to "
        "BrokenTrackingServer: ConnectionError",
    ):
        trainer = _fit(tmp_path, [callback], logger=[broken, csv_logger], max_epochs=2)
    assert trainer.current_epoch == 2  # training went on
    folder = Path(csv_logger.log_dir) / "info_plane"
    assert sorted(p.name for p in folder.iterdir()) == [png_name("binning", e) for e in (0, 1)]
    assert len(callback.history) == 2 * len(LAYERS)
