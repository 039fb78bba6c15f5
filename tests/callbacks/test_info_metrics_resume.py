"""Resuming InfoMetrics' history: in another unit, and from a checkpoint of version 0.1.0.

``data/info_metrics_0.1.0.ckpt`` was written by lit-infobottleneck 0.1.0 (commit 8f4f35b):
``UserModel`` of ``test_info_metrics`` fitted 2 epochs on its ``_loaders()`` after
``L.seed_everything(0)``, with ``InfoMetrics(layers=["net.1", "net.3"])`` (binning and KDE,
bits) and ``ModelCheckpoint(save_last=True)``. Its callback state sits under the 0.1.0 key,
which included ``unit``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lit_infobottleneck.callbacks import InfoMetrics
from tests.callbacks.test_info_metrics import UserModel, _loaders, _trainer

LEGACY = Path(__file__).parent / "data" / "info_metrics_0.1.0.ckpt"
LAYERS = ["net.1", "net.3"]
# Its epoch-0 KDE record of net.1, in bits, as 0.1.0 wrote it.
LEGACY_KDE_NET1_EPOCH0 = {"I_XT": 5.586072236288331, "I_TY": 1.982446687034232}


def _fit(tmp_path: Path, unit: str, max_epochs: int, ckpt_path: Path | None = None):
    callback = InfoMetrics(layers=LAYERS, unit=unit)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(
        tmp_path, callbacks=[callback, checkpoint], max_epochs=max_epochs, enable_checkpointing=True
    )
    trainer.fit(UserModel(), *_loaders(), ckpt_path=ckpt_path)
    return callback


def test_resuming_in_nats_converts_the_bits_history_instead_of_dropping_it(tmp_path):
    first = _fit(tmp_path, "bits", max_epochs=2)
    before = {(r["epoch"], r["estimator"], r["layer"]): r for r in first.history}
    resumed = _fit(tmp_path, "nats", max_epochs=3, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert sorted({r["epoch"] for r in resumed.history}) == [0, 1, 2]
    assert {r["unit"] for r in resumed.history} == {"nats"}
    for record in resumed.history:
        if record["epoch"] < 2:
            old = before[(record["epoch"], record["estimator"], record["layer"])]
            for key in ("I_XT", "I_TY"):
                assert record[key] == pytest.approx(old[key] * math.log(2), rel=1e-12)
    assert resumed.meta["unit"] == "nats"
    assert resumed.meta["units"] == {"binning": "nats", "kde": "nats"}
    assert resumed.meta["h_x"] == pytest.approx(math.log(50), rel=1e-12)


def test_a_checkpoint_written_by_version_0_1_0_resumes_with_its_curves(tmp_path):
    state = torch.load(LEGACY, weights_only=True)  # plain data, as documented
    assert any("'unit': 'bits'" in key for key in state["callbacks"])
    callback = _fit(tmp_path, "bits", max_epochs=3, ckpt_path=LEGACY)
    assert sorted({r["epoch"] for r in callback.history}) == [0, 1, 2]
    assert len(callback.history) == 3 * 2 * 2  # epochs x estimators x layers
    restored = next(
        r
        for r in callback.history
        if (r["epoch"], r["estimator"], r["layer"]) == (0, "kde", "net.1")
    )
    assert restored["unit"] == "bits"
    for key, value in LEGACY_KDE_NET1_EPOCH0.items():
        assert restored[key] == value


def test_a_0_1_0_checkpoint_resumed_in_nats_is_converted(tmp_path):
    callback = _fit(tmp_path, "nats", max_epochs=3, ckpt_path=LEGACY)
    restored = next(
        r
        for r in callback.history
        if (r["epoch"], r["estimator"], r["layer"]) == (0, "kde", "net.1")
    )
    assert restored["unit"] == "nats"
    assert restored["I_XT"] == pytest.approx(LEGACY_KDE_NET1_EPOCH0["I_XT"] * math.log(2))


def test_the_restored_meta_names_the_new_unit_before_any_new_epoch(tmp_path):
    first = _fit(tmp_path, "bits", max_epochs=1)
    assert first.meta["units"] == {"binning": "bits", "kde": "bits"}
    restored = InfoMetrics(layers=LAYERS, unit="nats")
    restored.load_state_dict(first.state_dict())
    assert restored.meta["unit"] == "nats"
    assert restored.meta["units"] == {"binning": "nats", "kde": "nats"}
    assert restored.meta["h_y"] == pytest.approx(first.meta["h_y"] * math.log(2), rel=1e-12)
