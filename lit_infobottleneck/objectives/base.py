"""The objective interface: a module that turns one forward pass into named loss terms.

An objective receives a ``ModelOutput`` (inputs, labels, the bottleneck's
``lit_infobottleneck.nets.Representation`` and the logits) and returns a dict of 0-d
tensors that always contains ``"loss"`` (the quantity minimised) and every term of it under
its own name, so that each is logged. Terms are in nats per example unless the objective's
docstring says otherwise (a noise variance, a unitless HSIC score).

Objectives that own parameters (a decoder, a backward encoder) create them in
``Objective.bind``, which the classifier calls once with the sizes it knows.
Weights that a ``lit_infobottleneck.callbacks.BetaSchedule`` may change over training
(``beta``, ``lambda1``, ...) are plain float attributes listed in ``weights``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lit_infobottleneck.nets import Representation


@dataclass
class ModelOutput:
    """One forward pass of a classifier.

    ``x``: ``(B, ...)`` inputs; ``y``: ``(B,)`` int64 labels; ``rep``: the bottleneck output
    (``z`` ``(S, B, K)``); ``logits``: ``(S, B, C)``, one row of logits per sample of z.
    """

    x: torch.Tensor
    y: torch.Tensor
    rep: Representation
    logits: torch.Tensor


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of ``(S, B, C)`` logits against ``(B,)`` labels, over S and B.

    Averaging the per-sample log-likelihood over the S samples of z is the Monte-Carlo
    estimate of E_q(z|x)[-log p(y|z)] used by VIB (Alemi et al. 2017).
    """
    if logits.dim() != 3:
        raise ValueError(f"`logits` must have shape (S, B, C), got {tuple(logits.shape)}.")
    s, b, c = logits.shape
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return nn.functional.cross_entropy(logits.reshape(s * b, c), y.repeat(s))


class Objective(nn.Module):
    """Base class: subclasses implement ``forward`` returning ``{"loss": ..., ...}``."""

    #: True if the objective needs a stochastic bottleneck (``rep.std`` not ``None``).
    requires_stochastic: ClassVar[bool] = False
    #: Bottleneck classes the objective works with; empty means any (subject to the above).
    compatible_bottlenecks: ClassVar[tuple[type, ...]] = ()
    #: Names of the float weights a schedule may set, e.g. ``("beta",)``.
    weights: ClassVar[Sequence[str]] = ()

    def bind(self, *, latent_dim: int, input_shape: Sequence[int] | None, num_classes: int) -> None:
        """Create parameters that depend on the model's sizes (default: nothing)."""

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError
