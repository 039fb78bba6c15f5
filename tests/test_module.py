import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import (
    ClassifierHead,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    NoisyBottleneck,
)
from lit_infobottleneck.objectives import (
    CEB,
    VIB,
    CrossEntropy,
    HSICBottleneck,
    InfoObjective,
    NonlinearIB,
)


def _blobs(n: int = 256, d: int = 8, classes: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = 3.0 * torch.randn(classes, d, generator=gen)
    x = centres[y] + torch.randn(n, d, generator=gen)
    return x, y


def _loaders(batch_size: int = 64):
    x, y = _blobs()
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=batch_size, shuffle=False)
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=batch_size)
    return train, val


def _vib_model(**kwargs) -> InfoBottleneckClassifier:
    torch.manual_seed(0)
    return InfoBottleneckClassifier(
        encoder=MLPEncoder(8, [32, 32], activation="tanh"),
        bottleneck=GaussianBottleneck(32, 4, num_samples=3),
        head=ClassifierHead(4, 4),
        objective=VIB(beta=1e-2),
        input_shape=[8],
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
        **kwargs,
    )


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    defaults = dict(
        max_epochs=3,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=CSVLogger(tmp_path, name="run", version=0),
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def _read_metrics(tmp_path: Path) -> list[dict[str, str]]:
    with open(tmp_path / "run" / "version_0" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_fit_logs_every_objective_term_and_accuracy(tmp_path):
    model = _vib_model()
    trainer = _trainer(tmp_path)
    trainer.fit(model, *_loaders())
    rows = _read_metrics(tmp_path)
    columns = set(rows[0])
    for stage in ("train", "val"):
        for term in ("loss", "ce", "kl"):
            key = f"{stage}/{term}" + ("_epoch" if stage == "train" else "")
            assert key in columns, key
            assert any(r[key] for r in rows)
    assert {"val/acc", "train/acc"} <= columns
    final_val = [float(r["val/acc"]) for r in rows if r["val/acc"]][-1]
    assert final_val > 0.9  # separable blobs
    trainer.test(model, _loaders()[1])
    assert "test/kl" in trainer.callback_metrics
    loss = trainer.callback_metrics["test/loss"]
    ce, kl = trainer.callback_metrics["test/ce"], trainer.callback_metrics["test/kl"]
    assert float(loss) == pytest.approx(float(ce + 1e-2 * kl), rel=1e-5)


def test_predict_returns_probabilities_averaged_over_samples(tmp_path):
    model = _vib_model()
    _trainer(tmp_path, max_epochs=2, logger=False).fit(model, *_loaders())
    model.eval()
    x, _ = _blobs(32, seed=1)
    loader = DataLoader(TensorDataset(x), batch_size=16)
    probs = torch.cat(L.Trainer(logger=False, enable_progress_bar=False).predict(model, loader))
    assert probs.shape == (32, 4)
    torch.testing.assert_close(probs.sum(1), torch.ones(32))
    # eval without test-time samples: z is the mean, so prediction is deterministic
    assert torch.equal(model(x), model(x))
    model.bottleneck.eval_num_samples = 12  # Alemi et al.'s test-time sampling
    torch.manual_seed(0)
    sampled = model(x)
    assert not torch.equal(sampled, model(x))  # stochastic average of 12 samples
    torch.testing.assert_close(sampled.sum(1), torch.ones(32))


def test_representation_and_prediction_are_hookable_by_name():
    model = _vib_model().eval()
    seen = {}
    names = dict(model.named_modules())
    for name in ("encoder.layers.1", "representation", "prediction"):
        names[name].register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    model(torch.randn(5, 8))
    assert seen["encoder.layers.1"].shape == (5, 32)
    assert seen["representation"].shape == (5, 4)
    assert seen["prediction"].shape == (5, 4)
    model.train()
    model(torch.randn(5, 8))
    assert seen["representation"].shape == (5, 3 * 4)  # batch first, S samples flattened


def test_checkpoint_of_a_python_built_model_is_weights_only_and_reloads(tmp_path):
    model = _vib_model()
    trainer = _trainer(tmp_path, max_epochs=1, logger=False)
    trainer.fit(model, *_loaders())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert "encoder" not in checkpoint["hyper_parameters"]
    fresh = _vib_model()
    restored = InfoBottleneckClassifier.load_from_checkpoint(
        path,
        encoder=fresh.encoder,
        bottleneck=fresh.bottleneck,
        head=fresh.head,
        objective=fresh.objective,
        optimizer=fresh.optimizer,
    )
    x = torch.randn(7, 8)
    torch.testing.assert_close(restored.eval()(x), model.eval()(x))


def test_load_from_checkpoint_rebuilds_nested_class_path_configs(tmp_path):
    config = {
        "model": {
            "encoder": {
                "class_path": "lit_infobottleneck.nets.MLPEncoder",
                "init_args": {"in_features": 8, "hidden_sizes": [16], "activation": "tanh"},
            },
            "bottleneck": {
                "class_path": "lit_infobottleneck.nets.GaussianBottleneck",
                "init_args": {"in_features": 16, "latent_dim": 3, "num_samples": 2},
            },
            "head": {
                "class_path": "lit_infobottleneck.nets.ClassifierHead",
                "init_args": {"in_features": 3, "num_classes": 4},
            },
            "objective": {
                "class_path": "lit_infobottleneck.objectives.vib.VIB",
                "init_args": {"beta": 0.05},
            },
            "input_shape": [8],
            "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}},
        },
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(tmp_path),
        },
    }
    cli = LightningCLI(InfoBottleneckClassifier, run=False, args=config)
    cli.trainer.fit(cli.model, *_loaders())
    path = tmp_path / "cli.ckpt"
    cli.trainer.save_checkpoint(path)
    restored = InfoBottleneckClassifier.load_from_checkpoint(path)
    assert isinstance(restored.objective, VIB) and restored.objective.beta == 0.05
    assert restored.bottleneck.latent_dim == 3
    assert isinstance(restored.optimizer(restored.parameters()), torch.optim.SGD)
    x = torch.randn(6, 8)
    torch.testing.assert_close(restored.eval()(x), cli.model.eval()(x))


OBJECTIVES = {
    "CrossEntropy": (lambda: CrossEntropy(), lambda: DeterministicBottleneck(32, 4)),
    "VIB": (lambda: VIB(beta=1e-2), lambda: GaussianBottleneck(32, 4, num_samples=2)),
    "CEB": (lambda: CEB(beta=1e-2), lambda: GaussianBottleneck(32, 4)),
    "InfoObjective": (lambda: InfoObjective(), lambda: GaussianBottleneck(32, 4)),
    "NonlinearIB": (lambda: NonlinearIB(beta=1e-2), lambda: NoisyBottleneck(32, 4)),
    "HSICBottleneck": (lambda: HSICBottleneck(), lambda: DeterministicBottleneck(32, 4)),
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_bf16_mixed_training_on_cpu_gives_finite_losses(tmp_path, name):
    make_objective, make_bottleneck = OBJECTIVES[name]
    torch.manual_seed(0)
    model = InfoBottleneckClassifier(
        encoder=MLPEncoder(8, [32, 32], activation="tanh"),
        bottleneck=make_bottleneck(),
        head=ClassifierHead(4, 4),
        objective=make_objective(),
        input_shape=[8],
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
    )
    trainer = _trainer(tmp_path, max_epochs=3, precision="bf16-mixed")
    trainer.fit(model, *_loaders())
    terms = [k for k in trainer.callback_metrics if k.startswith("val/")]
    assert {"val/loss", "val/ce", "val/acc"} <= set(terms)
    assert len(terms) >= (3 if name == "CrossEntropy" else 4)  # every term logged
    for key in [*terms, "train/loss_epoch"]:
        assert math.isfinite(float(trainer.callback_metrics[key])), key
    assert float(trainer.callback_metrics["val/acc"]) > 0.9


def test_reduce_lr_on_plateau_monitors_val_loss(tmp_path):
    model = _vib_model(
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    )
    trainer = _trainer(tmp_path, max_epochs=2, logger=False)
    trainer.fit(model, *_loaders())
    assert trainer.lr_scheduler_configs[0].monitor == "val/loss"


def test_bad_configurations_name_the_field():
    enc, head = MLPEncoder(8, [16]), ClassifierHead(4, 4)
    with pytest.raises(ValueError, match="unknown `activation` 'swishy'"):
        MLPEncoder(8, [16], activation="swishy")
    with pytest.raises(ValueError, match="`beta` must be a number >= 0"):
        VIB(beta=-1.0)
    with pytest.raises(ValueError, match=r"`input_shape` \[10\] does not fit.*`in_features`"):
        InfoBottleneckClassifier(enc, DeterministicBottleneck(16, 4), head, input_shape=[10])
    with pytest.raises(ValueError, match="`bottleneck.in_features` is 12 but"):
        InfoBottleneckClassifier(enc, DeterministicBottleneck(12, 4), head)
    with pytest.raises(ValueError, match="`head.in_features` is 4 but `bottleneck.latent_dim`"):
        InfoBottleneckClassifier(enc, DeterministicBottleneck(16, 5), head)
    with pytest.raises(ValueError, match="needs a stochastic `bottleneck`"):
        InfoBottleneckClassifier(enc, DeterministicBottleneck(16, 4), head, objective=VIB())
    with pytest.raises(ValueError, match="`num_classes` is 3 but `head.num_classes` is 4"):
        InfoBottleneckClassifier(enc, DeterministicBottleneck(16, 4), head, num_classes=3)


def test_default_objective_is_cross_entropy_and_batches_may_be_dicts(tmp_path):
    model = InfoBottleneckClassifier(
        MLPEncoder(8, [16]), DeterministicBottleneck(16, 4), ClassifierHead(4, 4)
    )
    assert isinstance(model.objective, CrossEntropy)
    x, y = _blobs(64)
    records = [{"x": x[i], "y": y[i]} for i in range(64)]
    trainer = _trainer(tmp_path, max_epochs=1, logger=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(records, batch_size=32))
    assert math.isfinite(float(trainer.callback_metrics["train/loss_epoch"]))


def test_beta_schedule_warms_up_the_vib_weight(tmp_path):
    from lit_infobottleneck.callbacks import BetaSchedule

    model = _vib_model()
    seen = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append(pl_module.objective.beta)

    schedule = BetaSchedule(weight="beta", schedule="linear", start=0.0, end=0.1, warmup=2)
    trainer = _trainer(tmp_path, max_epochs=4, callbacks=[schedule, Record()])
    trainer.fit(model, *_loaders())
    assert seen == pytest.approx([0.0, 0.05, 0.1, 0.1])
    logged = [float(r["schedule/beta"]) for r in _read_metrics(tmp_path) if r["schedule/beta"]]
    assert logged == pytest.approx([0.0, 0.05, 0.1, 0.1])


def test_accuracy_is_the_share_of_correct_predictions_not_the_class_mean():
    """Regression: ``train/acc``, ``val/acc`` and ``test/acc`` were torchmetrics' default
    macro average (the mean of per-class recalls). On 90 samples of class 0 and 10 of class
    1, all predicted 0, accuracy is 0.9 and the macro average 0.5."""
    model = _vib_model()
    y = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    for stage in ("train_acc", "val_acc", "test_acc"):
        metric = model.metrics[stage]
        metric.update(torch.zeros(100, dtype=torch.long), y)
        assert float(metric.compute()) == pytest.approx(0.9), stage
