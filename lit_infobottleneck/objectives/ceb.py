"""Conditional entropy bottleneck (Fischer 2020; Fischer & Alemi 2020).

Fischer, "The conditional entropy bottleneck", Entropy 22(9):999, 2020; Fischer & Alemi,
"CEB improves model robustness", Entropy 22(10):1081, 2020. CEB minimises
beta I(X;Z|Y) - I(Y;Z). With the forward encoder e(z|x) = N(mean(x), diag std(x)^2)
(``lit_infobottleneck.nets.GaussianBottleneck``) and a backward encoder
b(z|y) = N(mu_y, I) with one learnable mean per class,

    I(X;Z|Y) <= E_{x,y} E_e(z|x)[log e(z|x) - log b(z|y)]     (term ``residual_info``)
    -I(Y;Z) <= E_{x,y} E_e(z|x)[-log p(y|z)] - H(Y)           (term ``ce``)

both estimated with the S reparameterised samples ``rep.z``. ``loss = ce + beta *
residual_info`` is, up to the constant H(Y), an upper bound on the CEB objective. Nats per
example.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_infobottleneck._checks import check_int, check_weight
from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy
from lit_infobottleneck.objectives.vib import _gaussian_params


def residual_information(
    z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, backward_mean: torch.Tensor
) -> torch.Tensor:
    """Monte-Carlo ``E[log N(z; mean, diag std^2) - log N(z; backward_mean, I)]`` in nats.

    ``z`` ``(S, B, K)``: samples of the forward encoder; ``mean``, ``std``, ``backward_mean``
    ``(B, K)`` (``backward_mean`` is mu_y of each example's label). Summed over K, averaged
    over S and B; the ``-1/2 log 2 pi`` constants cancel. Its expectation over z is
    KL(N(mean, std^2) || N(backward_mean, I)) averaged over the batch.
    """
    log_forward = -0.5 * ((z - mean) / std).square() - std.log()
    log_backward = -0.5 * (z - backward_mean).square()
    return (log_forward - log_backward).sum(-1).mean()


class CEB(Objective):
    """``loss = ce + beta * residual_info`` (nats per example).

    ``residual_info``: the Monte-Carlo bound E[log e(z|x) - log b(z|y)] >= I(X;Z|Y) on the
    samples ``rep.z`` ``(S, B, K)``, with e(z|x) = N(``rep.mean``, diag ``rep.std``^2) and
    b(z|y) = N(``mu[y]``, I), computed in float32 (or float64) even under bf16 autocast.
    ``ce``: cross-entropy averaged over the S samples and the batch (the bound on -I(Y;Z) up
    to H(Y)). The class means ``mu`` ``(num_classes, K)`` are a parameter created by
    ``bind`` (the classifier calls it), initialised to zeros so that b(z|y) starts as
    VIB's prior N(0, I). Needs a stochastic bottleneck (``rep.std`` not ``None``).

    In eval mode a ``GaussianBottleneck`` with ``eval_num_samples=0`` returns z = mean, and
    ``residual_info`` is then the log-ratio at the mean, KL - sum_k (std_k^2 - 1) / 2 (up to
    K/2 nats above the bound); set ``eval_num_samples > 0`` to validate the bound itself.

    Args:
        beta: weight of the residual-information term (>= 0).
    """

    requires_stochastic = True
    weights = ("beta",)
    mu: nn.Parameter | None  # (num_classes, latent_dim), registered by bind()

    def __init__(self, beta: float = 1e-2) -> None:
        super().__init__()
        self.beta = check_weight(beta, "beta")
        self.register_parameter("mu", None)  # created by bind()

    def bind(self, *, latent_dim: int, input_shape: Sequence[int] | None, num_classes: int) -> None:
        """Create the class means ``mu`` ``(num_classes, latent_dim)`` (kept if already bound)."""
        latent_dim = check_int(latent_dim, "latent_dim", 1)
        num_classes = check_int(num_classes, "num_classes", 1)
        if self.mu is not None and tuple(self.mu.shape) == (num_classes, latent_dim):
            return
        self.mu = nn.Parameter(torch.zeros(num_classes, latent_dim))

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        if self.mu is None:
            raise RuntimeError(
                "CEB has no backward encoder yet: call `bind(latent_dim=..., input_shape=..., "
                "num_classes=...)` first (InfoBottleneckClassifier does it at construction)."
            )
        mean, std = _gaussian_params(out.rep, type(self).__name__)
        if mean.shape[-1] != self.mu.shape[1]:
            raise ValueError(
                f"CEB was bound with `latent_dim` {self.mu.shape[1]} but the representation "
                f"has {mean.shape[-1]} units."
            )
        z = out.rep.z.to(mean.dtype)
        residual = residual_information(z, mean, std, self.mu[out.y].to(mean.dtype))
        ce = cross_entropy(out.logits, out.y)
        loss = ce + self.beta * residual
        return {"loss": loss, "ce": ce, "residual_info": residual}
