import math

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.estimators import get_estimator


class UserModel(L.LightningModule):
    """An ordinary user LightningModule: nothing in it knows about InfoMetrics."""

    def __init__(self, nan_after_epoch: int | None = None, fail_in_validation: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())
        self.out = nn.Linear(8, 4)
        self.nan_after_epoch = nan_after_epoch
        self.fail_in_validation = fail_in_validation

    def forward(self, x):
        h = self.net(x)
        if self.nan_after_epoch is not None and self.current_epoch >= self.nan_after_epoch:
            h = h * float("nan")
        return self.out(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.out(self.net(x)), y)

    def validation_step(self, batch, batch_idx):
        if self.fail_in_validation:
            raise RuntimeError("boom in validation")
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class TupleLayer(nn.Module):
    def forward(self, x):
        return {"not": "a tensor"}


def _data(n: int = 200, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = 2.0 * torch.randn(4, 8, generator=gen)[y] + torch.randn(n, 8, generator=gen)
    return x, y


def _loaders():
    x, y = _data()
    return (
        DataLoader(TensorDataset(x[:150], y[:150]), batch_size=50),
        DataLoader(TensorDataset(x[150:], y[150:]), batch_size=20),
    )


def _trainer(tmp_path, **kwargs):
    defaults = dict(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_plain_user_module_gets_curves_without_code_changes(tmp_path):
    model = UserModel()
    callback = InfoMetrics(layers=["net.1", "net.3"], max_samples=1000)
    trainer = _trainer(tmp_path, callbacks=[callback])
    trainer.fit(model, *_loaders())
    metrics = trainer.callback_metrics
    for est in ("binning", "kde"):
        for layer in ("net.1", "net.3"):
            ixt = float(metrics[f"info/{est}/I_XT/{layer}"])
            ity = float(metrics[f"info/{est}/I_TY/{layer}"])
            assert 0.0 <= ixt <= math.log2(50) + 1e-6  # 50 validation samples
            assert 0.0 <= ity <= 2.0 + 1e-6  # 4 balanced classes: H(Y) = 2 bits
    assert [r["epoch"] for r in callback.history if r["estimator"] == "kde"] == [0, 0, 1, 1]
    assert _hooks(model) == 0


def test_values_equal_the_estimators_on_the_captured_layer(tmp_path):
    model = UserModel()
    callback = InfoMetrics(layers=["net.1"], estimators=[{"name": "ksg", "k": 3}], unit="nats")
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=1)
    _, val = _loaders()
    trainer.validate(model, val)
    x, y = val.dataset.tensors
    with torch.no_grad():
        t = model.net[1](model.net[0](x))
    est = get_estimator("ksg", k=3)
    record = callback.history[0]
    assert record["I_XT"] == pytest.approx(float(est.input_information(x, t)), abs=1e-9)
    assert record["I_TY"] == pytest.approx(float(est.label_information(t, y)), abs=1e-9)


def test_hooks_are_removed_after_fit_exception_and_validate(tmp_path):
    model = UserModel(fail_in_validation=True)
    callback = InfoMetrics(layers=["net.1", "net.3"])
    with pytest.raises(RuntimeError, match="boom in validation"):
        _trainer(tmp_path, callbacks=[callback]).fit(model, *_loaders())
    assert _hooks(model) == 0
    assert all(not parts for parts in callback._capture.buffers.values())  # nothing kept
    assert callback._inputs == callback._labels == []
    model.fail_in_validation = False
    trainer = _trainer(tmp_path, callbacks=[callback])
    trainer.validate(model, _loaders()[1])  # inference mode
    assert _hooks(model) == 0
    assert callback.history  # validate() measures too
    trainer.fit(model, *_loaders())  # and a fit afterwards works
    assert _hooks(model) == 0
    assert {r["epoch"] for r in callback.history} == {0, 1}


def test_unknown_layer_name_lists_available_names(tmp_path):
    callback = InfoMetrics(layers=["net.7"])
    with pytest.raises(MisconfigurationException, match=r"'net.7' matches no submodule.*net\.1"):
        _trainer(tmp_path, callbacks=[callback]).fit(UserModel(), *_loaders())


def test_layer_selection_by_glob_type_and_auto(tmp_path):
    for spec, expected in (
        (["net.*"], {"net.0", "net.1", "net.2", "net.3"}),
        ([nn.Tanh], {"net.1", "net.3"}),
        ("auto", {"net.1", "net.3", "out"}),  # activations, then the head
    ):
        callback = InfoMetrics(layers=spec, estimators=["binning"])
        _trainer(tmp_path, callbacks=[callback], max_epochs=1).fit(UserModel(), *_loaders())
        assert {r["layer"] for r in callback.history} == expected


def test_a_layer_without_tensor_output_is_skipped_with_a_warning(tmp_path):
    model = UserModel()
    model.extra = TupleLayer()
    original_forward = model.forward
    model.forward = lambda x: (model.extra(x), original_forward(x))[1]
    callback = InfoMetrics(layers=["extra", "net.1"], estimators=["binning"])
    with pytest.warns(UserWarning, match="'extra'.*not a tensor.*output_selector"):
        _trainer(tmp_path, callbacks=[callback]).fit(model, *_loaders())
    assert {r["layer"] for r in callback.history} == {"net.1"}


def test_nan_activations_skip_the_estimate_and_training_continues(tmp_path):
    model = UserModel(nan_after_epoch=1)
    callback = InfoMetrics(layers=["net.3"], estimators=["binning"])
    model.net[3].register_forward_hook(
        lambda m, i, o: o * float("nan") if model.current_epoch >= 1 else o
    )
    with pytest.warns(UserWarning, match="NaN/Inf activations at epoch 1"):
        _trainer(tmp_path, callbacks=[callback], max_epochs=3).fit(model, *_loaders())
    assert [r["epoch"] for r in callback.history] == [0]
    assert all(math.isfinite(r["I_XT"]) for r in callback.history)


def test_unknown_batch_format_says_how_to_pass_an_extractor(tmp_path):
    class DictModel(UserModel):
        def validation_step(self, batch, batch_idx):
            self(batch["pixels"])

    x, y = _data(40)
    records = [{"pixels": x[i], "target": y[i]} for i in range(40)]
    callback = InfoMetrics(layers=["net.1"])
    with pytest.raises(MisconfigurationException, match="batch_to_xy"):
        _trainer(tmp_path, callbacks=[callback]).validate(
            DictModel(), DataLoader(records, batch_size=10)
        )
    ok = InfoMetrics(layers=["net.1"], batch_to_xy=lambda b: (b["pixels"], b["target"]))
    _trainer(tmp_path, callbacks=[ok]).validate(DictModel(), DataLoader(records, batch_size=10))
    assert ok.history


def test_max_samples_caps_the_captures_with_a_fixed_subset(tmp_path):
    model = UserModel()
    callback = InfoMetrics(layers=["net.1"], estimators=["binning"], max_samples=17)
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=3)
    trainer.fit(model, *_loaders())
    assert callback.meta["samples"] == 17
    assert callback.meta["h_x"] == pytest.approx(math.log2(17))


def test_bad_configuration_is_refused():
    with pytest.raises(MisconfigurationException, match="`max_samples` must be an integer >= 2"):
        InfoMetrics(max_samples=1)
    with pytest.raises(MisconfigurationException, match="unknown estimator 'kgs'"):
        InfoMetrics(estimators=["kgs"])
    with pytest.raises(MisconfigurationException, match="two estimators labelled 'binning'"):
        InfoMetrics(estimators=[{"name": "binning", "bins": 10}, {"name": "binning"}])
    with pytest.raises(MisconfigurationException, match="`unit` must be one of"):
        InfoMetrics(unit="hartleys")
    with pytest.raises(MisconfigurationException, match="`bins` must be an integer >= 2"):
        InfoMetrics(estimators=[{"name": "binning", "bins": 1}])
    two = InfoMetrics(
        estimators=[{"name": "binning", "bins": 10, "label": "bin10"}, {"name": "binning"}]
    )
    assert set(two.estimators) == {"bin10", "binning"}


def test_works_on_the_library_classifier_representation(tmp_path):
    from lit_infobottleneck.module import InfoBottleneckClassifier
    from lit_infobottleneck.nets import ClassifierHead, GaussianBottleneck, MLPEncoder
    from lit_infobottleneck.objectives import VIB

    model = InfoBottleneckClassifier(
        MLPEncoder(8, [16]), GaussianBottleneck(16, 4), ClassifierHead(4, 4), objective=VIB()
    )
    callback = InfoMetrics(layers=["encoder.layers.1", "representation", "prediction"])
    _trainer(tmp_path, callbacks=[callback], max_epochs=1).fit(model, *_loaders())
    assert {r["layer"] for r in callback.history} == {
        "encoder.layers.1",
        "representation",
        "prediction",
    }


def test_a_shared_module_is_measured_at_each_call_and_a_layer_never_run_is_warned(tmp_path):
    class Shared(UserModel):
        def __init__(self):
            super().__init__()
            self.act = nn.Tanh()  # one module used after two layers

        def forward(self, x):
            return self.out(self.act(self.net[2](self.act(self.net[0](x)))))

    callback = InfoMetrics(layers=["act", "net.1"], estimators=["binning"])
    with pytest.warns(UserWarning, match="skips layer 'net.1': it gave 0 rows"):
        _trainer(tmp_path, callbacks=[callback], max_epochs=1).validate(Shared(), _loaders()[1])
    assert [r["layer"] for r in callback.history] == ["act-call1", "act-call2"]  # net.1 never ran


def test_layers_built_in_configure_model_are_found(tmp_path):
    class Late(UserModel):
        def __init__(self):
            super().__init__()
            del self.net

        def configure_model(self):
            if not hasattr(self, "net"):
                self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())

    callback = InfoMetrics(layers=["net.1"], estimators=["binning"])
    _trainer(tmp_path, callbacks=[callback], max_epochs=1).fit(Late(), *_loaders())
    assert [r["layer"] for r in callback.history] == ["net.1"]


def test_two_callbacks_with_different_estimators_coexist_and_estimate_errors_warn(tmp_path):
    every = InfoMetrics(layers=["net.1"], estimators=["binning"])
    sparse = InfoMetrics(layers=["net.1"], estimators=["kde"], every_n_epochs=2)
    trainer = _trainer(tmp_path, callbacks=[every, sparse], max_epochs=2)
    trainer.fit(UserModel(), *_loaders())
    assert [r["epoch"] for r in every.history] == [0, 1]
    assert [r["epoch"] for r in sparse.history] == [0]
    x, y = _data(50)
    greedy = InfoMetrics(layers=["net.1"], estimators=[{"name": "ksg", "k": 100}, "binning"])
    with pytest.warns(UserWarning, match="ksg on layer 'net.1' skipped.*lower `k`"):
        _trainer(tmp_path, callbacks=[greedy]).validate(
            UserModel(), DataLoader(TensorDataset(x, y), batch_size=25)
        )
    assert [r["estimator"] for r in greedy.history] == ["binning"]  # the others go on
