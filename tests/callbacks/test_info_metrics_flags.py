"""Flags and calibrated parameters through real Trainer runs: a wide ReLU network whose
default estimates all sit at log n is flagged and said so; calibrated noise is chosen at
the first measured epoch, then frozen across epochs and a resume."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics

LAYERS = ["net.1", "net.3", "net.5"]


class WideReLU(L.LightningModule):
    """64 -> 512 -> 512 -> 16 ReLU units -> 10 classes, as in the issue's example."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(64, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 16),
            nn.ReLU(),
            nn.Linear(16, 10),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _loaders():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32)  # raw pixels 0..16: a large scale
    y = torch.tensor(data.target)
    return (
        DataLoader(TensorDataset(x[:600], y[:600]), batch_size=100),
        DataLoader(TensorDataset(x[600:1000], y[600:1000]), batch_size=100),
    )


def _trainer(root: Path, callbacks, max_epochs: int = 2, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=CSVLogger(root, name="logs", version=0),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        **kwargs,
    )


def test_a_wide_relu_network_under_the_defaults_is_flagged_and_told(tmp_path):
    callback = InfoMetrics(layers=LAYERS)
    trainer = _trainer(tmp_path, [callback], enable_checkpointing=False)
    with pytest.warns(UserWarning) as caught:
        trainer.fit(WideReLU(), *_loaders())
    messages = [str(w.message) for w in caught]
    last = [r for r in callback.history if r["epoch"] == 1]
    assert len(last) == 2 * len(LAYERS)
    # 12 of 12 estimates sit at log n = 8.64 bits, I(T;Y) at H(Y): every one says so
    for record in last:
        assert record["flags"] == ["saturated_xt", "saturated_ty"], record
        assert record["I_XT"] >= 0.97 * math.log2(400)
    hints = [m for m in messages if m.startswith("InfoMetrics flags saturated_xt (kde")]
    assert len(hints) == len(LAYERS)  # once per layer per fit, not per epoch
    assert all("median squared distance between samples is" in m for m in hints)
    assert all("noise_var='auto'" in m for m in hints)
    ending = [m for m in messages if "every estimate of the last measured epoch (1)" in m]
    assert len(ending) == 1 and "6 of 6 estimates flagged" in ending[0]
    assert float(trainer.callback_metrics["info/kde/saturated"]) == len(LAYERS)
    assert float(trainer.callback_metrics["info/binning/flagged"]) == len(LAYERS)
    with open(Path(trainer.log_dir) / "info_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["flags"] for row in rows} == {"saturated_xt;saturated_ty"}


def test_auto_noise_makes_the_same_network_measurable(tmp_path):
    estimators = [{"name": "kde", "noise_var": "auto"}, {"name": "noisy"}]
    callback = InfoMetrics(layers=LAYERS, estimators=estimators)
    _trainer(tmp_path, [callback], enable_checkpointing=False).fit(WideReLU(), *_loaders())
    for record in callback.history:
        assert "saturated_xt" not in record["flags"], record
        assert 0.05 * math.log2(400) < record["I_XT"] < 0.95 * math.log2(400), record


def test_calibration_is_frozen_across_epochs_and_a_resume(tmp_path):
    estimators = [{"name": "kde", "noise_var": "auto"}, {"name": "binning", "value_range": "auto"}]
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = InfoMetrics(layers=LAYERS, estimators=estimators)
    _trainer(tmp_path / "a", [first, checkpoint], max_epochs=2).fit(WideReLU(), *_loaders())
    chosen = json.loads(json.dumps(first.calibration))
    assert set(chosen) == {"kde", "binning"} and set(chosen["kde"]) == set(LAYERS)
    assert all(isinstance(p["noise_var"], float) for p in chosen["kde"].values())
    saved = json.loads((tmp_path / "a" / "logs" / "version_0" / "info_metrics.json").read_text())
    assert saved["calibration"] == chosen
    resumed = InfoMetrics(layers=LAYERS, estimators=estimators)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path / "b", [resumed, checkpoint], max_epochs=4).fit(
        WideReLU(), *_loaders(), ckpt_path=tmp_path / "ckpt" / "last.ckpt"
    )
    assert json.loads(json.dumps(resumed.calibration)) == chosen  # the same values after resume
    assert sorted({r["epoch"] for r in resumed.history}) == [0, 1, 2, 3]
