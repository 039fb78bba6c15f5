"""InfoMetrics on bad input: a clear message naming the fix, and training going on where
that is safe. Real Trainer runs of the plain user module of ``test_info_metrics``."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics
from tests.callbacks.test_info_metrics import UserModel, _data, _loaders, _trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")

LAYERS = ["net.1", "net.3"]


class AnyLabels(UserModel):
    """Validation runs the network only, whatever the labels look like."""

    def validation_step(self, batch, batch_idx):
        self(batch[0])


def _validate(tmp_path, callback, x, y, model=None, **kwargs):
    loader = DataLoader(TensorDataset(x, y), batch_size=25)
    _trainer(tmp_path, callbacks=[callback], **kwargs).validate(model or AnyLabels(), loader)
    return callback.history


def _values(history):
    return [(r["estimator"], r["layer"], r["I_XT"], r["I_TY"]) for r in history]


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda y: y.float(), id="float-class-indices"),
        pytest.param(lambda y: y.double().view(-1, 1), id="float-column"),
        pytest.param(lambda y: nn.functional.one_hot(y).float(), id="one-hot"),
    ],
)
def test_float_and_one_hot_labels_give_the_integer_label_result(tmp_path, convert):
    x, y = _data(100)
    model = AnyLabels()
    expected = _values(_validate(tmp_path, InfoMetrics(layers=LAYERS), x, y, model=model))
    got = _values(_validate(tmp_path, InfoMetrics(layers=LAYERS), x, convert(y), model=model))
    assert got == expected
    assert len(got) == 4 and all(math.isfinite(v) for r in got for v in r[2:])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        pytest.param(
            lambda y: torch.softmax(torch.randn(len(y), 4), dim=1),
            r"shape \(25, 4\) but are not one-hot.*batch_to_xy.*argmax",
            id="soft-labels",
        ),
        pytest.param(
            lambda y: y.float() + 0.5,
            r"non-integer values \(e.g. 0.5\).*batch_to_xy",
            id="regression",
        ),
        pytest.param(
            lambda y: y.view(-1, 1, 1), r"class labels of shape \(batch,\).*batch_to_xy", id="3d"
        ),
        pytest.param(lambda y: y[:-1], r"one label per row of x", id="too-few"),
    ],
)
def test_labels_that_are_not_classes_fail_at_the_sanity_check_with_the_fix(
    tmp_path, labels, message
):
    """Found on the first sanity-check batch, before any training step is spent."""
    x, y = _data(150)
    train = DataLoader(TensorDataset(x, y), batch_size=50)

    model = AnyLabels()
    callback = InfoMetrics(layers=LAYERS, batch_to_xy=lambda b: (b[0], labels(b[1])))
    trainer = _trainer(tmp_path, callbacks=[callback], num_sanity_val_steps=1)
    val = DataLoader(TensorDataset(x[:50], y[:50]), batch_size=25)
    with pytest.raises(MisconfigurationException, match=message):
        trainer.fit(model, train, val)
    assert trainer.global_step == 0
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_unknown_batch_format_fails_at_the_sanity_check_naming_batch_to_xy(tmp_path):
    class DictModel(UserModel):
        def training_step(self, batch, batch_idx):
            return super().training_step((batch["pixels"], batch["target"]), batch_idx)

        def validation_step(self, batch, batch_idx):
            self(batch["pixels"])

    x, y = _data(100)
    records = [{"pixels": x[i], "target": y[i]} for i in range(100)]
    trainer = _trainer(tmp_path, callbacks=[InfoMetrics(layers=LAYERS)], num_sanity_val_steps=1)
    with pytest.raises(MisconfigurationException) as error:
        trainer.fit(DictModel(), DataLoader(records, batch_size=25), DataLoader(records))
    assert "keys ['pixels', 'target']" in str(error.value)
    assert "batch_to_xy=lambda batch: (x, y)" in str(error.value)
    assert trainer.global_step == 0


class DeadSecondLayer(AnyLabels):
    """``net.3`` is a ReLU behind a bias of -1e3: always 0 (a dead layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.net[3] = nn.ReLU()
        with torch.no_grad():
            self.net[2].bias.fill_(-1e3)


@pytest.mark.parametrize("bootstrap", [0, 3])
def test_a_dead_layer_is_logged_as_zero_information_with_a_warning(tmp_path, bootstrap):
    estimators = ["binning", "kde", "ksg", "gaussian", "renyi"]
    callback = InfoMetrics(layers=LAYERS, estimators=estimators, bootstrap=bootstrap)
    x, y = _data(100)
    with pytest.warns(UserWarning, match=r"'net.3' is constant over the 100 measured.*dead"):
        history = _validate(tmp_path, callback, x, y, model=DeadSecondLayer())
    dead = [r for r in history if r["layer"] == "net.3"]
    alive = [r for r in history if r["layer"] == "net.1"]
    assert len(dead) == len(alive) == len(estimators)
    keys = {"I_XT", "I_TY"} | (
        {"I_XT_low", "I_XT_high", "I_TY_low", "I_TY_high"} if bootstrap else set()
    )
    for record in dead:
        assert {k: record[k] for k in keys} == dict.fromkeys(keys, 0.0)
    assert all(r["I_TY"] > 0.3 for r in alive if r["estimator"] != "renyi")  # 4 separable classes


def test_nan_and_inf_activations_skip_the_layer_and_training_goes_on(tmp_path):
    model = UserModel()

    def inf_in_validation_of_epoch_1(module, inputs, output):
        if model.current_epoch == 1 and not module.training:
            return torch.where(torch.arange(output.shape[0]).view(-1, 1) == 0, math.inf, output)
        return output

    model.net[3].register_forward_hook(inf_in_validation_of_epoch_1)
    callback = InfoMetrics(layers=LAYERS, estimators=["binning", "kde"])
    with pytest.warns(UserWarning, match="'net.3' has NaN/Inf activations at epoch 1"):
        _trainer(tmp_path, callbacks=[callback], max_epochs=3).fit(model, *_loaders())
    layers_by_epoch = {
        e: {r["layer"] for r in callback.history if r["epoch"] == e} for e in range(3)
    }
    assert layers_by_epoch == {0: set(LAYERS), 1: {"net.1"}, 2: set(LAYERS)}
    assert all(math.isfinite(r["I_XT"]) and math.isfinite(r["I_TY"]) for r in callback.history)


def test_nan_inputs_skip_the_epoch_with_a_warning(tmp_path):
    x, y = _data(100)
    x[7, 3] = math.nan
    model = UserModel()
    model.net[0].register_forward_pre_hook(lambda m, i: (torch.nan_to_num(i[0]),))
    with pytest.warns(UserWarning, match="inputs contain NaN/Inf at epoch 0; no estimates"):
        history = _validate(tmp_path, InfoMetrics(layers=LAYERS), x, y, model=model)
    assert history == []


def test_max_samples_above_the_validation_set_measures_all_and_says_so(tmp_path, caplog):
    x, y = _data(60)
    callback = InfoMetrics(layers=LAYERS, estimators=["binning"], max_samples=5000)
    with caplog.at_level(logging.INFO):
        _validate(tmp_path, callback, x, y)
    assert callback.meta["samples"] == 60
    assert callback.meta["h_x"] == pytest.approx(math.log2(60))
    assert "measures all 60 validation samples it sees (fewer than max_samples=5000)" in caplog.text


@pytest.mark.parametrize(
    ("spec", "parameter"),
    [
        ({"name": "kde", "noise_var": -0.1}, "noise_var"),
        ({"name": "kde", "noise_var": 0.0}, "noise_var"),
        ({"name": "ksg", "k": 0}, "k"),
        ({"name": "binning", "bins": 1}, "bins"),
        ({"name": "renyi", "alpha": 1.0}, "alpha"),
        ({"name": "infonce", "max_steps": 0}, "max_steps"),
    ],
)
def test_estimator_parameters_out_of_range_are_refused_naming_them(spec, parameter):
    with pytest.raises(MisconfigurationException, match=rf"InfoMetrics estimator .*`{parameter}`"):
        InfoMetrics(estimators=[spec])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_features": 0}, "`max_features` must be an integer >= 1 or None"),
        (
            {"feature_reduction": "pca"},
            r"`feature_reduction` must be one of \('sketch', 'subset'\)",
        ),
        ({"max_samples": 1}, "`max_samples` must be an integer >= 2"),
        ({"layers": [3]}, "names, globs, module types or one of"),
    ],
)
def test_callback_arguments_out_of_range_are_refused_naming_them(kwargs, message):
    with pytest.raises(MisconfigurationException, match=message):
        callback = InfoMetrics(**kwargs)
        _trainer(".", callbacks=[callback]).validate(UserModel(), _loaders()[1])
