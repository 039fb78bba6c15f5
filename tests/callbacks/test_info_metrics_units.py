"""Units travel with every InfoMetrics record: bits/nats for information, the estimator's
own unit for scores that are not information (normalised HSIC)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger

from lit_infobottleneck.callbacks import InfoMetrics
from tests.callbacks.test_info_metrics import UserModel, _loaders, _trainer


def test_hsic_records_keep_their_unit_and_stay_out_of_bits_and_the_dpi_check(tmp_path):
    callback = InfoMetrics(layers=["net.1", "net.3"], estimators=["binning", "hsic"])
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=2, logger=CSVLogger(tmp_path))
    trainer.fit(UserModel(), *_loaders())
    hsic = [r for r in callback.history if r["estimator"] == "hsic"]
    binning = [r for r in callback.history if r["estimator"] == "binning"]
    assert len(hsic) == len(binning) == 4
    assert {r["unit"] for r in hsic} == {"nHSIC"} and {r["unit"] for r in binning} == {"bits"}
    for record in hsic:  # a score in [0, 1], never divided by ln 2
        assert 0.0 <= record["I_XT"] <= 1.0 and 0.0 <= record["I_TY"] <= 1.0
    for record in binning:
        assert record["I_XT"] <= math.log2(50) + 1e-9
    metrics = trainer.callback_metrics
    assert "info/binning/dpi_violations" in metrics
    assert "info/hsic/dpi_violations" not in metrics
    saved = json.loads((Path(trainer.log_dir) / "info_metrics.json").read_text())
    assert saved["units"] == {"binning": "bits", "hsic": "nHSIC"}
    assert {r["unit"] for r in saved["records"] if r["estimator"] == "hsic"} == {"nHSIC"}
