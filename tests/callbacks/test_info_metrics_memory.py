"""Memory of InfoMetrics: capture buffers bounded by ``max_samples`` rows and
``max_features`` columns, very wide layers reduced (and said so), no growth over 50 measured
epochs with every estimator on."""

from __future__ import annotations

import itertools
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.callbacks._reduction import FeatureReducer
from lit_infobottleneck.estimators import get_estimator
from tests.callbacks.test_info_metrics import UserModel, _data, _trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the reduction map itself


def _pairwise_sq(x: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(x.double(), x.double()) ** 2
    return d[torch.triu_indices(len(x), len(x), offset=1).unbind()]


def test_sketch_preserves_norms_and_distances_of_nonnegative_activations():
    """ReLU-like (non-negative) units: without the random signs the sketch would add up
    the units' means and inflate every norm about 20-fold; with them norms and distances
    keep their size to within the sqrt(2 / k) spread."""
    gen = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(40, 20_000, generator=gen))
    reduced = FeatureReducer(1024)("layer", x)
    assert reduced.shape == (40, 1024)
    norm_ratio = reduced.double().norm(dim=1) / x.double().norm(dim=1)
    assert float((norm_ratio - 1).abs().max()) < 0.12
    distance_ratio = _pairwise_sq(reduced) / _pairwise_sq(x)
    assert float((distance_ratio - 1).abs().median()) < 0.06  # sqrt(2/1024) = 0.044
    assert float((distance_ratio - 1).abs().max()) < 0.25


def test_maps_are_fixed_by_seed_and_layer_name_so_ranks_and_epochs_agree():
    x = torch.randn(8, 5000)
    a, b = FeatureReducer(256, seed=3), FeatureReducer(256, seed=3)  # e.g. two ranks
    assert torch.equal(a("enc.1", x), b("enc.1", x))
    assert torch.equal(a("enc.1", x), a("enc.1", x))  # the next epoch
    assert not torch.equal(a("enc.1", x), a("enc.2", x))
    assert not torch.equal(a("enc.1", x), FeatureReducer(256, seed=4)("enc.1", x))
    assert a.applied["enc.1"].describe() == {"method": "sketch", "features": 5000, "kept": 256}


def test_subset_keeps_units_unchanged_and_narrow_layers_are_untouched():
    x = torch.randn(6, 3000)
    reducer = FeatureReducer(100, method="subset")
    reduced = reducer("wide", x)
    columns = reducer.applied["wide"].columns
    assert reduced.shape == (6, 100) and len(set(columns.tolist())) == 100
    assert torch.equal(reduced, x[:, columns])
    narrow = torch.randn(6, 100)
    assert reducer("narrow", narrow) is narrow
    assert FeatureReducer(None)("wide", x) is x


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_features": 0}, "`max_features` must be an integer >= 1 or None, got 0"),
        ({"max_features": 2.5}, "`max_features` must be an integer"),
        ({"max_features": 8, "method": "pca"}, "`feature_reduction` must be one of"),
    ],
)
def test_reducer_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureReducer(**kwargs)


# ---------------------------------------------------------------- bounded captures in a run


class BufferProbe(Callback):
    """Largest rows/columns any capture buffer (and the input buffer) held, per batch."""

    def __init__(self, info: InfoMetrics) -> None:
        self.info, self.max_rows, self.max_cols = info, 0, 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        capture = self.info._capture
        parts = [*capture.buffers.values(), getattr(self.info, "_inputs", [])]
        for buffer in parts:
            self.max_rows = max(self.max_rows, sum(p.shape[0] for p in buffer))
            self.max_cols = max([self.max_cols] + [p.shape[1] for p in buffer])


class WideModel(UserModel):
    """A 100,000-unit tanh layer (``wide.1``) between input and output."""

    def __init__(self, width: int = 100_000) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.wide = nn.Sequential(nn.Linear(8, width), nn.Tanh())
        self.out = nn.Linear(width, 4)

    def forward(self, x):
        return self.out(self.wide(x))

    def validation_step(self, batch, batch_idx):
        self(batch[0])


def test_captures_never_exceed_max_samples_rows(tmp_path):
    callback = InfoMetrics(layers=["net.1", "net.3"], estimators=["binning"], max_samples=37)
    probe = BufferProbe(callback)
    x, y = _data(300)
    train = DataLoader(TensorDataset(x[:150], y[:150]), batch_size=50)
    val = DataLoader(TensorDataset(x[150:], y[150:]), batch_size=16)  # 37 is no multiple
    _trainer(tmp_path, callbacks=[callback, probe], max_epochs=3).fit(UserModel(), train, val)
    assert probe.max_rows == 37
    assert callback.meta["samples"] == 37 and len(callback.history) == 6


@pytest.mark.slow
def test_a_100k_unit_layer_is_sketched_to_max_features_and_the_reduction_logged(tmp_path):
    x, y = _data(200)
    model = WideModel()
    # noise variance on the scale of this layer's squared distances (median 7e4, min 800),
    # so neither estimate saturates at H(X) = log2 200 or H(Y) = 2 bits
    kde = {"name": "kde", "noise_var": 3000.0}
    callback = InfoMetrics(layers=["wide.1"], estimators=[kde], max_features=512)
    probe = BufferProbe(callback)
    trainer = _trainer(tmp_path, callbacks=[callback, probe], logger=CSVLogger(tmp_path))
    loader = DataLoader(TensorDataset(x, y), batch_size=50)
    with pytest.warns(UserWarning, match=r"layer 'wide.1' through 512 of its 100000 features"):
        trainer.validate(model, loader)
    assert probe.max_cols == 512  # 200 x 512 floats held, not 200 x 100,000 (80 MB)
    reduction = {"method": "sketch", "features": 100_000, "kept": 512}
    assert callback.meta["reductions"] == {"wide.1": reduction}
    saved = json.loads((Path(trainer.log_dir) / "info_metrics.json").read_text())
    assert saved["reductions"] == {"wide.1": reduction}

    # the sketched layer's estimates are those of the full layer, to the sketch's spread
    with torch.no_grad():
        t = model.wide(x)
    full = get_estimator("kde", noise_var=3000.0)
    (record,) = callback.history
    full_xt = float(full.input_information(x, t)) / math.log(2)
    full_ty = float(full.label_information(t, y)) / math.log(2)
    assert 1.0 < full_xt < 0.8 * math.log2(200) and 0.5 < full_ty < 0.97 * 2.0
    assert record["I_XT"] == pytest.approx(full_xt, rel=0.03)  # measured: 1.2 % apart
    assert record["I_TY"] == pytest.approx(full_ty, rel=0.03)  # measured: 0.4 % apart


def test_inputs_wider_than_max_features_are_reduced_too(tmp_path):
    x, y = _data(80)
    callback = InfoMetrics(layers=["net.1"], estimators=["binning"], max_features=4)
    probe = BufferProbe(callback)
    with pytest.warns(UserWarning, match=r"the inputs through 4 of its 8 features"):
        _trainer(tmp_path, callbacks=[callback, probe]).validate(
            UserModel(), DataLoader(TensorDataset(x, y), batch_size=20)
        )
    assert probe.max_cols == 4
    assert set(callback.meta["reductions"]) == {"<input>", "net.1"}


# ---------------------------------------------------------------- 50 measured epochs


@pytest.mark.slow
@pytest.mark.timeout(660)  # above the soak's own limit (600 s), which fails more clearly
def test_twenty_measured_epochs_do_not_grow_resident_memory(tmp_path):
    """``benchmarks/memory_soak.py`` in a fresh process: 20 epochs, TensorBoard figures on,
    a histogram, a distance, a k-NN and a neural estimator (50 epochs and the full set of
    ten estimators are the benchmark's default, recorded in docs/benchmarks.md).

    The resident set is flat to 0.1 MiB from epoch 5 on, apart from one-time steps of up to
    4 MiB when the allocator takes a new arena (a 40-epoch run, 2026-12-02: +2.9 MiB at epoch
    8, -1.9 MiB at epoch 19, flat otherwise). A leak grows the set every epoch, a step once:
    the median epoch-to-epoch change over epochs 5-19 must stay under 0.15 MiB, so a leak of
    0.3 MiB per epoch fails and a step does not; a gross bound (6 MiB over those epochs)
    catches a leak that grows only every other epoch."""
    out = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "memory_soak.py"),
        "--epochs=20",
        "--max-samples=150",
        "--neural-steps=10",
        "--estimators",
        "binning",
        "kde",
        "ksg",
        "infonce",
        f"--json={out}",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["epoch"] for r in rows] == list(range(20))
    assert result["records"] == 20 * 4 * 2  # every epoch, estimator and layer measured
    assert all(r["buffer_rows"] <= 150 for r in rows)
    rss = [r["rss_mib"] for r in rows]
    changes = [after - before for before, after in itertools.pairwise(rss[5:20])]
    shown = [round(value, 1) for value in rss]
    assert statistics.median(changes) < 0.15, shown  # MiB per epoch
    assert rss[19] - rss[5] < 6.0, shown
