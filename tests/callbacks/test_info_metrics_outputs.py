"""What InfoMetrics leaves behind after real Trainer runs: TensorBoard events (scalars,
custom-scalars layout, information-plane images), the CSV/JSON history, checkpoints that
resume without gaps or duplicates, schedules, units, the data-processing check and
half-sampling bounds.

Every run trains a plain user LightningModule (an MLP with ``nn.Tanh`` layers) on
scikit-learn's bundled digits, on CPU, for a few epochs.
"""

from __future__ import annotations

import copy
import csv
import functools
import itertools
import json
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")

N_TRAIN, N_VAL, VAL_BATCH = 600, 300, 64
LAYERS = ("body.1", "body.3")
ESTIMATORS = ("binning", "kde")
QUANTITIES = ("I_XT", "I_TY")
BASE_COLUMNS = {"epoch", "step", "estimator", "layer", "I_XT", "I_TY", "unit", "flags"}
F32 = 1e-6  # relative tolerance of a value that went through float32 (TensorBoard, self.log)


# ---------------------------------------------------------------------------- data and model


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def _val_labels() -> torch.Tensor:
    return _digits()[1][N_TRAIN : N_TRAIN + N_VAL]


def _entropy_bits(labels: torch.Tensor) -> float:
    p = torch.bincount(labels).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


class DigitsMLP(L.LightningModule):
    """An ordinary user module: nothing in it knows about InfoMetrics."""

    def __init__(self, widths: tuple[int, ...] = (24, 12), lr: float = 0.1) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        width = 64
        for w in widths:
            layers += [nn.Linear(width, w), nn.Tanh()]
            width = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 10)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self) -> DataLoader:
        x, y = _digits()
        return DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=100)

    def val_dataloader(self) -> DataLoader:
        x, y = _digits()
        val = slice(N_TRAIN, N_TRAIN + N_VAL)
        return DataLoader(TensorDataset(x[val], y[val]), batch_size=VAL_BATCH)


class NarrowThenWide(DigitsMLP):
    """A 1-unit tanh layer, then a 64-unit tanh expansion of it with staggered thresholds.

    The wide layer is a function of the narrow one (so the true I(X;T) cannot grow), but
    with 30 bins per layer it resolves the narrow unit's value far more finely than the
    narrow layer's own 30 bins do: binning reports I(X; wide) > I(X; narrow).
    """

    def __init__(self) -> None:
        super().__init__(widths=(), lr=1e-3)
        with torch.no_grad():
            project = nn.Linear(64, 1)
            project.weight.copy_(torch.linspace(-1.0, 1.0, 64).view(1, 64) / 4.0)
            project.bias.zero_()
            expand = nn.Linear(1, 64)
            expand.weight.fill_(20.0)
            expand.bias.copy_(-20.0 * torch.linspace(-1.0, 1.0, 64))
        self.body = nn.Sequential(project, nn.Tanh(), expand, nn.Tanh())
        self.head = nn.Linear(64, 10)


class CrashAtEpochStart(Callback):
    """Simulates a killed job: raises when training epoch ``epoch`` starts (so epochs
    0 .. epoch - 1 finished, validated, measured and checkpointed)."""

    class Killed(RuntimeError):
        pass

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise self.Killed(f"killed at the start of epoch {self.epoch}")


class HistorySnapshot(Callback):
    """Copies an InfoMetrics history at ``on_train_start``: after the checkpoint restore and
    the sanity check, before any training epoch."""

    def __init__(self, target: InfoMetrics) -> None:
        self.target = target
        self.history: list[dict] | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.history = copy.deepcopy(self.target.history)


def _fit(root: Path, callbacks: list[Callback], model: L.LightningModule | None = None, **kw):
    options = dict(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    ckpt_path = kw.pop("ckpt_path", None)
    options.update(kw)
    trainer = L.Trainer(callbacks=callbacks, **options)
    trainer.fit(model or DigitsMLP(), ckpt_path=ckpt_path)
    return trainer


def _read_csv(directory: Path) -> list[dict[str, str]]:
    with open(directory / "info_metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _read_json(directory: Path) -> dict:
    return json.loads((directory / "info_metrics.json").read_text())


def _events(directory: Path) -> event_accumulator.EventAccumulator:
    guidance = {
        kind: 0
        for kind in (
            event_accumulator.COMPRESSED_HISTOGRAMS,
            event_accumulator.IMAGES,
            event_accumulator.AUDIO,
            event_accumulator.SCALARS,
            event_accumulator.HISTOGRAMS,
            event_accumulator.TENSORS,
        )
    }
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance=guidance)
    accumulator.Reload()
    return accumulator


def _key(record: dict) -> tuple[int, str, str]:
    return int(record["epoch"]), record["estimator"], record["layer"]


def _epochs(rows: list[dict]) -> set[int]:
    return {int(r["epoch"]) for r in rows}


def _assert_once_per_epoch_estimator_layer(rows: list[dict], epochs, estimators, layers):
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)), "a (epoch, estimator, layer) row appears twice"
    assert set(keys) == {(e, s, n) for e in epochs for s in estimators for n in layers}


# ---------------------------------------------------------------------------- the main run


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    """3 epochs, default estimators (binning 30 bins, KDE 0.1), TensorBoardLogger, two
    sanity-check validation batches."""
    root = tmp_path_factory.mktemp("tb_run")
    callback = InfoMetrics(layers=list(LAYERS))
    snapshot = HistorySnapshot(callback)
    logger = TensorBoardLogger(save_dir=root, name="tb", version=0)
    trainer = _fit(root, [callback, snapshot], logger=logger, num_sanity_val_steps=2)
    log_dir = Path(logger.log_dir)
    return {
        "callback": callback,
        "snapshot": snapshot,
        "log_dir": log_dir,
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "events": _events(log_dir),
        "csv": _read_csv(log_dir),
        "json": _read_json(log_dir),
    }


def test_tensorboard_scalars_for_every_measured_epoch_with_plausible_values(tb_run):
    ea, history = tb_run["events"], tb_run["callback"].history
    tags = set(ea.Tags()["scalars"])
    bound_xt = math.log2(N_VAL)  # I(X;T) <= H(X) = log2(n) for n distinct inputs
    bound_ty = _entropy_bits(_val_labels())
    for estimator in ESTIMATORS:
        for layer in LAYERS:
            for quantity in QUANTITIES:
                tag = f"info/{estimator}/{quantity}/{layer}"
                assert tag in tags
                events = ea.Scalars(tag)
                steps = [e.step for e in events]
                assert len(events) == 3, f"{tag}: one value per measured epoch (0, 1, 2)"
                assert steps == sorted(set(steps))
                expected = [
                    r[quantity]
                    for r in sorted(history, key=lambda r: r["epoch"])
                    if (r["estimator"], r["layer"]) == (estimator, layer)
                ]
                assert [e.value for e in events] == pytest.approx(expected, rel=F32, abs=F32)
                values = [e.value for e in events]
                assert all(v >= -F32 for v in values)
                if quantity == "I_TY":
                    assert all(v <= bound_ty * (1 + F32) for v in values)
                elif estimator == "binning":
                    assert all(v <= bound_xt * (1 + F32) for v in values)
    seconds = ea.Scalars("info/seconds")
    assert len(seconds) == 3
    assert all(math.isfinite(e.value) and e.value > 0.0 for e in seconds)  # no time limit


def test_tensorboard_scalar_steps_are_those_of_the_measured_epochs(tb_run):
    """Lightning logs ``epoch`` next to every epoch-level metric: map steps back to epochs."""
    ea = tb_run["events"]
    epoch_at_step: dict[int, set[int]] = {}
    for event in ea.Scalars("epoch"):
        epoch_at_step.setdefault(event.step, set()).add(round(event.value))
    for event, epoch in zip(ea.Scalars("info/binning/I_XT/body.1"), range(3), strict=True):
        assert epoch in epoch_at_step[event.step]


def test_custom_scalars_layout_has_one_chart_per_quantity(tb_run):
    ea = tb_run["events"]
    assert "custom_scalars__config__" in ea.Tags()["tensors"]
    assert "custom_scalars__config__" in ea.PluginTagToContent("custom_scalars")
    proto = ea.Tensors("custom_scalars__config__")[0].tensor_proto
    layout = layout_pb2.Layout()
    layout.ParseFromString(proto.string_val[0])
    categories = {c.title: c for c in layout.category}
    for estimator in ESTIMATORS:
        category = categories[f"info/{estimator}"]
        charts = {chart.title: list(chart.multiline.tag) for chart in category.chart}
        assert sorted(charts) == sorted(QUANTITIES), "one chart per quantity"
        for quantity in QUANTITIES:
            (pattern,) = charts[quantity]
            other = "I_TY" if quantity == "I_XT" else "I_XT"
            for layer in LAYERS:
                assert re.fullmatch(pattern, f"info/{estimator}/{quantity}/{layer}")
                assert not re.fullmatch(pattern, f"info/{estimator}/{other}/{layer}")
            assert not re.fullmatch(pattern, "info/seconds")


def test_information_plane_images_for_each_measured_epoch(tb_run):
    ea = tb_run["events"]
    assert {"info_plane/binning", "info_plane/kde"} <= set(ea.Tags()["images"])
    for estimator in ESTIMATORS:
        images = ea.Images(f"info_plane/{estimator}")
        # one figure per measured epoch, steps = epochs; a sanity-check measurement would
        # add a second figure at step 0
        assert [image.step for image in images] == [0, 1, 2]
        for image in images:
            assert image.width > 100 and image.height > 100
            assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_and_json_history_match_tensorboard(tb_run):
    rows, doc, ea = tb_run["csv"], tb_run["json"], tb_run["events"]
    assert set(rows[0]) == BASE_COLUMNS
    _assert_once_per_epoch_estimator_layer(rows, range(3), ESTIMATORS, LAYERS)

    assert doc["unit"] == "bits"
    assert doc["h_x"] == pytest.approx(math.log2(N_VAL), rel=1e-12)
    assert doc["h_y"] == pytest.approx(_entropy_bits(_val_labels()), rel=1e-9)
    assert doc["samples"] == N_VAL
    assert doc["layers"] == list(LAYERS)
    assert set(doc["estimators"]) == set(ESTIMATORS)
    assert doc["estimators"]["binning"]["bins"] == 30
    assert doc["estimators"]["kde"]["noise_var"] == pytest.approx(0.1)
    records = doc["records"]
    assert len(records) == len(rows)
    for record in records:
        assert BASE_COLUMNS <= set(record)
    by_key = {_key(r): r for r in records}
    for row in rows:  # CSV floats are written with repr: they round-trip exactly
        record = by_key[_key(row)]
        for quantity in QUANTITIES:
            assert float(row[quantity]) == record[quantity]
        assert int(row["step"]) == record["step"]
    # full-precision bounds: I(X;T) <= log2 n for binning, I(T;Y) <= H(Y) for both
    for record in records:
        assert record["I_TY"] <= doc["h_y"] + 1e-9
        if record["estimator"] == "binning":
            assert 0.0 <= record["I_XT"] <= math.log2(N_VAL) + 1e-9
    for estimator in ESTIMATORS:
        for layer in LAYERS:
            for quantity in QUANTITIES:
                events = ea.Scalars(f"info/{estimator}/{quantity}/{layer}")
                expected = [by_key[(e, estimator, layer)][quantity] for e in range(3)]
                assert [e.value for e in events] == pytest.approx(expected, rel=F32, abs=F32)
    assert sorted(tb_run["callback"].history, key=_key) == sorted(records, key=_key)


def test_sanity_check_validation_is_never_measured(tb_run):
    """``num_sanity_val_steps=2`` ran two validation batches (128 samples) before training."""
    assert tb_run["snapshot"].history == []  # nothing measured before the first train epoch
    history = tb_run["callback"].history
    first = [r for r in history if r["epoch"] == 0]
    assert history[0]["epoch"] == 0
    assert sorted((r["estimator"], r["layer"]) for r in first) == sorted(
        (s, n) for s in ESTIMATORS for n in LAYERS
    )
    assert tb_run["json"]["samples"] == N_VAL  # the full set, not the 128 sanity samples
    assert len(tb_run["events"].Scalars("info/seconds")) == 3


def test_dpi_violations_is_a_count_on_a_tanh_mlp(tb_run):
    for estimator in ESTIMATORS:
        value = tb_run["metrics"][f"info/{estimator}/dpi_violations"]
        assert value >= 0 and value == int(value) and value <= len(LAYERS) - 1


# ---------------------------------------------------------------------------- kill and resume

# the resumed run reuses the killed run's checkpoint directory on purpose
RESUME_WARNING = pytest.mark.filterwarnings(
    "ignore:Checkpoint directory .* exists and is not empty"
)


@RESUME_WARNING
def test_killed_run_resumes_from_last_checkpoint_without_gaps_or_duplicates(tmp_path):
    """The first run is killed when epoch 3's training starts (epochs 0, 1, 2 done and in
    ``last.ckpt``); a new Trainer and a new InfoMetrics resume it to 5 epochs."""
    ckpt_dir = tmp_path / "checkpoints"

    def run(callbacks, **kw):
        logger = TensorBoardLogger(save_dir=tmp_path, name="tb", version=0)
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_epochs=1)
        return _fit(
            tmp_path,
            [*callbacks, checkpoint],
            logger=logger,
            enable_checkpointing=True,
            max_epochs=5,
            **kw,
        )

    first = InfoMetrics(layers=list(LAYERS))
    with pytest.raises(CrashAtEpochStart.Killed):
        run([first, CrashAtEpochStart(3)])
    log_dir = tmp_path / "tb" / "version_0"
    assert _epochs(first.history) == {0, 1, 2}
    _assert_once_per_epoch_estimator_layer(_read_csv(log_dir), range(3), ESTIMATORS, LAYERS)

    last = ckpt_dir / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["epoch"] == 2
    assert checkpoint["callbacks"][first.state_key]["history"] == first.history

    second = InfoMetrics(layers=list(LAYERS))
    assert second.state_key == first.state_key
    snapshot = HistorySnapshot(second)
    run([second, snapshot], ckpt_path=str(last))

    assert snapshot.history == first.history  # restored from the callback state
    assert [r for r in second.history if r["epoch"] < 3] == first.history
    assert [r for r in second.geometry_history if r["epoch"] < 3] == first.geometry_history
    assert sorted(r["epoch"] for r in second.geometry_history) == sorted(
        epoch for epoch in range(5) for _ in LAYERS
    )
    rows, doc = _read_csv(log_dir), _read_json(log_dir)
    _assert_once_per_epoch_estimator_layer(rows, range(5), ESTIMATORS, LAYERS)
    _assert_once_per_epoch_estimator_layer(doc["records"], range(5), ESTIMATORS, LAYERS)
    before = {_key(r): r for r in first.history}
    for record in doc["records"]:
        if record["epoch"] < 3:
            assert record == before[_key(record)]

    final = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert final["epoch"] == 4
    assert _epochs(final["callbacks"][second.state_key]["history"]) == set(range(5))

    ea = _events(log_dir)  # both runs' event files: the curves continue
    for estimator in ESTIMATORS:
        assert [i.step for i in ea.Images(f"info_plane/{estimator}")] == list(range(5))
    assert len(ea.Scalars("info/binning/I_XT/body.1")) == 5


class CrashAfterValidation(Callback):
    """Raises at the end of epoch ``epoch``'s validation: InfoMetrics has measured (and
    written) the epoch, but ModelCheckpoint, which saves at train-epoch end, has not."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            raise CrashAtEpochStart.Killed(f"killed after validating epoch {self.epoch}")


@RESUME_WARNING
def test_epoch_measured_after_the_last_checkpoint_is_not_duplicated(tmp_path):
    """Epoch 2 is measured and written to the CSV, then the job dies before epoch 2 is
    checkpointed; the resumed run measures epoch 2 again and must replace, not append."""
    ckpt_dir = tmp_path / "checkpoints"
    log_dir = tmp_path / "tb" / "version_0"

    def run(callbacks, **kw):
        logger = TensorBoardLogger(save_dir=tmp_path, name="tb", version=0)
        checkpoint = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, every_n_epochs=1)
        options = dict(logger=logger, enable_checkpointing=True, max_epochs=4)
        return _fit(tmp_path, [*callbacks, checkpoint], **options, **kw)

    first = InfoMetrics(layers=list(LAYERS), estimators=["binning"], plot=False)
    with pytest.raises(CrashAtEpochStart.Killed):
        run([first, CrashAfterValidation(2)])
    assert _epochs(_read_csv(log_dir)) == {0, 1, 2}
    checkpoint = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert _epochs(checkpoint["callbacks"][first.state_key]["history"]) == {0, 1}

    second = InfoMetrics(layers=list(LAYERS), estimators=["binning"], plot=False)
    run([second], ckpt_path=str(ckpt_dir / "last.ckpt"))
    _assert_once_per_epoch_estimator_layer(_read_csv(log_dir), range(4), ["binning"], LAYERS)
    _assert_once_per_epoch_estimator_layer(
        _read_json(log_dir)["records"], range(4), ["binning"], LAYERS
    )
    redone = {_key(r): r for r in second.history if r["epoch"] == 2}
    for record in first.history:
        if record["epoch"] == 2:  # same weights, same samples: the same numbers
            assert redone[_key(record)]["I_XT"] == pytest.approx(record["I_XT"], rel=1e-12)
    # TensorBoard: the first run's epoch-2 events are in its event file, but TensorBoard
    # drops them when the resumed run logs the tag again at an earlier or equal step
    ea = _events(log_dir)
    epoch_at_step = {e.step: round(e.value) for e in ea.Scalars("epoch")}
    for layer in LAYERS:
        events = ea.Scalars(f"info/binning/I_XT/{layer}")
        assert [epoch_at_step[e.step] for e in events] == [0, 1, 2, 3]


# ---------------------------------------------------------------------------- schedules


def test_every_n_epochs_measures_epochs_0_2_4(tmp_path):
    callback = InfoMetrics(layers=["body.1"], estimators=["binning"], every_n_epochs=2)
    _fit(tmp_path, [callback], max_epochs=5, limit_train_batches=1)
    assert _epochs(_read_csv(tmp_path)) == {0, 2, 4}
    assert _epochs(callback.history) == {0, 2, 4}


def test_log_schedule_is_dense_early_and_sparse_late(tmp_path):
    max_epochs, points = 20, 8
    callback = InfoMetrics(
        layers=["body.1"], estimators=["binning"], schedule="log", log_points=points, plot=False
    )
    _fit(tmp_path, [callback], max_epochs=max_epochs, limit_train_batches=1)
    measured = sorted(_epochs(_read_csv(tmp_path)))
    assert measured[0] == 0 and measured[-1] == max_epochs - 1
    assert 4 <= len(measured) <= points
    gaps = [b - a for a, b in itertools.pairwise(measured)]
    assert gaps == sorted(gaps), f"gaps should widen: {measured}"
    early = sum(e < max_epochs // 2 for e in measured)
    assert early > len(measured) - early, f"not denser early: {measured}"
    assert measured == [e for e in range(max_epochs) if callback.measures_epoch(e, max_epochs)]


# ---------------------------------------------------------------------------- units


def test_nats_are_bits_times_ln2(tmp_path, tb_run):
    """The same training as ``tb_run`` (seeded, unshuffled, CPU): only the unit differs."""
    callback = InfoMetrics(layers=list(LAYERS), unit="nats", plot=False)
    _fit(tmp_path, [callback], num_sanity_val_steps=2)
    bits = {_key(r): r for r in tb_run["json"]["records"]}
    doc = _read_json(tmp_path)
    assert doc["unit"] == "nats"
    assert set(bits) == {_key(r) for r in doc["records"]}
    for record in doc["records"]:
        for quantity in QUANTITIES:
            expected = bits[_key(record)][quantity] * math.log(2)
            assert record[quantity] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert doc["h_x"] == pytest.approx(math.log(N_VAL), rel=1e-12)
    assert doc["h_y"] == pytest.approx(tb_run["json"]["h_y"] * math.log(2), rel=1e-9)


# ---------------------------------------------------------------------------- DPI check


def test_dpi_violation_is_counted_and_warned(tmp_path):
    callback = InfoMetrics(layers=["body.1", "body.3"], estimators=["binning"], plot=False)
    with pytest.warns(UserWarning, match="grows with depth"):
        trainer = _fit(tmp_path, [callback], model=NarrowThenWide(), max_epochs=1)
    narrow, wide = (r["I_XT"] for r in callback.history)
    assert narrow <= math.log2(30) + 1e-9  # one unit in 30 bins
    assert wide > narrow + 0.1
    assert float(trainer.callback_metrics["info/binning/dpi_violations"]) > 0


# ---------------------------------------------------------------------------- bootstrap


BOUNDS = ("I_XT_low", "I_XT_high", "I_TY_low", "I_TY_high")


@pytest.fixture(scope="module")
def bootstrap_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bootstrap_run")
    callback = InfoMetrics(layers=list(LAYERS), bootstrap=5, plot=False)
    trainer = _fit(root, [callback], max_epochs=1)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return _read_csv(root), metrics, _read_json(root)


def test_bootstrap_bounds_are_logged_and_ordered(bootstrap_run):
    rows, metrics, meta = bootstrap_run
    assert meta["interval"] == {"method": "half-sampling", "resamples": 5, "level": 0.95}
    assert set(rows[0]) == BASE_COLUMNS | set(BOUNDS)
    _assert_once_per_epoch_estimator_layer(rows, [0], ESTIMATORS, LAYERS)
    for row in rows:
        value = {k: float(row[k]) for k in (*QUANTITIES, *BOUNDS)}
        assert value["I_XT_low"] <= value["I_XT_high"]
        assert value["I_TY_low"] <= value["I_TY_high"]
        assert value["I_XT_low"] <= value["I_XT"] + 1e-9
        for key in BOUNDS:
            metric = metrics[f"info/{row['estimator']}/{key}/{row['layer']}"]
            assert metric == pytest.approx(value[key], rel=F32, abs=F32)


# ---------------------------------------------------------------------------- session start


def _session_starts(log_dir: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    steps = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                steps.append(event.step)
    return steps


def test_the_session_start_marker_is_written_at_train_start(tmp_path):
    logger = TensorBoardLogger(save_dir=tmp_path, name="tb", version=0)
    _fit(tmp_path, [InfoMetrics(layers=list(LAYERS), plot=False)], logger=logger, max_epochs=1)
    assert _session_starts(Path(logger.log_dir)) == [0]


def test_without_the_private_writer_api_the_marker_is_skipped_with_a_warning(tmp_path):
    from types import SimpleNamespace

    from lit_infobottleneck.callbacks._outputs import mark_tensorboard_session_start

    class WriterOfAnotherPyTorch:  # a SummaryWriter whose private _get_file_writer moved
        def flush(self):
            raise AssertionError("nothing was written, so nothing needs flushing")

    logger = TensorBoardLogger(save_dir=tmp_path, name="tb", version=0)
    logger._experiment = WriterOfAnotherPyTorch()
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, global_step=7)
    with pytest.warns(UserWarning, match="cannot mark the \\(re\\)start in TensorBoard"):
        assert mark_tensorboard_session_start(trainer) is False
