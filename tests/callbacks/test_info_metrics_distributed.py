"""InfoMetrics under real 2-process DDP (``ddp_spawn`` on CPU, gloo).

DESIGN: every rank calls every collective; captures of all ranks are gathered (uneven counts
padded), the duplicates that DistributedSampler adds are dropped, the estimates are computed
once and logged identically on every rank. Results must equal a single-process run on the
same data. Everything a spawned process unpickles (modules, datasets, callbacks) is defined
at module level.

Equality is asserted to 1e-9, so both runs must compute bitwise equal activations. CPU
matmuls are not batch-invariant for every batch size (here, rows of a batch of fewer than 4
give last-bit differences from the same rows in a larger batch), so the data sets and batch
sizes below are chosen such that each sample is in a batch of the same kind in both runs.
"""

from __future__ import annotations

import atexit
import csv
import datetime
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics

pytestmark = pytest.mark.slow

N_VAL = 301  # odd: DistributedSampler pads rank 1 with a duplicate of sample 0
LAYERS = ["net.1", "net.3"]
ESTIMATORS = [
    {"name": "binning", "bins": 10},
    {"name": "kde", "noise_var": 0.1},
    {"name": "ksg", "k": 3},
]
TOL = 1e-9
# A rank stuck in a collective fails the test after this long instead of hanging it.
DDP_TIMEOUT = datetime.timedelta(seconds=30)


class DigitsMLP(L.LightningModule):
    """A plain user module: nothing in it knows about InfoMetrics."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
        )
        self.probe = nn.Identity()  # runs twice per forward pass: on the input, the logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.probe(self.net(self.probe(x)))
        if self.global_rank == 1:
            self.probe(out)  # a third time on rank 1 only: the ranks must agree on the names
        return out

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class RankMetricsDump(Callback):
    """Each rank writes its ``callback_metrics`` after every validation run to a JSON file."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        path = self.directory / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        path.write_text(json.dumps(metrics))


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class DestroyProcessGroupAtExit(Callback):
    """Test harness, not InfoMetrics: Lightning destroys only NCCL process groups at exit; a
    spawned worker that exits with a live gloo group sometimes aborts ("terminate called
    without an active exception", SIGABRT), failing a run whose work was done (about 1 in 4
    plain ``trainer.validate`` runs here, without any InfoMetrics)."""

    def setup(self, trainer, pl_module, stage) -> None:
        if trainer.world_size > 1:
            atexit.register(_destroy_process_group)


class DtypeRecorder(InfoMetrics):
    """InfoMetrics that remembers the dtypes of the tensors it estimates from."""

    def _estimate(self, data, names, epoch, step):
        self.seen_dtypes = {key: value.dtype for key, value in data.items()}
        return super()._estimate(data, names, epoch, step)


class EveryThirdSampler(Sampler[int]):
    """A deterministic user sampler: samples 0, 3, 6, ... (101 of 301, an odd count)."""

    def __init__(self, n: int) -> None:
        self.indices = list(range(0, n, 3))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def digits(n: int, offset: int = 0) -> TensorDataset:
    """``n`` scikit-learn digits (64 pixels in [0, 1], 10 classes) from ``offset`` on."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data[offset : offset + n], dtype=torch.float32) / 16.0
    y = torch.tensor(data.target[offset : offset + n], dtype=torch.long)
    return TensorDataset(x, y)


def fixed_weights(tmp_path: Path) -> Path:
    """Seeded initial weights saved once, loaded into every run."""
    path = tmp_path / "init.pt"
    if not path.exists():
        torch.manual_seed(1234)
        torch.save(DigitsMLP().state_dict(), path)
    return path


def run(
    tmp_path: Path,
    name: str,
    *,
    ddp: bool,
    stage: str = "validate",
    val_data: TensorDataset | None = None,
    batch_size: int = 32,
    sampler: Sampler | None = None,
    callback: InfoMetrics | None = None,
    **trainer_kwargs,
) -> Path:
    """Run validate/fit once with 1 process or 2-process ddp_spawn; return the run's dir."""
    root = tmp_path / name
    root.mkdir()
    model = DigitsMLP()
    model.load_state_dict(torch.load(fixed_weights(tmp_path), weights_only=True))
    if callback is None:
        callback = InfoMetrics(layers=LAYERS, estimators=ESTIMATORS, max_samples=1000)
    if ddp:
        strategy = DDPStrategy(start_method="spawn", timeout=DDP_TIMEOUT)
        devices = 2
    else:
        strategy, devices = "auto", 1
    trainer = L.Trainer(
        accelerator="cpu",
        strategy=strategy,
        devices=devices,
        logger=CSVLogger(root, name="logs", version=0),
        callbacks=[callback, RankMetricsDump(root), DestroyProcessGroupAtExit()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )
    val_data = val_data if val_data is not None else digits(N_VAL)
    val = DataLoader(val_data, batch_size=batch_size, sampler=sampler)
    if stage == "validate":
        trainer.validate(model, val, verbose=False)
    else:
        train = DataLoader(digits(128, offset=1000), batch_size=32, shuffle=True)
        trainer.fit(model, train, val)
    return root


def info_json(root: Path) -> dict | None:
    path = root / "logs" / "version_0" / "info_metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def rank_metrics(root: Path, rank: int, epoch: int = 0) -> dict[str, float]:
    metrics = json.loads((root / f"rank{rank}_epoch{epoch}.json").read_text())
    return {k: v for k, v in metrics.items() if k.startswith("info/") and k != "info/seconds"}


def assert_same_records(single: dict, ddp: dict) -> None:
    assert ddp["samples"] == single["samples"]
    assert len(ddp["records"]) == len(single["records"]) > 0
    for a, b in zip(single["records"], ddp["records"], strict=True):
        assert (a["epoch"], a["estimator"], a["layer"]) == (b["epoch"], b["estimator"], b["layer"])
        for key in ("I_XT", "I_TY"):
            assert math.isfinite(a[key])
            assert b[key] == pytest.approx(a[key], abs=TOL, rel=0), (a, b)
    assert len(ddp["geometry"]) == len(single["geometry"]) > 0
    for a, b in zip(single["geometry"], ddp["geometry"], strict=True):
        assert (a["epoch"], a["layer"]) == (b["epoch"], b["layer"])
        for key in ("within_class_ratio", "effective_dim"):  # float64 sums in another order
            assert b[key] == pytest.approx(a[key], abs=TOL, rel=1e-7), (a, b)


def assert_ranks_log_the_single_process_values(single: Path, ddp: Path, epoch: int = 0) -> None:
    reference = rank_metrics(single, 0, epoch)
    assert any("/I_XT/" in k for k in reference) and any("/I_TY/" in k for k in reference)
    rank0, rank1 = rank_metrics(ddp, 0, epoch), rank_metrics(ddp, 1, epoch)
    assert rank0 == rank1  # every rank logs the same numbers, bit for bit
    assert rank0.keys() == reference.keys()
    for key, value in reference.items():
        assert rank0[key] == pytest.approx(value, abs=1e-6, rel=1e-6), key


# ---------------------------------------------------------------------- 1. DDP == 1 process


@pytest.mark.parametrize("max_samples", [1000, 120], ids=["all-samples", "seeded-subset"])
def test_ddp_validate_equals_a_single_process_run(tmp_path, max_samples):
    results = {}
    for ddp in (False, True):
        callback = InfoMetrics(layers=LAYERS, estimators=ESTIMATORS, max_samples=max_samples)
        results[ddp] = run(tmp_path, f"ddp={ddp}", ddp=ddp, callback=callback)
    single, ddp = info_json(results[False]), info_json(results[True])
    assert single["samples"] == min(max_samples, N_VAL)  # all 301, the odd one included
    assert_same_records(single, ddp)
    assert_ranks_log_the_single_process_values(results[False], results[True])


@pytest.mark.parametrize("max_samples", [1000, 80], ids=["all-samples", "seeded-subset"])
def test_ddp_with_a_user_sampler_equals_a_single_process_run(tmp_path, max_samples):
    # Lightning wraps a custom sampler in a DistributedSamplerWrapper: global positions then
    # run over the sampler's 101 indices (position 101 is the padding), not over the 301
    # samples of the dataset; and `max_samples` counts measured samples, so 80 of 101.
    results = {}
    for ddp in (False, True):
        callback = InfoMetrics(layers=LAYERS, estimators=ESTIMATORS, max_samples=max_samples)
        results[ddp] = run(
            tmp_path, f"ddp={ddp}", ddp=ddp, sampler=EveryThirdSampler(N_VAL), callback=callback
        )
    single, ddp = info_json(results[False]), info_json(results[True])
    assert single["samples"] == min(max_samples, 101)
    assert_same_records(single, ddp)
    assert_ranks_log_the_single_process_values(results[False], results[True])


# ---------------------------------------------------------------------- 2. fit under DDP


def test_ddp_fit_two_epochs_writes_every_epoch_once(tmp_path):
    root = run(tmp_path, "fit", ddp=True, stage="fit", max_epochs=2)
    with open(root / "logs" / "version_0" / "info_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    keys = [(int(r["epoch"]), r["estimator"], r["layer"]) for r in rows]
    expected = [(e, est["name"], layer) for e in (0, 1) for est in ESTIMATORS for layer in LAYERS]
    assert sorted(keys) == sorted(expected)  # every epoch's records, each exactly once
    assert all(math.isfinite(float(r[q])) for r in rows for q in ("I_XT", "I_TY"))
    for epoch in (0, 1):
        rank0, rank1 = rank_metrics(root, 0, epoch), rank_metrics(root, 1, epoch)
        # I_XT, I_TY per (estimator, layer); 3 counts per estimator; 2 geometry per layer
        expected = 2 * len(ESTIMATORS) * len(LAYERS) + 3 * len(ESTIMATORS) + 2 * len(LAYERS)
        assert rank0 == rank1 and len(rank0) == expected
    # the CSVLogger's figures, drawn on rank 0 (adapters are built there only)
    pngs = sorted(p.name for p in (root / "logs" / "version_0" / "info_plane").iterdir())
    assert pngs == sorted(f"{est['name']}_epoch_{e:04d}.png" for est in ESTIMATORS for e in (0, 1))


# ---------------------------------------------------------------------- 3. ranks without samples


def test_ddp_one_validation_sample_drops_the_padding_and_does_not_hang(tmp_path, capfd):
    # Rank 1's only sample is DistributedSampler's copy of sample 0: it must not be counted.
    # One sample is too few to estimate anything: like one process, no records, no metrics.
    with pytest.warns(UserWarning, match="only 1 samples captured"):
        single = run(tmp_path, "single", ddp=False, val_data=digits(1))
    capfd.readouterr()
    ddp = run(tmp_path, "ddp", ddp=True, val_data=digits(1))
    spawned_stderr = capfd.readouterr().err
    assert "only 1 samples captured" in spawned_stderr
    assert "only 2 samples captured" not in spawned_stderr
    assert info_json(single) is None and info_json(ddp) is None
    assert rank_metrics(single, 0) == rank_metrics(ddp, 0) == rank_metrics(ddp, 1) == {}


def _seed_keeping_only_even_indices(n: int, max_samples: int) -> int:
    """A subset seed whose kept indices all live on rank 0 (even global indices)."""
    for seed in range(10_000):
        gen = torch.Generator().manual_seed(seed)
        kept = torch.randperm(n, generator=gen)[:max_samples]
        if bool((kept % 2 == 0).all()):
            return seed
    raise AssertionError("no such seed")


def test_ddp_rank_that_captures_nothing_gives_the_single_process_result(tmp_path):
    # Rank 0 holds global indices 0, 2, ..., 16 (all kept ones), rank 1 holds 1, ..., 15 and
    # the padding copy of sample 0: it captures no row at all. Batches of 4 put every sample
    # in a batch of >= 4 rows in both runs except sample 16, alone in both (see module doc).
    n, max_samples = 17, 6
    seed = _seed_keeping_only_even_indices(n, max_samples)
    results = {}
    for ddp in (False, True):
        callback = InfoMetrics(
            layers=[*LAYERS, "probe"], estimators=ESTIMATORS[:2], max_samples=max_samples, seed=seed
        )
        results[ddp] = run(
            tmp_path, f"ddp={ddp}", ddp=ddp, val_data=digits(n), batch_size=4, callback=callback
        )
    single, ddp = info_json(results[False]), info_json(results[True])
    assert single["samples"] == max_samples
    # the module run twice is measured at each call, in forward order (the input first),
    # named alike on both ranks: rank 1 ran it 3 times (and captured no row), so both gather
    # a probe-call3, which holds no sample's rows and is skipped
    assert ddp["layers"] == ["probe-call1", *LAYERS, "probe-call2"]
    assert_same_records(single, ddp)
    assert_ranks_log_the_single_process_values(results[False], results[True])


def test_ddp_limit_val_batches_equals_one_process_on_the_same_samples(tmp_path):
    # 2 batches of 16 per rank cover global samples 0..63, as 4 batches of 16 in one process.
    single = run(tmp_path, "single", ddp=False, batch_size=16, limit_val_batches=4)
    ddp = run(tmp_path, "ddp", ddp=True, batch_size=16, limit_val_batches=2)
    assert info_json(single)["samples"] == 64
    assert_same_records(info_json(single), info_json(ddp))
    assert_ranks_log_the_single_process_values(single, ddp)


# ---------------------------------------------------------------------- 4. bf16 autocast


def test_bf16_mixed_fit_logs_finite_curves_from_float32_captures(tmp_path):
    callback = DtypeRecorder(layers=LAYERS, estimators=ESTIMATORS, max_samples=1000)
    model = DigitsMLP()
    outputs = []
    model.net[2].register_forward_hook(lambda m, i, o: outputs.append(o.dtype))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=2,
        logger=CSVLogger(tmp_path, name="logs", version=0),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    val = DataLoader(digits(N_VAL), batch_size=64)
    trainer.fit(model, DataLoader(digits(128, offset=1000), batch_size=32), val)
    assert torch.bfloat16 in outputs  # autocast really ran the layers in bf16
    assert {callback.seen_dtypes[f"layer:{name}"] for name in LAYERS} == {torch.float32}
    assert callback.seen_dtypes["x"] == torch.float32
    assert sorted({r["epoch"] for r in callback.history}) == [0, 1]
    assert len(callback.history) == 2 * len(ESTIMATORS) * len(LAYERS)
    assert all(math.isfinite(r[q]) for r in callback.history for q in ("I_XT", "I_TY"))
    logged = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("info/")}
    # I_XT, I_TY per layer; dpi_violations, flagged, saturated per estimator; geometry
    # (2 per layer); seconds
    expected = 2 * len(ESTIMATORS) * len(LAYERS) + 3 * len(ESTIMATORS) + 2 * len(LAYERS) + 1
    assert len(logged) == expected
    assert all(bool(torch.isfinite(v)) for v in logged.values())
