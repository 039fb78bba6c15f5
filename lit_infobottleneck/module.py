"""InfoBottleneckClassifier: encoder -> bottleneck -> head, trained with an information objective.

Every term the objective returns is logged as ``train/<term>``, ``val/<term>`` and
``test/<term>``, together with the accuracy (``train/acc``, ``val/acc``, ``test/acc``).
Representations are hookable by name for the InfoMetrics callback:

- ``encoder.layers.<i>`` (or any submodule of a custom encoder);
- ``representation``: the bottleneck variable z, batch first ``(B, S * K)`` (in eval mode
  S = 1 unless the bottleneck samples at test time);
- ``prediction``: the class probabilities averaged over the samples of z, ``(B, C)``.

Sub-modules and the objective can be built in Python or, through LightningCLI, from YAML
``class_path`` / ``init_args``; a checkpoint of a CLI-built model loads with
``InfoBottleneckClassifier.load_from_checkpoint(path)`` alone, while a model built in Python
needs its modules passed again (they are not pickled into the checkpoint).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lit_infobottleneck.objectives.base import ModelOutput, Objective
from lit_infobottleneck.objectives.cross_entropy import CrossEntropy

OptimizerCallable = Callable[[Iterable[Any]], torch.optim.Optimizer]
LRSchedulerCallable = Callable[[torch.optim.Optimizer], Any]

_PLAIN = (bool, int, float, str, type(None))


def _is_plain(value: Any) -> bool:
    """Plain Python data (safe for ``torch.load(weights_only=True)``)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _size(module: nn.Module, *names: str) -> int | None:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int):
            return value
    return None


class InfoBottleneckClassifier(LightningModule):
    """A classifier whose representation is shaped by an information objective.

    Args:
        encoder: maps inputs ``(B, ...)`` to features ``(B, F)`` (e.g. ``nets.MLPEncoder``).
        bottleneck: maps features to a ``nets.Representation`` (``GaussianBottleneck``,
            ``NoisyBottleneck``, ``DeterministicBottleneck``).
        head: maps z ``(..., K)`` to logits ``(..., C)`` (``nets.ClassifierHead``).
        objective: an ``objectives.Objective``; default ``CrossEntropy()``.
        num_classes: number of classes; default ``head.num_classes``.
        input_shape: shape of one input, e.g. ``[64]`` or ``[1, 28, 28]``; when given, the
            wiring is checked at construction with a dry forward pass, and objectives that
            reconstruct the input (``InfoObjective``) are sized from it.
        optimizer: a callable ``params -> Optimizer`` (LightningCLI: ``class_path``).
        lr_scheduler: an optional callable ``optimizer -> scheduler``; a
            ``ReduceLROnPlateau`` monitors ``val/loss``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        bottleneck: nn.Module,
        head: nn.Module,
        objective: Objective | None = None,
        num_classes: int | None = None,
        input_shape: Sequence[int] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():  # modules are dropped just below when built in Python
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters()
        not_plain = [k for k, v in self.hparams.items() if not _is_plain(v)]
        if not_plain:  # built in Python: keep only plain data (weights_only checkpoints)
            self.save_hyperparameters(ignore=not_plain)
        objective = CrossEntropy() if objective is None else objective
        num_classes = num_classes if num_classes is not None else _size(head, "num_classes")
        if num_classes is None:
            raise ValueError("`num_classes` is required when `head` has no `num_classes`.")
        _check_wiring(encoder, bottleneck, head, objective, num_classes)
        self.encoder, self.bottleneck, self.head = encoder, bottleneck, head
        self.representation = nn.Identity()
        self.prediction = nn.Identity()
        self.num_classes = num_classes
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        latent_dim = _size(bottleneck, "latent_dim", "out_features")
        if latent_dim is None:
            raise ValueError("`bottleneck` must state its `latent_dim` (see nets.py bottlenecks).")
        objective.bind(latent_dim=latent_dim, input_shape=self.input_shape, num_classes=num_classes)
        self.objective = objective
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.metrics = nn.ModuleDict(
            {
                stage: MulticlassAccuracy(num_classes, average="micro")  # plain accuracy
                for stage in ("train_acc", "val_acc", "test_acc")
            }
        )
        if self.input_shape is not None:
            self._dry_run(self.input_shape)

    def _dry_run(self, input_shape: tuple[int, ...]) -> None:
        """Run two zero inputs through the model; a size mismatch names ``input_shape``."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                self.forward_output(torch.zeros(2, *input_shape))
        except (RuntimeError, ValueError) as err:
            raise ValueError(
                f"`input_shape` {list(input_shape)} does not fit the model: {err}"
            ) from None
        finally:
            self.train(was_training)

    def forward_output(self, x: torch.Tensor, y: torch.Tensor | None = None) -> ModelOutput:
        """The full forward pass: representation (S samples) and logits ``(S, B, C)``."""
        rep = self.bottleneck(self.encoder(x))
        self.representation(rep.z.transpose(0, 1).reshape(x.shape[0], -1))
        logits = self.head(rep.z)
        self.prediction(logits.float().softmax(-1).mean(0))
        if y is None:
            y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return ModelOutput(x=x, y=y, rep=rep, logits=logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, C)``, averaged over the samples of z."""
        return self.forward_output(x).logits.float().softmax(-1).mean(0)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = _unpack(batch)
        out = self.forward_output(x, y)
        terms = self.objective(out)
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value.detach().float(),
                on_step=on_step,
                on_epoch=True,
                prog_bar=name == "loss",
                sync_dist=not on_step,
                batch_size=x.shape[0],
            )
        accuracy = cast(MulticlassAccuracy, self.metrics[f"{stage}_acc"])
        accuracy(out.logits.detach().float().softmax(-1).mean(0), y)
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return terms["loss"]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(B, C)`` averaged over the bottleneck's test-time samples."""
        if isinstance(batch, dict):
            x = batch["x"]
        else:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        scheduler = self.lr_scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
        }


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    if isinstance(batch, dict) and "x" in batch and "y" in batch:
        return batch["x"], batch["y"]
    raise ValueError(
        "InfoBottleneckClassifier expects batches (x, y) or {'x': ..., 'y': ...}; got "
        f"{type(batch).__name__}."
    )


def _check_wiring(
    encoder: nn.Module,
    bottleneck: nn.Module,
    head: nn.Module,
    objective: Objective,
    num_classes: int,
) -> None:
    """Fail at construction, naming the field, when the blocks do not fit together."""
    if not isinstance(objective, Objective):
        raise ValueError(
            f"`objective` must be an objectives.Objective, got {type(objective).__name__}."
        )
    enc_out = _size(encoder, "out_features")
    bn_in = _size(bottleneck, "in_features")
    if enc_out is not None and bn_in is not None and enc_out != bn_in:
        raise ValueError(
            f"`bottleneck.in_features` is {bn_in} but `encoder.out_features` is {enc_out}; "
            "make them equal."
        )
    latent = _size(bottleneck, "latent_dim", "out_features")
    head_in = _size(head, "in_features")
    if latent is not None and head_in is not None and latent != head_in:
        raise ValueError(
            f"`head.in_features` is {head_in} but `bottleneck.latent_dim` is {latent}; "
            "make them equal."
        )
    head_classes = _size(head, "num_classes")
    if head_classes is not None and head_classes != num_classes:
        raise ValueError(
            f"`num_classes` is {num_classes} but `head.num_classes` is {head_classes}."
        )
    compatible = objective.compatible_bottlenecks
    if compatible and not isinstance(bottleneck, compatible):
        names = " or ".join(c.__name__ for c in compatible)
        raise ValueError(
            f"`objective` {type(objective).__name__} needs a `bottleneck` of type {names}, "
            f"got {type(bottleneck).__name__}."
        )
    if objective.requires_stochastic and not getattr(bottleneck, "stochastic", False):
        raise ValueError(
            f"`objective` {type(objective).__name__} needs a stochastic `bottleneck` "
            "(GaussianBottleneck or NoisyBottleneck), got "
            f"{type(bottleneck).__name__}."
        )
