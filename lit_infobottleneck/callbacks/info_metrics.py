"""InfoMetrics: per-layer information curves of any LightningModule, measured on validation.

For chosen layers T_l, on the validation epochs it measures, the callback captures the
layers' outputs for a seeded subset of at most ``max_samples`` validation examples,
estimates I(X;T_l) and I(T_l;Y) with one or more estimators, and logs

- ``info/<estimator>/I_XT/<layer>`` and ``info/<estimator>/I_TY/<layer>`` through
  ``pl_module.log`` (every logger; usable by EarlyStopping and ModelCheckpoint), in bits by
  default (nats with ``unit="nats"``; estimators that do not measure information, such as
  HSIC, in their own unit), with ``.../I_XT_low/...`` / ``..._high`` 95 % bounds when
  ``bootstrap > 0`` (half-sampling without replacement, see ``_intervals.py``);
- ``info/geometry/within_class_ratio/<layer>`` and ``info/geometry/effective_dim/<layer>``:
  the layer's class clustering and effective dimension on the same samples (unitless, see
  ``lit_infobottleneck.geometry``), to tell information from geometry (Goldfeld et al.
  2019);
- ``info/<estimator>/dpi_violations``: layers whose I(X;T) exceeds the previous layer's by
  more than ``dpi_tolerance`` (impossible for a Markov chain X -> T_1 -> T_2 -> ...);
- ``info/seconds``: time spent estimating;
- the information-plane figure of every estimator at every measured epoch, in every logger
  of the Trainer: TensorBoard images (and a custom-scalars layout: one chart per quantity,
  one line per layer), MLflow artifacts, W&B images, PNG files under the log dir for
  ``CSVLogger`` and any other logger (see ``_logger_figures.py``);
- the whole history as ``info_metrics.csv`` and ``info_metrics.json`` in the log dir, each
  record with its ``unit``; the geometry as ``info_geometry.csv`` and under ``"geometry"``
  in the JSON.

This file holds the Lightning hooks and the schedule; the jobs they call live in
``_capture.py`` (forward hooks), ``_sampling.py`` (the measured subset, DDP gather),
``_estimate.py`` (captures -> records, a pure function), ``_outputs.py`` (history files,
TensorBoard's restart marker) and ``_logger_figures.py`` (figures and history per logger).

On epochs that are not measured, ``trainer.callback_metrics`` keeps the last measured
values: let ModelCheckpoint/EarlyStopping monitor ``info/...`` only at a matching frequency.
A ``trainer.validate()`` run is always measured, recorded at the trainer's current epoch.

A measurement never costs the run: an estimate that raises (any exception type) is skipped
with a warning naming the estimator, the layer and the error, and rank 0 broadcasts its
results or failures so that every rank goes on; ``strict=True`` re-raises on every rank
instead.

The history is part of the callback's ``state_dict`` (plain Python), so a run resumed from a
checkpoint continues its curves without gaps or duplicates (in the new ``unit`` if it
changed). Under DDP, captures of all ranks are gathered, the DistributedSampler's padding is
dropped, the estimates are computed once on rank 0 and broadcast: the numbers equal a
single-process run on the same data. Every rank must reach the end of each measured
validation epoch: a rank whose validation dataloader is empty (allowed by
``allow_zero_length_dataloader_with_multiple_devices``) skips validation, and the gather on
the others fails at the process-group timeout. With ``strategy="ddp_spawn"`` the workers'
history does not come back to the main process (Lightning returns only weights and
metrics): ``callback.history`` stays empty there, and a ``trainer.validate()`` after
``fit`` on the same Trainer starts its files again at epoch 0; use ``strategy="ddp"``, or a
new Trainer (a new log version) for the validate run.

For a deterministic network, I(X;T) of continuous T is infinite: what is measured is set
by each estimator's parameter (bin count, noise variance, k, ...). See Geiger 2021, "On
information plane analyses of neural network classifiers -- a review".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_infobottleneck.callbacks import _sampling
from lit_infobottleneck.callbacks._batches import class_labels, default_batch_to_xy
from lit_infobottleneck.callbacks._capture import (
    CALL_SEPARATOR,
    ActivationCapture,
    OutputSelector,
    first_tensor,
    resolve_layers,
)
from lit_infobottleneck.callbacks._estimate import EstimateResult, estimate_layers, record_unit
from lit_infobottleneck.callbacks._figure_worker import FigureWorker
from lit_infobottleneck.callbacks._flags import flag_summary, last_records
from lit_infobottleneck.callbacks._history import copy_calibration, restore_history
from lit_infobottleneck.callbacks._intervals import METHOD as INTERVAL_METHOD
from lit_infobottleneck.callbacks._logger_figures import (
    FigureAdapter,
    all_in_background,
    figure_adapters,
    finish,
    log_figures,
    log_history,
)
from lit_infobottleneck.callbacks._options import UNITS, build_estimators, check_options
from lit_infobottleneck.callbacks._outputs import (
    GEOMETRY_FILE,
    HISTORY_FILES,
    mark_tensorboard_session_start,
    write_history,
)
from lit_infobottleneck.callbacks._reduction import FeatureReducer
from lit_infobottleneck.callbacks._scalars import log_scalars
from lit_infobottleneck.callbacks._tokens import attention_mask, resolve_token_reduction
from lit_infobottleneck.metrics import broadcastable

BatchToXY = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
DEFAULT_ESTIMATORS: tuple[dict[str, Any], ...] = (
    {"name": "binning", "bins": 30},
    {"name": "kde", "noise_var": 0.1},
)
INPUT_KEY = "<input>"  # the inputs X in reductions (no submodule has this name)

__all__ = ["InfoMetrics", "mark_tensorboard_session_start"]


class InfoMetrics(Callback):
    """Information curves I(X;T_l), I(T_l;Y) of chosen layers on validation epochs.

    Args:
        layers: ``"auto"`` (the output of every repeated block: ResNet blocks, transformer
            layers; in a model without such blocks every activation module; then pooled
            features and the head, see ``_auto_layers.py``; the names are logged once),
            ``"auto:stages"`` (every stage of blocks instead), ``"auto:activations"``, or a
            list of submodule names (``"encoder.layers.1"``), globs (``"encoder.*"``),
            module types and these rules. Layers are measured in the order the forward pass
            first runs them (the data-processing check compares consecutive layers). A
            module run k > 1 times per forward pass is measured at every call, as the
            layers ``"<name>-call1"`` ... ``"<name>-callk"`` (said once).
        estimators: registry names or dicts ``{"name": ..., **params, "label": optional}``;
            default binning (30 bins) and KDE (noise variance 0.1).
        max_samples: validation examples measured per epoch: a seeded subset of the samples
            the epoch sees (after ``limit_val_batches``), the same every epoch unless the
            validation loader shuffles (warned); also caps the memory of the captures.
        max_features: layers (and inputs) wider than this are reduced to this many
            columns as they are captured, with a fixed seeded map (``None``: never); the
            reduction is warned about once and listed under ``reductions`` in the JSON.
            Memory per layer is at most ``4 * max_samples * max_features`` bytes.
        token_reduction: how a token-sequence output ``(batch, tokens, features)`` becomes
            one vector per sample: ``"mean"`` over tokens (weighted by the batch's
            ``attention_mask`` when it is a mapping with that key), ``"cls"`` (the first
            token), ``"last"`` (the last real token: causal models), ``"flatten"``, or
            ``"auto"`` (``"mean"`` in a model with attention
            modules, else ``"flatten"``); logged once per layer and stated in the JSON
            (``token_reduction``). See ``_tokens.py``.
        feature_reduction: ``"sketch"`` (signed feature hashing: preserves distances, for
            KDE/KSG/Renyi/HSIC) or ``"subset"`` (a random subset of units, values unchanged,
            for binning with a fixed ``value_range``).
        every_n_epochs: measure every n-th epoch (``schedule="every"``).
        schedule: ``"every"`` or ``"log"`` (up to ``log_points`` epochs spaced
            logarithmically up to ``max_epochs``, fewer where rounding merges them: dense
            early, sparse late). ``trainer.validate()`` is always measured.
        log_points: how many epochs ``schedule="log"`` measures at most (>= 2).
        unit: ``"bits"`` (the information-plane convention) or ``"nats"``, for the
            information estimators; others (HSIC) report their own unit.
        device: where captures are kept and estimates computed (default CPU).
        batch_to_xy: function ``batch -> (x, y)``; default handles tuples and dicts.
        output_selector: function ``layer output -> tensor`` for layers returning tuples or
            objects; default takes the first tensor.
        dpi_tolerance: allowed increase of I(X;T) with depth, in ``unit``, before a layer is
            flagged.
        bootstrap: number of half-samples for 95 % bounds (0: none, else >= 2; 20 is a
            good default): random halves of the measured samples without replacement, whose
            spread equals the estimator's spread over independent validation sets of the
            measured size; bounds are the estimate +- 1.96 of it (see ``_intervals.py`` for
            the method and its measured coverage). Costs ``bootstrap`` half-size estimates.
        seed: seed of the sample subset and of the half-samples.
        geometry: also log each layer's within-class scatter ratio and effective dimension
            (``info/geometry/...``; O(n d min(n, d)) per layer, small beside the estimates).
            With two InfoMetrics in one Trainer, keep it on in one only: the names carry no
            estimator label, so the second would overwrite the first's.
        plot: draw each estimator's information-plane figure at every measured epoch into
            every logger (TensorBoard image, MLflow artifact, W&B image, PNG files under the
            log dir for CSVLogger and other loggers); False draws none.
        strict: re-raise the first failing estimate (on every rank together) instead of
            skipping it with a warning; for debugging an estimator.
    """

    def __init__(
        self,
        layers: str | Sequence[str | type] = "auto",
        estimators: Sequence[dict[str, Any] | str] = DEFAULT_ESTIMATORS,
        max_samples: int = 2000,
        max_features: int | None = 4096,
        feature_reduction: str = "sketch",
        token_reduction: str = "auto",
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
        geometry: bool = True,
        plot: bool = True,
        strict: bool = False,
    ) -> None:
        super().__init__()
        check_options(
            max_samples=max_samples,
            every_n_epochs=every_n_epochs,
            log_points=log_points,
            bootstrap=bootstrap,
            schedule=schedule,
            unit=unit,
            token_reduction=token_reduction,
            dpi_tolerance=dpi_tolerance,
            strict=strict,
            geometry=geometry,
        )
        try:
            self.reducer = FeatureReducer(max_features, feature_reduction, seed=seed)
        except ValueError as err:
            raise MisconfigurationException(f"InfoMetrics {err}.") from None
        self.layer_specs = layers
        self.token_reduction = token_reduction
        self.layer_rules: list[str] = []
        self.estimators = build_estimators(estimators)
        self.max_samples, self.every_n_epochs = max_samples, every_n_epochs
        self.schedule, self.log_points = schedule, log_points
        self.unit, self.device = unit, torch.device(device)
        self.batch_to_xy = batch_to_xy or default_batch_to_xy
        self.output_selector = output_selector or first_tensor
        self.dpi_tolerance, self.bootstrap, self.seed = float(dpi_tolerance), bootstrap, seed
        self.plot, self.strict, self.measure_geometry = plot, strict, geometry
        self.history: list[dict[str, Any]] = []
        self.geometry_history: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.calibration: dict[str, dict[str, dict[str, Any]]] = {}
        self._capture: ActivationCapture | None = None
        self._active = False
        self._figure_adapters: list[FigureAdapter[Any]] = []
        self._figure_worker = FigureWorker()
        self._announced: set[str] = set()
        self._told: set[str] = set()
        self._warned_flags: set[tuple[str, str, str]] = set()
        self._inputs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._indices: list[torch.Tensor] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def state_key(self) -> str:
        """Names this callback's state in checkpoints: its layers and estimators (not its
        ``unit``: a run resumed in another unit converts its history)."""
        return self._generate_state_key(**self._state_key_fields())

    def _state_key_fields(self) -> dict[str, str]:
        return {
            "layers": str(self.layer_specs),
            "estimators": str({k: v.params() for k, v in self.estimators.items()}),
        }

    def _legacy_state_keys(self) -> list[str]:
        """Keys of checkpoints written by version 0.1.0, whose key included the unit."""
        return [self._generate_state_key(**self._state_key_fields(), unit=unit) for unit in UNITS]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._figure_adapters = (
            figure_adapters(trainer, list(self.estimators), self.measure_geometry)
            if trainer.is_global_zero
            else []
        )
        self._announced = set()
        self._told = set()
        self._warned_flags = set()
        self._capture = None
        measuring = [
            cb
            for cb in getattr(trainer, "callbacks", [])  # set by Lightning at init
            if isinstance(cb, InfoMetrics) and cb.measure_geometry
        ]
        if self.measure_geometry and len(measuring) > 1 and measuring[0] is self:
            rank_zero_warn(
                f"{len(measuring)} InfoMetrics callbacks log info/geometry/... under the same "
                "names, so the last one's values overwrite the others'; pass geometry=False "
                "to all but one."
            )

    def _resolve(self, pl_module: pl.LightningModule) -> None:
        """Find the layers once the model is built (after ``configure_model``)."""
        if self._capture is None:
            layers, self.layer_rules = resolve_layers(pl_module, self.layer_specs)
            self._capture = ActivationCapture(
                layers,
                device=self.device,
                output_selector=self.output_selector,
                reducer=self.reducer,
                token_reduction=resolve_token_reduction(self.token_reduction, pl_module),
            )
            if self.layer_rules:
                names = ", ".join(name for name, _ in layers)
                self._tell_once(
                    "layers",
                    f"InfoMetrics measures {len(layers)} layers ({'; '.join(self.layer_rules)}"
                    f"): {names}.",
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
        try:
            self._figure_worker.close()  # every figure written before the loggers close
        finally:
            if stage in (TrainerFn.FITTING, TrainerFn.VALIDATING):
                finish(self._figure_adapters, self.history)  # rank 0 only: others have none

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._stop_capture()
        try:
            self._figure_worker.close()
        finally:
            finish(self._figure_adapters, self.history)

    def _stop_capture(self) -> None:
        """Remove the hooks and drop what an interrupted epoch captured."""
        if self._capture is not None:
            self._capture.detach()
            self._capture.clear()
        self._inputs, self._labels, self._indices = [], [], []
        self._active = False

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(r) for r in self.history],
            "geometry": [dict(r) for r in self.geometry_history],
            "meta": dict(self.meta),
            "calibration": copy_calibration(self.calibration),
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Find the state of a checkpoint written under a 0.1.0 state key (Lightning calls
        ``load_state_dict`` with ``checkpoint["callbacks"][self.state_key]`` next)."""
        states = checkpoint.get("callbacks") or {}
        if self.state_key in states:
            return
        for key in self._legacy_state_keys():
            if key in states:
                states[self.state_key] = states[key]
                rank_zero_info(
                    "InfoMetrics restores its history from a checkpoint of version 0.1.0 "
                    "(Lightning's warning about a missing callback names that older key)."
                )
                return

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the history (converted to ``unit`` if the checkpoint was written in the
        other one, see ``_history``) and the frozen calibration."""
        self.history, self.meta, saved_unit = restore_history(
            state_dict, self.estimators, self.unit
        )
        if saved_unit in UNITS and saved_unit != self.unit:
            rank_zero_info(
                f"InfoMetrics: the checkpoint's history is in {saved_unit}; converted to "
                f"{self.unit} (`unit`)."
            )
        self.calibration = copy_calibration(state_dict.get("calibration", {}))
        self.geometry_history = [dict(r) for r in state_dict.get("geometry", [])]

    # ------------------------------------------------------------------ schedule

    def measures_epoch(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether fit's validation at epoch ``epoch`` (0-based) is measured."""
        if self.schedule == "every" or not max_epochs or max_epochs < 1:
            return epoch % self.every_n_epochs == 0
        points = np.geomspace(1, max_epochs, num=self.log_points)
        return epoch in {round(p) - 1 for p in points}

    def _measures(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == TrainerFn.VALIDATING:
            return True  # a trainer.validate() run is always measured
        return self.measures_epoch(trainer.current_epoch, trainer.max_epochs)

    # ------------------------------------------------------------------ capture

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = False
        if self._capture is None or not self._measures(trainer):
            return
        self._active = True
        self._position = 0
        self._inputs, self._labels, self._indices = [], [], []
        self._world, self._rank = trainer.world_size, trainer.global_rank
        self._keep = self._sample_subset(trainer)
        self._capture.attach()

    def _sample_subset(self, trainer: pl.Trainer) -> torch.Tensor | None:
        """Boolean lookup over the global validation indices the epoch will see, or None
        for 'the first ``max_samples`` ids' (see ``_sampling.epoch_subset``)."""
        mask, notes = _sampling.epoch_subset(trainer, self.max_samples, self.seed)
        for topic, message, warn in notes:
            self._tell_once(topic, message, warn=warn)
        return mask

    def _tell_once(self, topic: str, message: str, warn: bool = False) -> None:
        if topic not in self._told:
            self._told.add(topic)
            (rank_zero_warn if warn else rank_zero_info)(message)

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
        if self._capture is None:
            return
        if not self._active or dataloader_idx != 0:
            self._capture.select(None, 0)
            return
        x, y = self._inputs_and_labels(batch)
        size = x.shape[0]
        indices, mask = _sampling.batch_selection(
            self._position, size, self._world, self._rank, self._keep, self.max_samples
        )
        self._position += size
        if not bool(mask.any()):
            self._capture.select(None, size)
            return
        self._capture.select(mask, size, attention_mask(batch, size))
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
        calls = self._agreed_calls(trainer)
        for name, count in calls.items():
            if count > 1:
                self._tell_once(
                    f"calls:{name}",
                    f"InfoMetrics: layer {name!r} ran {count} times per forward pass (a shared "
                    "module, or a validation_step that runs the model more than once); it is "
                    f"measured at each call, as {name}{CALL_SEPARATOR}1 ... "
                    f"{name}{CALL_SEPARATOR}{count}.",
                )
        layers = self._capture.take(calls)
        for message in self._capture.errors.values():
            rank_zero_warn(f"InfoMetrics skips a layer: {message}.")
        self._announce_reductions()
        self._announce_token_reductions()
        local = {
            "x": _sampling.concatenate(self._inputs, self.device),
            "y": _sampling.concatenate(self._labels, self.device, dtype=torch.long),
            "index": _sampling.concatenate(self._indices, self.device, dtype=torch.long),
        }
        self._inputs, self._labels, self._indices = [], [], []
        local.update({f"layer:{name}": rows for name, rows in layers.items()})
        data = _sampling.gather_captures(
            trainer.strategy, trainer.world_size, local, self.max_samples, self.device
        )
        count = data["x"].shape[0]
        names = [n for n in layers if data[f"layer:{n}"].shape[0] == count and count > 0]
        for name in layers:
            if name not in names and not self._capture.failed(name) and count > 0:
                rank_zero_warn(
                    f"InfoMetrics skips layer {name!r}: it gave "
                    f"{data[f'layer:{name}'].shape[0]} rows for {count} samples."
                )
        failure: BaseException | None = None
        result: EstimateResult | BaseException | None = None
        if trainer.is_global_zero:
            try:
                result = self._estimate(data, names, trainer.current_epoch, trainer.global_step)
            except Exception as err:  # strict, or a failure outside one estimate
                if self.strict:
                    failure, result = err, broadcastable(err)
                else:
                    message = f"estimation skipped at epoch {trainer.current_epoch}: "
                    result = EstimateResult(warnings=[message + f"{type(err).__name__}: {err}"])
        result = trainer.strategy.broadcast(result, src=0)
        if isinstance(result, BaseException):  # strict: every rank raises together
            raise failure if failure is not None else result
        if result is not None:
            self._record(trainer, pl_module, result)

    def _agreed_calls(self, trainer: pl.Trainer) -> dict[str, int]:
        """How often each layer ran per forward pass, the most over all ranks (a collective
        under DDP: every rank then names the per-call layers alike, see ``take``)."""
        assert self._capture is not None, "called at a measured epoch's end"
        calls = self._capture.calls
        if trainer.world_size == 1:
            return dict(calls)
        names = [name for name, _ in self._capture.layers]
        agreed = _sampling.max_over_ranks(trainer.strategy, [calls.get(n, 0) for n in names])
        return dict(zip(names, agreed, strict=True))

    def _estimate(
        self, data: dict[str, torch.Tensor], names: list[str], epoch: int, step: int
    ) -> EstimateResult:
        """Rank 0's estimation of the gathered captures (see ``estimate_layers``)."""
        return estimate_layers(
            data["x"],
            {name: data[f"layer:{name}"] for name in names},
            data["y"],
            self.estimators,
            unit=self.unit,
            bootstrap=self.bootstrap,
            seed=self.seed,
            dpi_tolerance=self.dpi_tolerance,
            epoch=epoch,
            step=step,
            strict=self.strict,
            calibration=self.calibration,
            explained=self._warned_flags,
            geometry=self.measure_geometry,
        )

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

    def _announce_token_reductions(self) -> None:
        """Say once per fit how each token-sequence layer became one vector per sample."""
        assert self._capture is not None, "called at a measured epoch's end"
        for name, how in self._capture.token_reductions.items():
            self._tell_once(
                f"tokens:{name}",
                f"InfoMetrics reduces the (batch, tokens, features) output of layer {name!r} "
                f"to one vector per sample: {how} (`token_reduction`).",
            )

    def _record(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, result: EstimateResult
    ) -> None:
        for message in result.warnings:
            rank_zero_warn(f"InfoMetrics: {message}.")
        self._freeze_calibration(result.calibration)
        for label, layer, flag, hint in result.hints:
            if (label, layer, flag) not in self._warned_flags:
                self._warned_flags.add((label, layer, flag))
                rank_zero_warn(f"InfoMetrics flags {flag} ({label}, layer {layer!r}): {hint}.")
        records = result.records
        if not records and not result.geometry:
            return
        if result.n < self.max_samples:
            self._tell_once(
                "samples",
                f"InfoMetrics measures all {result.n} validation samples it sees (fewer "
                f"than max_samples={self.max_samples}).",
            )
        epoch = (records or result.geometry)[0]["epoch"]
        self.history = [r for r in self.history if r["epoch"] != epoch] + records
        self.geometry_history = [
            r for r in self.geometry_history if r["epoch"] != epoch
        ] + result.geometry
        seconds_total = self.meta.get("seconds_total", 0.0) + result.seconds
        self.meta = {
            "seconds_total": seconds_total,
            "unit": self.unit,
            "units": {label: record_unit(est, self.unit) for label, est in self.estimators.items()},
            "h_x": result.h_x,
            "h_y": result.h_y,
            "samples": result.n,
            "estimators": {label: est.params() for label, est in self.estimators.items()},
            "reductions": {name: r.describe() for name, r in self.reducer.applied.items()},
            "estimator_names": {label: est.name for label, est in self.estimators.items()},
            "layers": list(dict.fromkeys(r["layer"] for r in records + result.geometry)),
            "layer_rules": list(self.layer_rules),
            "token_reduction": {
                "option": self.token_reduction,
                "layers": dict(self._capture.token_reductions) if self._capture else {},
            },
            "calibration": self.calibration,
        }
        if self.bootstrap:
            self.meta["interval"] = {
                "method": INTERVAL_METHOD,
                "resamples": self.bootstrap,
                "level": 0.95,
            }
        log_scalars(
            pl_module,
            result,
            list(self.estimators),
            self.calibration,
            dpi_tolerance=self.dpi_tolerance,
            unit=self.unit,
            epoch=epoch,
        )
        directory = self.log_dir(trainer)  # on every rank: trainer.log_dir is a collective
        self._write_outputs(directory, trainer, epoch)

    def _freeze_calibration(self, chosen: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Keep the parameters calibrated at this epoch for the rest of the run."""
        for label, layers in chosen.items():
            for layer, params in layers.items():
                if layer in self.calibration.get(label, {}):
                    continue
                self.calibration.setdefault(label, {})[layer] = dict(params)
                values = ", ".join(f"{k}={v!r}" for k, v in params.items())
                rank_zero_info(
                    f"InfoMetrics calibrated {label} on layer {layer!r}: {values} (frozen for "
                    "the rest of the run, stored in the checkpoint)."
                )

    def flag_summary(self) -> str:
        """One line on the flags of the last measured epoch ("" if none was measured)."""
        return flag_summary(self.history)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Say in one line when the last measured plane is all flags."""
        last, records = last_records(self.history)
        if records and all(r.get("flags") for r in records):
            rank_zero_warn(
                f"InfoMetrics: every estimate of the last measured epoch ({last}) is flagged: "
                "the plane shows the estimators' resolution, not the network; see the "
                f"warnings above for the fixes. {self.flag_summary()}"
            )

    # ------------------------------------------------------------------ outputs

    @staticmethod
    def log_dir(trainer: pl.Trainer) -> Path:
        """Where the CSV/JSON history goes: ``trainer.log_dir`` (the first logger's version
        directory; ``default_root_dir`` without a logger or when the first has no local
        folder, e.g. MLflow with a database store, as for Lightning's checkpoints)."""
        return Path(trainer.log_dir or trainer.default_root_dir)

    @rank_zero_only
    def _write_outputs(
        self, directory: Path, trainer: pl.Trainer | None = None, epoch: int | None = None
    ) -> None:
        """CSV/JSON history; with ``trainer`` and ``epoch`` (a measured epoch), also the
        history files and the figures in every logger (``_logger_figures.py``; the figures
        are drawn and written on the figure thread, ``_figure_worker.py``, and are all
        written by the end of the fit or validate run).

        A failure here (a full disk, a plotting error) is warned about, never raised, also
        with ``strict=True`` (only rank 0 writes, so raising would strand the other ranks):
        the history is safe in the callback's state and the next measured epoch rewrites it.
        """
        try:
            write_history(directory, self.history, self.meta, self.geometry_history)
            if trainer is not None and epoch is not None:
                files = [directory / name for name in (*HISTORY_FILES, GEOMETRY_FILE)]
                log_history(self._figure_adapters, files)
                job = functools.partial(
                    log_figures,
                    self._figure_adapters,
                    [dict(r) for r in self.history],  # a copy: the job runs later
                    dict(self.meta),
                    list(self.estimators),
                    epoch,
                    trainer.global_step,
                    plot=self.plot,
                )
                if all_in_background(self._figure_adapters):
                    self._figure_worker.submit(job)
                else:  # W&B (the adapters are fixed per fit: nothing was ever submitted)
                    job()
        except Exception as err:
            rank_zero_warn(f"InfoMetrics could not write its outputs: {type(err).__name__}: {err}.")
