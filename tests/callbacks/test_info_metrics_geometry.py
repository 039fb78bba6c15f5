"""InfoMetrics' geometry summaries in real Trainer runs: logged per layer and epoch, in
TensorBoard, the CSV/JSON history and checkpoints, equal to the closed-form functions on the
measured samples, and off with ``geometry=False``."""

from __future__ import annotations

import csv

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.geometry import QUANTITIES, layer_geometry
from tests.callbacks.test_info_metrics_outputs import (
    LAYERS,
    N_TRAIN,
    N_VAL,
    DigitsMLP,
    _digits,
    _events,
    _fit,
    _read_json,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")


@pytest.fixture(scope="module")
def geometry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("geometry_run")
    logger = TensorBoardLogger(save_dir=root, name="tb", version=0)
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], plot=False)
    model = DigitsMLP()
    trainer = _fit(root, [callback], model=model, logger=logger, max_epochs=2)
    return callback, trainer, model, root / "tb" / "version_0"


def test_geometry_is_logged_per_layer_and_epoch_everywhere(geometry_run):
    callback, trainer, _, log_dir = geometry_run
    rows = callback.geometry_history
    assert sorted((r["epoch"], r["layer"]) for r in rows) == sorted(
        (epoch, layer) for epoch in (0, 1) for layer in LAYERS
    )
    with open(log_dir / "info_geometry.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert _read_json(log_dir)["geometry"] == rows
    scalars = _events(log_dir)
    for layer in LAYERS:
        for quantity in QUANTITIES:
            tag = f"info/geometry/{quantity}/{layer}"
            assert len(scalars.Scalars(tag)) == 2
            last = next(r for r in rows if r["epoch"] == 1 and r["layer"] == layer)
            assert float(trainer.callback_metrics[tag]) == pytest.approx(last[quantity], rel=1e-6)
    for row in rows:
        assert 0.0 <= row["within_class_ratio"] <= 1.0
        assert 1.0 <= row["effective_dim"] <= 24


def test_logged_geometry_equals_the_closed_forms_on_the_measured_samples(geometry_run):
    """All 300 validation samples are measured; the last epoch's values are recomputed from
    the trained model's activations."""
    callback, _, model, _ = geometry_run
    x, y = _digits()
    x, y = x[N_TRAIN : N_TRAIN + N_VAL], y[N_TRAIN : N_TRAIN + N_VAL]
    model.eval()
    with torch.no_grad():
        hidden = {"body.1": model.body[1](model.body[0](x))}
        hidden["body.3"] = model.body[3](model.body[2](hidden["body.1"]))
    for layer, t in hidden.items():
        logged = next(
            r for r in callback.geometry_history if r["epoch"] == 1 and r["layer"] == layer
        )
        expected = layer_geometry(t, y)
        for quantity in QUANTITIES:
            assert logged[quantity] == pytest.approx(expected[quantity], rel=1e-9)


def test_geometry_false_logs_none(tmp_path):
    callback = InfoMetrics(layers=list(LAYERS), estimators=["binning"], geometry=False, plot=False)
    trainer = _fit(tmp_path, [callback], max_epochs=1)
    assert callback.geometry_history == []
    assert not [k for k in trainer.callback_metrics if k.startswith("info/geometry")]
    assert not (tmp_path / "info_geometry.csv").exists()
    assert _read_json(tmp_path)["geometry"] == []
    assert callback.history  # the information is still measured


def test_geometry_must_be_a_bool():
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    with pytest.raises(MisconfigurationException, match="`geometry` must be True or False"):
        InfoMetrics(geometry="yes")
    with pytest.raises(MisconfigurationException, match="`bootstrap` must be 0"):
        InfoMetrics(bootstrap=1)


def test_two_callbacks_measuring_geometry_are_warned_about(tmp_path):
    first = InfoMetrics(layers=list(LAYERS), estimators=["binning"], plot=False)
    second = InfoMetrics(
        layers=list(LAYERS), estimators=[{"name": "binning", "label": "b2"}], plot=False
    )
    with pytest.warns(UserWarning, match="2 InfoMetrics callbacks log info/geometry"):
        _fit(tmp_path, [first, second], max_epochs=1)
