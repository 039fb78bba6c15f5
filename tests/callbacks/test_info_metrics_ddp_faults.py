"""InfoMetrics under 2-process DDP (``ddp_spawn``, CPU, gloo) when ranks disagree.

Uneven last batches (and batch counts), a rank with no batch of the measured loader,
``limit_val_batches`` differing per rank: each must finish (no rank left waiting in a
collective) with the numbers of a single-process run on the samples the ranks actually saw,
and a rank that skips validation altogether must make the job fail, not hang.

Hangs are caught twice. Each DDP job has a process-group timeout (60 s where it must
succeed, 20 s where it must fail): a rank waiting longer in a collective raises. And each
job runs in a child interpreter in a session of its own, which the test kills (SIGKILL to
that process group: the child and its workers) after ``KILL_AFTER`` seconds, so that even a
hang the timeout misses fails the test instead of blocking CI. The timeout tests show that a
broken collective ends the job within the process-group timeout plus slack; the other tests
that every rank leaves InfoMetrics' epoch end (its collectives) and that no collective timed
out.

Single-process references run in the test process on the weights each DDP validation epoch
used (saved by rank 0), so a fit's training under DDP need not be reproduced. As in
``test_info_metrics_distributed``, equality is to 1e-9, so each sample is in a batch whose
rows come out bitwise the same in both runs (here 4, 8 or >= 12 rows; or alone in both).
Everything a spawned worker unpickles is defined at module level.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Subset

from lit_infobottleneck.callbacks import InfoMetrics
from tests.callbacks.test_info_metrics_distributed import (
    ESTIMATORS,
    LAYERS,
    TOL,
    DestroyProcessGroupAtExit,
    DigitsMLP,
    digits,
    fixed_weights,
    info_json,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Process-group timeout of the jobs that must succeed: generous (other jobs share the cores).
OK_TIMEOUT = 60.0
# Process-group timeout of the jobs that must fail: short, as that is how long they take.
FAULT_TIMEOUT = 20.0
# The outer guard: the test kills the whole job (child and workers) after this long.
KILL_AFTER = 240.0
# A failed job ends within its process-group timeout plus this (start-up of the child and of
# the two workers, Lightning's teardown), far less than KILL_AFTER.
SLACK = 100.0


# ---------------------------------------------------------------------- the guarded job


@dataclass
class Job:
    returncode: int | None  # None: it hung and the guard killed it
    seconds: float
    output: str

    def describe(self) -> str:
        return f"returncode={self.returncode} after {self.seconds:.0f} s; output:\n" + "\n".join(
            self.output.splitlines()[-40:]
        )


_CHILD = (
    "import sys; from tests.callbacks.test_info_metrics_ddp_faults import _child_main; "
    "_child_main(sys.argv[1])"
)


def run_in_session(argv: list[str], log: Path, kill_after: float) -> Job:
    """Run ``argv`` in a new session, output to ``log``; SIGKILL that session's process group
    (the command and whatever it started, nothing else) if it is not done after
    ``kill_after`` seconds."""
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        returncode: int | None = None
        try:
            returncode = proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            pass
        finally:  # hung, or the test itself interrupted: end the job's whole session
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return Job(returncode, time.monotonic() - start, log.read_text(errors="replace"))


def run_guarded(root: Path, scenario: str, kill_after: float = KILL_AFTER, **kwargs: Any) -> Job:
    """Run ``SCENARIOS[scenario](root=root, **kwargs)`` in a child interpreter, in a session
    of its own that is killed after ``kill_after`` seconds."""
    root.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"scenario": scenario, "root": str(root), **kwargs})
    return run_in_session([sys.executable, "-c", _CHILD, spec], root / "job.log", kill_after)


def _child_main(spec: str) -> None:
    kwargs = json.loads(spec)
    SCENARIOS[kwargs.pop("scenario")](**kwargs)


def assert_completed(job: Job) -> None:
    assert job.returncode is not None, "the DDP job hung: " + job.describe()
    assert job.returncode == 0, job.describe()


def assert_failed_within_timeout(job: Job, process_group_timeout: float) -> None:
    assert job.returncode is not None, "the DDP job hung past the guard: " + job.describe()
    assert job.returncode != 0, job.describe()
    assert job.seconds < process_group_timeout + SLACK, job.describe()


# ---------------------------------------------------------------------- in the DDP workers


class Recorder(Callback):
    """Rank 0 saves the weights each validation epoch uses; every rank writes its callback
    metrics and the sizes of its batches of loader 0 after each validation run."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.batches: list[int] = []

    def _name(self, trainer: L.Trainer, what: str) -> Path:
        fn = trainer.state.fn.value
        return self.directory / f"{what}_{fn}_epoch{trainer.current_epoch}"

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.batches = []
        if trainer.sanity_checking:
            return
        self._name(trainer, f"started_rank{trainer.global_rank}").touch()
        if trainer.global_rank == 0:
            torch.save(pl_module.state_dict(), self._name(trainer, "weights").with_suffix(".pt"))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if dataloader_idx == 0:
            self.batches.append(len(batch[0]))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        path = self._name(trainer, f"metrics_rank{trainer.global_rank}").with_suffix(".json")
        path.write_text(json.dumps({"metrics": metrics, "batches": self.batches}))


class MarkedInfoMetrics(InfoMetrics):
    """InfoMetrics that marks, per rank and validation run, that the rank left its epoch end
    (gather, estimate on rank 0, broadcast): it did not stay in an InfoMetrics collective."""

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.directory = directory

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        super().on_validation_epoch_end(trainer, pl_module)
        fn = trainer.state.fn.value
        name = f"left_epoch_end_rank{trainer.global_rank}_{fn}_epoch{trainer.current_epoch}"
        name += f"_{type(self).__name__}"
        (Path(self.directory) / name).touch()


class CappedInfoMetrics(MarkedInfoMetrics):
    """A second InfoMetrics in the same run (its own labels, state key and log dir)."""

    @staticmethod
    def log_dir(trainer: L.Trainer) -> Path:
        return InfoMetrics.log_dir(trainer) / "capped"


class ProbeMLP(DigitsMLP):
    """Two validation loaders: 0 is InfoMetrics' probe set (nothing logged from it), 1 the
    held-out set whose loss is logged with ``sync_dist``."""

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if dataloader_idx == 1:
            self.log("val_loss", loss, sync_dist=True)


class QuietMLP(DigitsMLP):
    """Logs its validation loss without ``sync_dist``: its own validation needs no
    collective, so a rank may validate alone."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))


class DigitsData(L.LightningDataModule):
    """Training digits (sharded by Lightning) and validation digits split without padding by
    ``UnrepeatedDistributedSampler``: rank 0 gets one sample more than rank 1 when the count
    is odd, so the ranks' last batches (and here their batch counts) differ."""

    def __init__(self, n_val: int, batch_size: int) -> None:
        super().__init__()
        self.n_val, self.batch_size = n_val, batch_size

    def train_dataloader(self):
        return DataLoader(digits(128, offset=1000), batch_size=32, shuffle=True)

    def val_dataloader(self):
        data = digits(self.n_val)
        sampler = UnrepeatedDistributedSampler(
            data,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            shuffle=False,
        )
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler)


def rank_digits(rank: int, n: int):
    """Rank ``rank``'s own validation digits (disjoint between ranks)."""
    return digits(n, offset=500 * rank)


class PerRankData(L.LightningDataModule):
    """Each rank builds its own validation loader(s) (``use_distributed_sampler=False``):
    loader 0 holds ``sizes[rank]`` digits of its own, loader 1 (if ``held_out``) the same
    ``held_out`` digits on every rank."""

    def __init__(
        self, sizes: list[int], held_out: int, batch_size: int, allow_zero_length: bool
    ) -> None:
        super().__init__()
        self.sizes, self.held_out, self.batch_size = sizes, held_out, batch_size
        self.allow_zero_length_dataloader_with_multiple_devices = allow_zero_length

    def val_dataloader(self):
        rank = self.trainer.global_rank
        probe = DataLoader(rank_digits(rank, self.sizes[rank]), batch_size=self.batch_size)
        if not self.held_out:
            return probe
        held_out = DataLoader(digits(self.held_out, offset=1500), batch_size=self.batch_size)
        return [probe, held_out]


class PerRankValLimit(Callback):
    """Sets ``trainer.limit_val_batches`` to ``limits[rank]`` on each rank."""

    def __init__(self, limits: list[int]) -> None:
        self.limits = limits

    def setup(self, trainer, pl_module, stage) -> None:
        trainer.limit_val_batches = self.limits[trainer.global_rank]


class ExtraAllGatherOnRankZero(Callback):
    """Deliberately broken: an all_gather on rank 0 only, at every validation epoch end.
    With ``stuck``, rank 1 meanwhile blocks outside any collective (like a rank whose data
    never comes) for longer than the guard's limit: only a timeout can end the job."""

    def __init__(self, stuck: bool) -> None:
        self.stuck = stuck

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            trainer.strategy.all_gather(torch.zeros(3))
        elif self.stuck:
            time.sleep(KILL_AFTER + 60)


def _info_metrics(root: str, **kwargs: Any) -> MarkedInfoMetrics:
    kwargs.setdefault("max_samples", 1000)
    return MarkedInfoMetrics(root, layers=LAYERS, estimators=ESTIMATORS, **kwargs)


def _ddp_trainer(
    root: str, callbacks: list[Callback], timeout: float, **trainer_kwargs: Any
) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        strategy=DDPStrategy(start_method="spawn", timeout=datetime.timedelta(seconds=timeout)),
        devices=2,
        logger=CSVLogger(root, name="logs", version=0),
        callbacks=[*callbacks, Recorder(root), DestroyProcessGroupAtExit()],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )


def _model(weights: str, cls: type[DigitsMLP] = DigitsMLP) -> DigitsMLP:
    model = cls()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model


def scenario_uneven(root: str, weights: str, timeout: float) -> None:
    """fit 2 epochs on unpadded uneven shards, then validate on padded shards."""
    trainer = _ddp_trainer(root, [_info_metrics(root)], timeout, max_epochs=2)
    model = _model(weights)
    trainer.fit(model, datamodule=DigitsData(n_val=97, batch_size=16))
    log_dir = Path(root) / "logs" / "version_0"
    shutil.copy(log_dir / "info_metrics.json", Path(root) / "fit_info_metrics.json")
    trainer.validate(model, DataLoader(digits(301), batch_size=32), verbose=False)


def scenario_per_rank(
    root: str,
    weights: str,
    timeout: float,
    sizes: list[int],
    held_out: int,
    capped: int | None = None,
    allow_zero_length: bool = True,
) -> None:
    """validate on per-rank loaders (no DistributedSampler)."""
    callbacks: list[Callback] = [_info_metrics(root)]
    if capped:
        capped_estimators = [{**e, "label": e["name"] + "_capped"} for e in ESTIMATORS]
        callbacks.append(
            # geometry off: the first callback logs info/geometry/..., which has no label
            CappedInfoMetrics(
                root,
                layers=LAYERS,
                estimators=capped_estimators,
                max_samples=capped,
                geometry=False,
            )
        )
    trainer = _ddp_trainer(root, callbacks, timeout, use_distributed_sampler=False)
    model = _model(weights, ProbeMLP if held_out else QuietMLP)
    trainer.validate(
        model, datamodule=PerRankData(sizes, held_out, 16, allow_zero_length), verbose=False
    )


def scenario_limits(root: str, weights: str, timeout: float, limits: list[int]) -> None:
    """validate on padded shards, each rank stopping after its own number of batches."""
    trainer = _ddp_trainer(root, [_info_metrics(root), PerRankValLimit(limits)], timeout)
    trainer.validate(_model(weights), DataLoader(digits(301), batch_size=16), verbose=False)


def scenario_broken(root: str, weights: str, timeout: float, stuck: bool) -> None:
    """validate with a callback whose collective only rank 0 calls."""
    callbacks = [ExtraAllGatherOnRankZero(stuck), _info_metrics(root)]
    trainer = _ddp_trainer(root, callbacks, timeout)
    trainer.validate(_model(weights), DataLoader(digits(64), batch_size=16), verbose=False)


SCENARIOS = {
    "uneven": scenario_uneven,
    "per_rank": scenario_per_rank,
    "limits": scenario_limits,
    "broken": scenario_broken,
}


# ---------------------------------------------------------------------- references, checks


@dataclass
class Reference:
    records: list[dict[str, Any]]
    samples: int
    metrics: dict[str, float]


def single_process(
    tmp_path: Path, name: str, weights: Path, data, batch_size: int, **kwargs: Any
) -> Reference:
    """validate in this process (1 device) with ``weights`` on ``data``."""
    kwargs.setdefault("max_samples", 1000)
    kwargs.setdefault("estimators", ESTIMATORS)
    callback = InfoMetrics(layers=LAYERS, **kwargs)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        default_root_dir=tmp_path / name,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    model = DigitsMLP()
    model.load_state_dict(torch.load(weights, weights_only=True))
    trainer.validate(model, DataLoader(data, batch_size=batch_size), verbose=False)
    metrics = {
        k: float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("info/") and k != "info/seconds"
    }
    return Reference(callback.history, callback.meta["samples"], metrics)


def _dump(root: Path, fn: str, epoch: int, rank: int) -> dict[str, Any]:
    return json.loads((root / f"metrics_rank{rank}_{fn}_epoch{epoch}.json").read_text())


def ddp_metrics(root: Path, fn: str, epoch: int, rank: int, prefix: str = "info/") -> dict:
    """Rank ``rank``'s logged ``info/*`` values after that validation run."""
    metrics = _dump(root, fn, epoch, rank)["metrics"]
    return {k: v for k, v in metrics.items() if k.startswith(prefix) and k != "info/seconds"}


def ddp_batches(root: Path, fn: str, epoch: int) -> tuple[list[int], list[int]]:
    """The sizes of the batches of loader 0 each rank ran."""
    return _dump(root, fn, epoch, 0)["batches"], _dump(root, fn, epoch, 1)["batches"]


def assert_equals_reference(
    ddp_records: list[dict[str, Any]],
    samples: int,
    ranks: tuple[dict[str, float], dict[str, float]],
    reference: Reference,
) -> None:
    """Same records (up to epoch/step) and every rank logs the reference's values."""
    assert samples == reference.samples
    key = ("estimator", "layer")
    assert len(ddp_records) == len(reference.records) == len(ESTIMATORS) * len(LAYERS)
    # The JSON lists records by estimator (stable: layers in order), the history as made.
    expected = sorted(reference.records, key=lambda r: r["estimator"])
    for a, b in zip(expected, ddp_records, strict=True):
        assert [a[k] for k in key] == [b[k] for k in key]
        for quantity in ("I_XT", "I_TY"):
            assert b[quantity] == pytest.approx(a[quantity], abs=TOL, rel=0), (a, b)
    rank0, rank1 = ranks
    assert rank0 == rank1  # every rank logs the same numbers
    assert rank0.keys() == reference.metrics.keys()
    for name, value in reference.metrics.items():
        assert rank0[name] == pytest.approx(value, abs=1e-6, rel=1e-6), name


def assert_every_rank_left_the_epoch_end(root: Path, expected_files: int) -> None:
    """Each rank left InfoMetrics' epoch end (its collectives) at every validation run, and
    the job (completed: see ``assert_completed``) logged no collective timing out."""
    left = sorted(p.name for p in root.glob("left_epoch_end_rank*"))
    assert len(left) == expected_files, left
    output = (root / "job.log").read_text(errors="replace")
    assert "timed out" not in output.lower(), output[-3000:]


# ---------------------------------------------------------------------- a) uneven last batches


@pytest.fixture(scope="module")
def uneven_run(tmp_path_factory) -> Path:
    """One DDP job for both tests below: fit 2 epochs, then validate, on one Trainer."""
    tmp = tmp_path_factory.mktemp("uneven")
    root = tmp / "ddp"
    job = run_guarded(root, "uneven", weights=str(fixed_weights(tmp)), timeout=OK_TIMEOUT)
    assert_completed(job)
    return root


def _validate_epoch(root: Path) -> int:
    """The epoch the spawned workers of ``trainer.validate`` ran at."""
    (started,) = root.glob("started_rank0_validate_epoch*")
    return int(started.name.removeprefix("started_rank0_validate_epoch"))


def test_uneven_last_batches_fit_and_validate_equal_a_single_process_run(uneven_run, tmp_path):
    # fit: 97 validation digits split without padding, batches of 16. Rank 0 has global
    # indices 0, 2, ..., 96 (49: batches 16, 16, 16, 1), rank 1 has 1, ..., 95 (48: 16, 16,
    # 16): different last batches and one batch more on rank 0. One process: 6 x 16 + 1, the
    # same sample 96 alone. validate: 301 digits padded by Lightning's DistributedSampler
    # (151 per rank, rank 1's last a copy of sample 0), batches of 32.
    root = uneven_run
    for epoch in (0, 1):
        assert ddp_batches(root, "fit", epoch) == ([16, 16, 16, 1], [16, 16, 16])
    fit = json.loads((root / "fit_info_metrics.json").read_text())
    assert sorted({r["epoch"] for r in fit["records"]}) == [0, 1]
    for epoch in (0, 1):
        reference = single_process(
            tmp_path, f"fit{epoch}", root / f"weights_fit_epoch{epoch}.pt", digits(97), 16
        )
        assert reference.samples == 97
        records = [r for r in fit["records"] if r["epoch"] == epoch]
        ranks = (ddp_metrics(root, "fit", epoch, 0), ddp_metrics(root, "fit", epoch, 1))
        assert_equals_reference(records, fit["samples"], ranks, reference)
    # Training under DDP moved the weights: the two epochs measured different networks.
    first, second = (torch.load(root / f"weights_fit_epoch{e}.pt") for e in (0, 1))
    assert not all(torch.equal(first[k], second[k]) for k in first)

    epoch = _validate_epoch(root)
    assert ddp_batches(root, "validate", epoch) == ([32] * 4 + [23], [32] * 4 + [23])
    validate = info_json(root)
    last = max(r["epoch"] for r in validate["records"])
    records = [r for r in validate["records"] if r["epoch"] == last]
    weights = root / f"weights_validate_epoch{epoch}.pt"
    reference = single_process(tmp_path, "validate", weights, digits(301), 32)
    assert reference.samples == 301  # the padding copy is not counted
    ranks = (ddp_metrics(root, "validate", epoch, 0), ddp_metrics(root, "validate", epoch, 1))
    assert_equals_reference(records, validate["samples"], ranks, reference)
    assert_every_rank_left_the_epoch_end(root, expected_files=2 * 3)


@pytest.mark.xfail(
    strict=True,
    reason="ddp_spawn returns only weights and callback_metrics to the main process: the "
    "validate workers start from the main process's empty InfoMetrics history and epoch 0, "
    "so info_metrics.json loses the fit's curves and labels the validate run epoch 0",
)
def test_validate_after_fit_on_one_ddp_spawn_trainer_keeps_the_history_like_one_process(
    uneven_run,
):
    # One process: fit's epochs 0 and 1, then validate recorded at the current epoch, 2.
    validate = info_json(uneven_run)
    assert sorted({r["epoch"] for r in validate["records"]}) == [0, 1, 2]


# ---------------------------------------------------------------------- b) a rank without batches


def test_rank_without_batches_of_the_measured_loader_gives_rank_zeros_result(tmp_path):
    # Per-rank loaders (use_distributed_sampler=False): loader 0, the one InfoMetrics
    # measures, has 60 digits of rank 0's own on rank 0 and none on rank 1; loader 1 (the
    # logged held-out set) keeps rank 1 in the validation loop. Without a DistributedSampler
    # InfoMetrics numbers rank r's position p as p * world + r and keeps the first
    # max_samples ids that exist. With max_samples=1000 that is all of rank 0's 60 (ids 0,
    # 2, ..., 118); with max_samples=40 rank 0's first 40 (ids 0, 2, ..., 78): the empty
    # rank leaves its share to rank 0.
    weights = fixed_weights(tmp_path)
    root = tmp_path / "ddp"
    job = run_guarded(
        root,
        "per_rank",
        weights=str(weights),
        timeout=OK_TIMEOUT,
        sizes=[60, 0],
        held_out=32,
        capped=40,
    )
    assert_completed(job)
    assert ddp_batches(root, "validate", 0) == ([16, 16, 16, 12], [])
    ranks = (ddp_metrics(root, "validate", 0, 0), ddp_metrics(root, "validate", 0, 1))
    used = root / "weights_validate_epoch0.pt"
    full = {r: {k: v for k, v in m.items() if "_capped/" not in k} for r, m in enumerate(ranks)}
    capped = {
        r: {k.replace("_capped/", "/"): v for k, v in m.items() if "_capped/" in k}
        for r, m in enumerate(ranks)
    }
    result = info_json(root)
    reference = single_process(tmp_path, "all", used, rank_digits(0, 60), 16)
    assert reference.samples == 60
    assert_equals_reference(result["records"], result["samples"], (full[0], full[1]), reference)
    result = json.loads((root / "logs" / "version_0" / "capped" / "info_metrics.json").read_text())
    reference = single_process(tmp_path, "first", used, rank_digits(0, 40), 16, geometry=False)
    assert reference.samples == 40
    for record in result["records"]:
        record["estimator"] = record["estimator"].removesuffix("_capped")
    assert_equals_reference(result["records"], result["samples"], (capped[0], capped[1]), reference)
    # The held-out loss (loader 1) is synchronised as usual.
    losses = [ddp_metrics(root, "validate", 0, rank, "val_loss") for rank in (0, 1)]
    assert list(losses[0]) == ["val_loss/dataloader_idx_1"] and losses[0] == losses[1]
    assert_every_rank_left_the_epoch_end(root, expected_files=2 * 2)


def test_rank_without_any_validation_batch_fails_fast_instead_of_hanging(tmp_path):
    # One per-rank loader, empty on rank 1. Lightning refuses that by default (rank 1 raises
    # "within local rank has zero length"); with allow_zero_length_dataloader_with_multiple_
    # devices=True, rank 1 skips the validation loop, so it runs no hook at all, while rank 0
    # validates. This module's own validation needs no collective (the run completes without
    # InfoMetrics), but InfoMetrics' gather on rank 0 can have no partner: no callback can
    # estimate here. What is required is that the job fails, with the error in a collective,
    # instead of hanging (the error in InfoMetrics' first collective at the epoch's end).
    weights = fixed_weights(tmp_path)
    root = tmp_path / "ddp"
    job = run_guarded(
        root, "per_rank", weights=str(weights), timeout=FAULT_TIMEOUT, sizes=[60, 0], held_out=0
    )
    assert_failed_within_timeout(job, FAULT_TIMEOUT)
    # the first of InfoMetrics' epoch-end collectives: the call counts' all_gather
    assert "in _agreed_calls" in job.output, job.describe()
    assert (root / "started_rank0_validate_epoch0").exists()
    assert not (root / "started_rank1_validate_epoch0").exists()


# ---------------------------------------------------------------------- c) per-rank limits


def test_limit_val_batches_differing_per_rank_equals_one_process_on_the_union(tmp_path):
    # 301 digits sharded (and padded) by DistributedSampler, batches of 16; rank 0 stops
    # after 3 batches (its positions 0..47: global indices 0, 2, ..., 94), rank 1 after 1
    # (positions 0..15: 1, 3, ..., 31). Seen: 0..31 and the even 32..94, 64 samples, in
    # index order as 4 batches of 16 in one process.
    weights = fixed_weights(tmp_path)
    root = tmp_path / "ddp"
    job = run_guarded(root, "limits", weights=str(weights), timeout=OK_TIMEOUT, limits=[3, 1])
    assert_completed(job)
    assert ddp_batches(root, "validate", 0) == ([16, 16, 16], [16])
    seen = sorted([*range(0, 96, 2), *range(1, 32, 2)])
    assert len(seen) == 64
    reference = single_process(
        tmp_path, "union", root / "weights_validate_epoch0.pt", Subset(digits(301), seen), 16
    )
    assert reference.samples == 64
    ranks = (ddp_metrics(root, "validate", 0, 0), ddp_metrics(root, "validate", 0, 1))
    result = info_json(root)
    assert_equals_reference(result["records"], result["samples"], ranks, reference)
    assert_every_rank_left_the_epoch_end(root, expected_files=2)


# ---------------------------------------------------------------------- d) timeouts


@pytest.mark.parametrize("stuck", [False, True], ids=["mismatched", "stuck"])
def test_a_broken_collective_fails_within_the_process_group_timeout(tmp_path, stuck):
    # Not InfoMetrics: a deliberately broken callback all_gathers on rank 0 only, before
    # InfoMetrics' gather. "mismatched": rank 1 goes on into InfoMetrics' gather, which gloo
    # pairs with rank 0's extra all_gather; the sizes differ and gloo aborts at once.
    # "stuck": rank 1 blocks outside any collective for longer than the guard's limit, so
    # only the process-group timeout can end rank 0's wait: the job fails after it, not never.
    weights = fixed_weights(tmp_path)
    job = run_guarded(
        tmp_path / "ddp", "broken", weights=str(weights), timeout=FAULT_TIMEOUT, stuck=stuck
    )
    assert_failed_within_timeout(job, FAULT_TIMEOUT)
    if stuck:
        assert job.seconds > FAULT_TIMEOUT
        assert f"Timed out waiting {FAULT_TIMEOUT * 1000:.0f}ms" in job.output, job.describe()


def _dead(pid: int) -> bool:
    """``pid`` is gone or a zombie (killed, waiting for whoever adopted it to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_guard_kills_a_hung_job_with_everything_it_started(tmp_path):
    # The outer guard itself, on a job that would never end: a child that starts a
    # grandchild (as ddp_spawn starts its workers) and sleeps. Both must die at the limit.
    program = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "print(p.pid, flush=True); time.sleep(600)"
    )
    job = run_in_session([sys.executable, "-c", program], tmp_path / "job.log", kill_after=3)
    assert job.returncode is None and 3 <= job.seconds < 30, job.describe()
    grandchild = int(job.output.split()[0])
    deadline = time.monotonic() + 10
    while not _dead(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _dead(grandchild)
