"""InfoMetrics: per-layer information curves of any LightningModule, measured on validation.

For chosen layers T_l, on the validation epochs it measures, the callback captures the
layers' outputs for a fixed, seeded subset of at most ``max_samples`` validation examples,
estimates I(X;T_l) and I(T_l;Y) with one or more estimators, and logs

- ``info/<estimator>/I_XT/<layer>`` and ``info/<estimator>/I_TY/<layer>`` through
  ``pl_module.log`` (every logger; usable by EarlyStopping and ModelCheckpoint), in bits by
  default (nats with ``unit="nats"``), with ``.../I_XT_low/...`` / ``..._high`` bootstrap
  bounds when ``bootstrap > 0``;
- ``info/<estimator>/dpi_violations``: layers whose I(X;T) exceeds the previous layer's by
  more than ``dpi_tolerance`` (impossible for a Markov chain X -> T_1 -> T_2 -> ...);
- ``info/seconds``: time spent estimating;
- with a TensorBoardLogger, a custom-scalars layout (one chart per quantity, one line per
  layer) and the information-plane figure ``info_plane/<estimator>`` at every measured epoch;
- the whole history as ``info_metrics.csv`` and ``info_metrics.json`` in the log dir.

On epochs that are not measured, ``trainer.callback_metrics`` keeps the last measured
values: let ModelCheckpoint/EarlyStopping monitor ``info/...`` only at a matching frequency.
A ``trainer.validate()`` run is measured too and recorded at the trainer's current epoch.

The history is part of the callback's ``state_dict`` (plain Python), so a run resumed from a
checkpoint continues its curves without gaps or duplicates. Under DDP, captures of all ranks
are gathered, the DistributedSampler's padding is dropped, the estimates are computed once
on rank 0 and broadcast: the numbers equal a single-process run on the same data. Every
rank must reach the end of each measured validation epoch: a rank whose validation
dataloader is empty (allowed by ``allow_zero_length_dataloader_with_multiple_devices``)
skips validation, and the gather on the others fails at the process-group timeout. With
``strategy="ddp_spawn"`` the workers' history does not come back to the main process
(Lightning returns only weights and metrics): ``callback.history`` stays empty there, and a
``trainer.validate()`` after ``fit`` on the same Trainer starts its files again at epoch 0;
use ``strategy="ddp"``, or a new Trainer (a new log version) for the validate run.

For a deterministic network, I(X;T) of continuous T is infinite: what is measured is set
by each estimator's parameter (bin count, noise variance, k, ...). See Geiger 2021, "On
information plane analyses of neural network classifiers -- a review".
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DistributedSampler

from lit_infobottleneck.callbacks._batches import class_labels, default_batch_to_xy
from lit_infobottleneck.callbacks._capture import (
    ActivationCapture,
    OutputSelector,
    first_tensor,
    resolve_layers,
)
from lit_infobottleneck.callbacks._reduction import FeatureReducer
from lit_infobottleneck.estimators import Estimator, get_estimator
from lit_infobottleneck.estimators.binning import plugin_entropy
from lit_infobottleneck.metrics import gather_rows

BatchToXY = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
DEFAULT_ESTIMATORS: tuple[dict[str, Any], ...] = (
    {"name": "binning", "bins": 30},
    {"name": "kde", "noise_var": 0.1},
)
UNITS = ("bits", "nats")
BOUND_KEYS = ("I_XT_low", "I_XT_high", "I_TY_low", "I_TY_high")
INPUT_KEY = "<input>"  # the inputs X in reductions (no submodule has this name)
SCHEDULES = ("every", "log")


def _build_estimators(specs: Sequence[dict[str, Any] | str]) -> dict[str, Estimator]:
    built: dict[str, Estimator] = {}
    for spec in specs:
        params = {"name": spec} if isinstance(spec, str) else dict(spec)
        if "name" not in params:
            raise MisconfigurationException(
                f"InfoMetrics estimator {spec!r} has no 'name'; e.g. {{'name': 'kde', "
                "'noise_var': 0.1}."
            )
        name = params.pop("name")
        label = params.pop("label", name)
        if label in built:
            raise MisconfigurationException(
                f"InfoMetrics has two estimators labelled {label!r}; give one a 'label' key."
            )
        try:
            built[label] = get_estimator(name, **params)
        except ValueError as err:
            raise MisconfigurationException(f"InfoMetrics estimator {spec!r}: {err}") from None
    return built


class InfoMetrics(Callback):
    """Information curves I(X;T_l), I(T_l;Y) of chosen layers on validation epochs.

    Args:
        layers: ``"auto"`` (every activation module), or a list of submodule names
            (``"encoder.layers.1"``), globs (``"encoder.*"``) or module types. Order the
            list by depth: the data-processing check compares consecutive layers.
        estimators: registry names or dicts ``{"name": ..., **params, "label": optional}``;
            default binning (30 bins) and KDE (noise variance 0.1).
        max_samples: validation examples measured per epoch (a seeded subset, the same every
            epoch); also caps the memory of the captures.
        max_features: layers (and inputs) wider than this are reduced to this many
            columns as they are captured, with a fixed seeded map (``None``: never); the
            reduction is warned about once and listed under ``reductions`` in the JSON.
            Memory per layer is at most ``4 * max_samples * max_features`` bytes.
        feature_reduction: ``"sketch"`` (signed feature hashing: preserves distances, for
            KDE/KSG/Renyi/HSIC) or ``"subset"`` (a random subset of units, values unchanged,
            for binning with a fixed ``value_range``).
        every_n_epochs: measure every n-th epoch (``schedule="every"``).
        schedule: ``"every"`` or ``"log"`` (up to ``log_points`` epochs spaced
            logarithmically up to ``max_epochs``, fewer where rounding merges them: dense
            early, sparse late).
        unit: ``"bits"`` (the information-plane convention) or ``"nats"``.
        device: where captures are kept and estimates computed (default CPU).
        batch_to_xy: function ``batch -> (x, y)``; default handles tuples and dicts.
        output_selector: function ``layer output -> tensor`` for layers returning tuples or
            objects; default takes the first tensor.
        dpi_tolerance: allowed increase of I(X;T) with depth, in ``unit``, before a layer is
            flagged.
        bootstrap: number of bootstrap resamples for 95 % bounds (0: none); percentile
            bounds shifted by the bootstrap bias (resampling duplicates inputs).
        seed: seed of the sample subset and of the bootstrap.
        plot: draw the information-plane figure into TensorBoard.
    """

    def __init__(
        self,
        layers: str | Sequence[str | type] = "auto",
        estimators: Sequence[dict[str, Any] | str] = DEFAULT_ESTIMATORS,
        max_samples: int = 2000,
        max_features: int | None = 4096,
        feature_reduction: str = "sketch",
        every_n_epochs: int = 1,
        schedule: str = "every",
        log_points: int = 30,
        unit: str = "bits",
        device: str = "cpu",
        batch_to_xy: BatchToXY | None = None,
        output_selector: OutputSelector | None = None,
        dpi_tolerance: float = 0.1,
        bootstrap: int = 0,
        seed: int = 0,
        plot: bool = True,
    ) -> None:
        super().__init__()
        for field, value, minimum in (
            ("max_samples", max_samples, 2),
            ("every_n_epochs", every_n_epochs, 1),
            ("log_points", log_points, 2),
            ("bootstrap", bootstrap, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise MisconfigurationException(
                    f"InfoMetrics `{field}` must be an integer >= {minimum}, got {value!r}."
                )
        if schedule not in SCHEDULES:
            raise MisconfigurationException(
                f"InfoMetrics `schedule` must be one of {SCHEDULES}, got {schedule!r}."
            )
        if unit not in UNITS:
            raise MisconfigurationException(
                f"InfoMetrics `unit` must be one of {UNITS}, got {unit!r}."
            )
        if not (isinstance(dpi_tolerance, (int, float)) and dpi_tolerance >= 0):
            raise MisconfigurationException(
                f"InfoMetrics `dpi_tolerance` must be a number >= 0, got {dpi_tolerance!r}."
            )
        try:
            self.reducer = FeatureReducer(max_features, feature_reduction, seed=seed)
        except ValueError as err:
            raise MisconfigurationException(f"InfoMetrics {err}.") from None
        self.layer_specs = layers
        self.estimators = _build_estimators(estimators)
        self.max_samples, self.every_n_epochs = max_samples, every_n_epochs
        self.schedule, self.log_points = schedule, log_points
        self.unit, self.device = unit, torch.device(device)
        self.batch_to_xy = batch_to_xy or default_batch_to_xy
        self.output_selector = output_selector or first_tensor
        self.dpi_tolerance, self.bootstrap, self.seed = float(dpi_tolerance), bootstrap, seed
        self.plot = plot
        self.history: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self._capture: ActivationCapture | None = None
        self._active = False
        self._layout_written = False
        self._announced: set[str] = set()
        self._told_sample_count = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            layers=str(self.layer_specs),
            estimators=str({k: v.params() for k, v in self.estimators.items()}),
            unit=self.unit,
        )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._layout_written = False
        self._announced: set[str] = set()
        self._told_sample_count = False
        self._capture = None

    def _resolve(self, pl_module: pl.LightningModule) -> None:
        """Find the layers once the model is built (after ``configure_model``)."""
        if self._capture is None:
            layers = resolve_layers(pl_module, self.layer_specs)
            self._capture = ActivationCapture(
                layers,
                device=self.device,
                output_selector=self.output_selector,
                reducer=self.reducer,
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resolve(pl_module)  # fail before the first epoch on an unknown layer name

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After a checkpoint restore: rewrite the CSV/JSON from the restored history at
        once, and mark the (re)start for TensorBoard, so neither shows what a run that died
        logged after its checkpoint."""
        if self.history:
            self._write_outputs(self.log_dir(trainer))
        mark_tensorboard_session_start(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resolve(pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._stop_capture()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._stop_capture()

    def _stop_capture(self) -> None:
        """Remove the hooks and drop what an interrupted epoch captured."""
        if self._capture is not None:
            self._capture.detach()
            self._capture.clear()
        self._inputs, self._labels, self._indices = [], [], []
        self._active = False

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(r) for r in self.history], "meta": dict(self.meta)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unit = state_dict.get("meta", {}).get("unit", self.unit)
        if unit != self.unit:
            raise MisconfigurationException(
                f"InfoMetrics: the checkpoint's history is in {unit} but `unit` is {self.unit!r};"
                f" resume with unit={unit!r}."
            )
        self.history = [dict(r) for r in state_dict.get("history", [])]
        self.meta = dict(state_dict.get("meta", {}))

    # ------------------------------------------------------------------ schedule

    def measures_epoch(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether epoch ``epoch`` (0-based) is measured."""
        if self.schedule == "every" or not max_epochs or max_epochs < 1:
            return epoch % self.every_n_epochs == 0
        points = np.geomspace(1, max_epochs, num=self.log_points)
        return epoch in {round(p) - 1 for p in points}

    # ------------------------------------------------------------------ capture

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = False
        if trainer.sanity_checking or self._capture is None:
            return
        if not self.measures_epoch(trainer.current_epoch, trainer.max_epochs):
            return
        self._active = True
        self._position = 0
        self._inputs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._indices: list[torch.Tensor] = []
        self._world, self._rank = trainer.world_size, trainer.global_rank
        self._keep = self._sample_subset(trainer)
        self._capture.attach()

    def _sample_subset(self, trainer: pl.Trainer) -> torch.Tensor | None:
        """Boolean lookup over global validation indices, or None for 'the first N'."""
        loaders = trainer.val_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        sampler = getattr(loader, "sampler", None)
        self._sharded = self._world > 1 and isinstance(sampler, DistributedSampler)
        if self._world > 1 and not self._sharded:
            # ranks with their own samplers (e.g. an IterableDataset that splits itself):
            # ids position * world + rank are unique but not dataset indices. Keep the
            # first max_samples ids that exist: ranks with fewer samples (or none) leave
            # their share to the others.
            return None
        # Global indices number the positions of the un-sharded sampler order, so n is the
        # sampler's length: a DistributedSamplerWrapper's `dataset` is the wrapped user
        # sampler, whose length (not the dataset's) marks where the padding starts.
        try:
            n = len(sampler.dataset if self._sharded else sampler)
        except (AttributeError, TypeError):
            try:
                n = len(loader.dataset)
            except (AttributeError, TypeError):
                return None
        gen = torch.Generator().manual_seed(self.seed)
        keep = torch.zeros(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=gen)[: self.max_samples]] = True
        return keep

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking and batch_idx == 0 and dataloader_idx == 0:
            self._inputs_and_labels(batch)  # a batch format error now, not after an epoch
        if not self._active or dataloader_idx != 0:
            if self._capture is not None:
                self._capture.select(None, 0)
            return
        x, y = self._inputs_and_labels(batch)
        size = x.shape[0]
        positions = torch.arange(self._position, self._position + size)
        self._position += size
        indices = positions * self._world + self._rank if self._world > 1 else positions
        if self._keep is None:  # each rank's first max_samples; _gather keeps the first ids
            mask = positions < self.max_samples
        else:
            mask = (indices < self._keep.shape[0]) & self._keep[
                indices.clamp(max=self._keep.shape[0] - 1)
            ]
        if not bool(mask.any()):
            self._capture.select(None, size)
            return
        self._capture.select(mask, size)
        inputs = x.detach()[mask.to(x.device)].reshape(int(mask.sum()), -1).float()
        self._inputs.append(self.reducer(INPUT_KEY, inputs).to(self.device))
        self._labels.append(y[mask.to(y.device)].to(self.device))
        self._indices.append(indices[mask].to(self.device))

    def _inputs_and_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_to_xy(batch)`` with labels as class indices, checked for one label per
        input (a MisconfigurationException saying what to pass otherwise)."""
        x, y = self.batch_to_xy(batch)
        y = class_labels(y.detach())
        if x.dim() == 0 or x.shape[0] != y.shape[0]:
            raise MisconfigurationException(
                f"InfoMetrics: the batch has inputs of shape {tuple(x.shape)} and "
                f"{y.shape[0]} labels; `batch_to_xy` must return (x, y) with one label per "
                "row of x."
            )
        return x, y

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._capture is not None:
            self._capture.select(None, 0)

    # ------------------------------------------------------------------ estimate and log

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active or self._capture is None:
            return
        self._active = False
        self._capture.detach()
        layers = self._capture.take()
        for message in self._capture.errors.values():
            rank_zero_warn(f"InfoMetrics skips a layer: {message}.")
        self._announce_reductions()
        local = {
            "x": _cat(self._inputs, self.device),
            "y": _cat(self._labels, self.device, dtype=torch.long),
            "index": _cat(self._indices, self.device, dtype=torch.long),
        }
        local.update({f"layer:{name}": rows for name, rows in layers.items()})
        data = self._gather(trainer, local)
        count = data["x"].shape[0]
        names = [n for n in layers if data[f"layer:{n}"].shape[0] == count and count > 0]
        for name in layers:
            if name not in names and name not in self._capture.errors and count > 0:
                rank_zero_warn(
                    f"InfoMetrics skips layer {name!r}: it gave "
                    f"{data[f'layer:{name}'].shape[0]} rows for {count} samples."
                )
        result = None
        if trainer.is_global_zero:
            try:
                result = self._estimate(data, names, trainer.current_epoch, trainer.global_step)
            except ValueError as err:  # bad labels, too few samples: skip, never strand ranks
                result = {"records": [], "warnings": [f"estimate skipped: {err}"]}
        result = trainer.strategy.broadcast(result, src=0)
        self._record(trainer, pl_module, result)

    def _announce_reductions(self) -> None:
        """Warn once per fit about each layer captured at reduced width."""
        for name, reduction in self.reducer.applied.items():
            if name not in self._announced:
                self._announced.add(name)
                what = "the inputs" if name == INPUT_KEY else f"layer {name!r}"
                how = (
                    "signed feature hashing, distances preserved in expectation"
                    if reduction.method == "sketch"
                    else "a fixed random subset of units"
                )
                rank_zero_warn(
                    f"InfoMetrics measures {what} through {reduction.kept} of its "
                    f"{reduction.features} features ({how}; `max_features` sets the width, "
                    "`feature_reduction` the method)."
                )

    def _gather(
        self, trainer: pl.Trainer, local: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """All ranks' captures in global index order, each example once."""
        if trainer.world_size == 1:
            gathered = local
        else:
            gathered = {
                key: torch.cat(gather_rows(value.to(trainer.strategy.root_device))).to(self.device)
                for key, value in local.items()
            }
        order = torch.argsort(gathered["index"])
        index = gathered["index"][order]
        unique = torch.ones_like(index, dtype=torch.bool)
        unique[1:] = index[1:] != index[:-1]
        keep = order[unique][: self.max_samples]
        count = gathered["index"].shape[0]
        return {
            key: value[keep] if value.shape[0] == count else value[:0]
            for key, value in gathered.items()
        }

    def _estimate(
        self, data: dict[str, torch.Tensor], names: list[str], epoch: int, step: int
    ) -> dict[str, Any]:
        start = time.perf_counter()
        x, y = data["x"], data["y"]
        scale = 1.0 / math.log(2) if self.unit == "bits" else 1.0
        records, warnings = [], []
        n = x.shape[0]
        if n < 4:
            return {"records": [], "warnings": [f"only {n} samples captured; need >= 4"]}
        h_x = math.log(n) * scale
        h_y = float(plugin_entropy(torch.unique(y, return_inverse=True)[1])) * scale
        if not bool(torch.isfinite(x).all()):
            warning = f"the measured inputs contain NaN/Inf at epoch {epoch}; no estimates"
            return {"records": [], "warnings": [warning]}
        usable = []
        for name in names:
            t = data[f"layer:{name}"]
            if not bool(torch.isfinite(t).all()):
                warnings.append(
                    f"layer {name!r} has NaN/Inf activations at epoch {epoch}; its estimates "
                    "are skipped"
                )
            elif t.shape[1] == 0 or bool((t == t[:1]).all()):
                warnings.append(
                    f"layer {name!r} is constant over the {n} measured samples at epoch "
                    f"{epoch} (a dead layer): its information is 0 and is logged as 0"
                )
                usable.append((name, t, True))
            else:
                usable.append((name, t, False))
        for label, estimator in self.estimators.items():
            unit_scale = scale if estimator.unit == "nats" else 1.0
            for name, t, constant in usable:
                record = {"epoch": epoch, "step": step, "estimator": label, "layer": name}
                if constant:  # a function of nothing: I(X;T) = I(T;Y) = 0 exactly
                    keys = ("I_XT", "I_TY") + (BOUND_KEYS if self.bootstrap else ())
                    records.append({**record, **dict.fromkeys(keys, 0.0)})
                    continue
                try:
                    i_xt, i_ty = estimator.layer_information(x, t, y)
                    record["I_XT"] = float(i_xt) * unit_scale
                    record["I_TY"] = float(i_ty) * unit_scale
                    if self.bootstrap:
                        record.update(self._bootstrap(estimator, x, t, y, unit_scale))
                except ValueError as err:  # the documented refusals: skip this one estimate
                    warnings.append(f"{label} on layer {name!r} skipped at epoch {epoch}: {err}")
                    continue
                records.append(record)
        seconds = time.perf_counter() - start
        return {
            "records": records,
            "warnings": warnings,
            "seconds": seconds,
            "h_x": h_x,
            "h_y": h_y,
            "n": n,
        }

    def _bootstrap(
        self, estimator: Estimator, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, scale: float
    ) -> dict[str, float]:
        gen = torch.Generator().manual_seed(self.seed)
        n = x.shape[0]
        ixt, ity = [], []
        for _ in range(self.bootstrap):
            idx = torch.randint(0, n, (n,), generator=gen).to(x.device)
            ixt.append(float(estimator.input_information(x[idx], t[idx])) * scale)
            ity.append(float(estimator.label_information(t[idx], y[idx])) * scale)
        i_xt, i_ty = estimator.layer_information(x, t, y)
        bounds = {}
        for key, estimate, samples in (("I_XT", i_xt, ixt), ("I_TY", i_ty, ity)):
            # Resampling with replacement duplicates inputs, which biases estimators that
            # treat X by identity (binning, KDE): shift the bootstrap distribution so that
            # its mean is the estimate (bias-corrected percentile bounds).
            shift = float(estimate) * scale - float(np.mean(samples))
            bounds[f"{key}_low"] = float(np.percentile(samples, 2.5)) + shift
            bounds[f"{key}_high"] = float(np.percentile(samples, 97.5)) + shift
        return bounds

    def _record(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, result: dict[str, Any]
    ) -> None:
        for message in result["warnings"]:
            rank_zero_warn(f"InfoMetrics: {message}.")
        records = result["records"]
        if not records:
            return
        if result["n"] < self.max_samples and not self._told_sample_count:
            self._told_sample_count = True
            rank_zero_info(
                f"InfoMetrics measures all {result['n']} validation samples it sees (fewer "
                f"than max_samples={self.max_samples})."
            )
        epoch = records[0]["epoch"]
        self.history = [r for r in self.history if r["epoch"] != epoch] + records
        seconds_total = self.meta.get("seconds_total", 0.0) + result["seconds"]
        self.meta = {
            "seconds_total": seconds_total,
            "unit": self.unit,
            "h_x": result["h_x"],
            "h_y": result["h_y"],
            "samples": result["n"],
            "estimators": {label: est.params() for label, est in self.estimators.items()},
            "reductions": {name: r.describe() for name, r in self.reducer.applied.items()},
            "estimator_names": {label: est.name for label, est in self.estimators.items()},
            "layers": list(dict.fromkeys(r["layer"] for r in records)),
        }
        for record in records:
            base = f"info/{record['estimator']}"
            for key in ("I_XT", "I_TY", *BOUND_KEYS):
                if key in record:
                    name = f"{base}/{key}/{record['layer']}"
                    pl_module.log(name, record[key], on_epoch=True, sync_dist=True)
        for label in self.estimators:
            violations = self._dpi_violations([r for r in records if r["estimator"] == label])
            count = float(len(violations))
            pl_module.log(f"info/{label}/dpi_violations", count, on_epoch=True, sync_dist=True)
            if violations:
                rank_zero_warn(
                    f"InfoMetrics ({label}, epoch {epoch}): I(X;T) grows with depth beyond "
                    f"{self.dpi_tolerance} {self.unit} at {', '.join(violations)}; a Markov "
                    "chain cannot gain information, so the estimator's parameter sets these "
                    "numbers (Geiger 2021)."
                )
        pl_module.log("info/seconds", result["seconds"], on_epoch=True, sync_dist=True)
        directory = self.log_dir(trainer)  # on every rank: trainer.log_dir is a collective
        self._write_outputs(directory, trainer, epoch)

    def _write_outputs(
        self, directory: Path, trainer: pl.Trainer | None = None, epoch: int | None = None
    ) -> None:
        """CSV/JSON history, and TensorBoard (layout, figures) when ``trainer`` is given."""
        try:
            self._write_files(directory)
            if trainer is not None and epoch is not None:
                self._write_tensorboard(trainer, epoch)
        except OSError as err:  # a full disk must not end the run (the history is in state)
            rank_zero_warn(f"InfoMetrics could not write its outputs: {err}.")

    def _dpi_violations(self, records: list[dict[str, Any]]) -> list[str]:
        flagged = []
        for previous, current in itertools.pairwise(records):
            if current["I_XT"] > previous["I_XT"] + self.dpi_tolerance:
                flagged.append(f"{current['layer']} (after {previous['layer']})")
        return flagged

    # ------------------------------------------------------------------ outputs

    @staticmethod
    def log_dir(trainer: pl.Trainer) -> Path:
        """Where the CSV/JSON history goes: ``trainer.log_dir`` (the first logger's version
        directory; ``default_root_dir`` without a logger, as for Lightning's checkpoints)."""
        return Path(trainer.log_dir or trainer.default_root_dir)

    @rank_zero_only
    def _write_files(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        records = sorted(self.history, key=lambda r: (r["epoch"], r["estimator"]))
        fields = list(dict.fromkeys(k for r in records for k in r))
        # Each file is written whole to a temporary name and renamed over the old one: a job
        # killed while writing leaves the previous complete file, never a truncated one.
        with _replace_atomically(directory / "info_metrics.csv") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
        with _replace_atomically(directory / "info_metrics.json") as f:
            json.dump({**self.meta, "records": records}, f, indent=1)

    @rank_zero_only
    def _write_tensorboard(self, trainer: pl.Trainer, epoch: int) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        writer = loggers[0].experiment
        if not self._layout_written:
            layout = {
                f"info/{label}": {
                    quantity: ["Multiline", [f"info/{label}/{quantity}(_low|_high)?/.*"]]
                    for quantity in ("I_XT", "I_TY")
                }
                for label in self.estimators
            }
            writer.add_custom_scalars(layout)
            self._layout_written = True
        if self.plot:
            from lit_infobottleneck.plotting import information_plane

            for label in self.estimators:
                figure = information_plane(
                    self.history,
                    label,
                    unit=self.unit,
                    h_x=self.meta.get("h_x"),
                    h_y=self.meta.get("h_y"),
                )
                writer.add_figure(f"info_plane/{label}", figure, global_step=epoch, close=True)
        writer.flush()


@rank_zero_only
def mark_tensorboard_session_start(trainer: pl.Trainer) -> None:
    """Write TensorBoard's session-start event at the current global step.

    TensorBoard reads the second and later ``SessionLog.START`` of a run as a restart and
    hides every earlier event at that step or later (what PyTorch's ``SummaryWriter(...,
    purge_step=)`` writes): the scalars and figures a killed run logged after the checkpoint
    it is resumed from. Lightning's loggers write no such marker, so without it TensorBoard
    shows those epochs twice.
    """
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if not loggers:
        return
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    writer = loggers[0].experiment
    event = Event(
        wall_time=time.time(),
        step=trainer.global_step,
        session_log=SessionLog(status=SessionLog.START),
    )
    writer._get_file_writer().add_event(event)
    writer.flush()


@contextlib.contextmanager
def _replace_atomically(path: Path) -> Iterator[TextIO]:
    """Open ``path.tmp`` for writing; on success, rename it to ``path`` (atomic on POSIX)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _cat(
    parts: list[torch.Tensor], device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    if parts:
        return torch.cat(parts).to(device)
    return torch.zeros(0, dtype=dtype or torch.float32, device=device)
