"""A measurement never costs a training run: estimates that raise, in one process and DDP.

An estimator that raises anything (here ``RuntimeError``, as CUDA out-of-memory or a bug
would) must skip that one estimate with a warning naming estimator, layer, exception type
and message, while training and the other estimators' curves go on; under 2-process
``ddp_spawn`` (process-group timeout 60 s) rank 0 broadcasts the failure so that no rank
waits. ``strict=True`` re-raises on every rank together.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.estimators import Estimator
from tests.callbacks.test_info_metrics import UserModel, _loaders, _trainer
from tests.callbacks.test_info_metrics_distributed import (
    DestroyProcessGroupAtExit,
    DigitsMLP,
    digits,
    fixed_weights,
    info_json,
)

PG_TIMEOUT = datetime.timedelta(seconds=60)
LAYERS = ["net.1", "net.3"]


class RaisingKDE(Estimator):
    """Stands in for an estimator that fails with something other than ValueError."""

    name = "kde"

    def mutual_information(self, x, y, *, discrete_y=None):
        raise RuntimeError("CUDA out of memory (simulated)")

    def params(self):
        return {"noise_var": 0.1, "bound": "upper"}


def _with_failing_kde(**kwargs) -> InfoMetrics:
    callback = InfoMetrics(layers=LAYERS, **kwargs)
    callback.estimators["kde"] = RaisingKDE()
    return callback


def test_a_runtime_error_in_one_estimate_skips_it_and_training_goes_on(tmp_path):
    callback = _with_failing_kde()
    with pytest.warns(UserWarning) as caught:
        _trainer(tmp_path, callbacks=[callback], max_epochs=3).fit(UserModel(), *_loaders())
    messages = [str(w.message) for w in caught]
    expected = (
        "InfoMetrics: kde on layer 'net.1' skipped at epoch 2: RuntimeError: CUDA out of "
        "memory (simulated)."
    )
    assert expected in messages
    assert sorted({(r["epoch"], r["layer"]) for r in callback.history}) == [
        (e, layer) for e in range(3) for layer in LAYERS
    ]
    assert {r["estimator"] for r in callback.history} == {"binning"}


def test_strict_re_raises_the_estimators_error(tmp_path):
    callback = _with_failing_kde(strict=True)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        _trainer(tmp_path, callbacks=[callback], max_epochs=2).fit(UserModel(), *_loaders())


def test_a_failure_in_the_figures_is_warned_and_the_history_is_kept(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import TensorBoardLogger

    def broken(*args, **kwargs):
        raise TypeError("a plotting bug")

    monkeypatch.setattr("lit_infobottleneck.plotting.information_plane", broken)
    callback = InfoMetrics(layers=LAYERS, estimators=["binning"])
    trainer = _trainer(tmp_path, callbacks=[callback], logger=TensorBoardLogger(tmp_path))
    with pytest.warns(UserWarning, match="could not write its figures: TypeError: a plotting bug"):
        trainer.fit(UserModel(), *_loaders())
    assert [r["epoch"] for r in callback.history] == [0, 0, 1, 1]
    assert (Path(trainer.log_dir) / "info_metrics.json").is_file()


def _ddp_fit(root: Path, callback: InfoMetrics, weights: Path) -> L.Trainer:
    model = DigitsMLP()
    model.load_state_dict(torch.load(weights, weights_only=True))
    trainer = L.Trainer(
        accelerator="cpu",
        strategy=DDPStrategy(start_method="spawn", timeout=PG_TIMEOUT),
        devices=2,
        max_epochs=2,
        logger=CSVLogger(root, name="logs", version=0),
        callbacks=[callback, DestroyProcessGroupAtExit()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    train = DataLoader(digits(128, offset=1000), batch_size=32)
    trainer.fit(model, train, DataLoader(digits(101), batch_size=32))
    return trainer


@pytest.mark.slow
def test_ddp_a_failing_estimate_is_skipped_on_every_rank_and_the_run_finishes(tmp_path):
    # A rank left waiting for rank 0's broadcast would time out (PG_TIMEOUT) and fail the run.
    _ddp_fit(tmp_path, _with_failing_kde(), fixed_weights(tmp_path))
    records = info_json(tmp_path)["records"]
    assert sorted({(r["epoch"], r["estimator"], r["layer"]) for r in records}) == [
        (e, "binning", layer) for e in range(2) for layer in LAYERS
    ]


@pytest.mark.slow
def test_ddp_strict_raises_on_every_rank_together(tmp_path):
    with pytest.raises(Exception, match="CUDA out of memory"):
        _ddp_fit(tmp_path, _with_failing_kde(strict=True), fixed_weights(tmp_path))
