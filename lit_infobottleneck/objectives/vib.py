"""Variational information bottleneck (Alemi, Fischer, Dillon & Murphy 2017).

"Deep variational information bottleneck", ICLR 2017. With a Gaussian encoder
q(z|x) = N(mean(x), diag std(x)^2) (``lit_infobottleneck.nets.GaussianBottleneck``) and
the prior r(z) = N(0, I), the two terms of the IB Lagrangian are replaced by variational bounds:

    I(X;Z) <= E_x KL(q(z|x) || r(z))                     (term ``kl``, closed form)
    -I(Z;Y) <= E_x E_q(z|x)[-log p(y|z)] - H(Y)          (term ``ce``, Monte Carlo over S)

so ``loss = ce + beta * kl`` is, up to the constant H(Y), an upper bound on
-I(Z;Y) + beta I(X;Z). All terms are in nats per example.
"""

from __future__ import annotations

import torch

from lit_infobottleneck._checks import check_weight
from lit_infobottleneck.nets import Representation
from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy


def _gaussian_params(rep: Representation, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean``, ``std`` ``(B, K)`` of q(z|x) in float32 or wider; ValueError if deterministic."""
    if rep.std is None:
        raise ValueError(
            f"{owner} needs a stochastic bottleneck such as nets.GaussianBottleneck "
            "(got a deterministic representation, `rep.std` is None)."
        )
    dtype = torch.promote_types(rep.mean.dtype, torch.float32)
    return rep.mean.to(dtype), rep.std.to(dtype)


def gaussian_kl_to_standard_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag std^2) || N(0, I)) in nats, summed over the last dim: ``(..., K) -> (...)``.

    Closed form: ``sum_k 1/2 (mean_k^2 + std_k^2 - 1) - log std_k``.
    """
    return (0.5 * (mean.square() + std.square() - 1.0) - std.log()).sum(-1)


class VIB(Objective):
    """``loss = ce + beta * kl`` (nats per example).

    ``kl``: KL(q(z|x) || N(0, I)) from ``rep.mean``, ``rep.std`` ``(B, K)``, summed over the K
    units and averaged over the batch, computed in float32 (or float64) even under bf16
    autocast; it is the variational upper bound on I(X;Z). ``ce``: cross-entropy averaged
    over the S samples ``rep.z`` ``(S, B, K)`` and the batch (the bound on -I(Z;Y) up to
    H(Y)). Needs a stochastic bottleneck (``rep.std`` not ``None``), else ``ValueError``.

    Args:
        beta: weight of the compression term (>= 0; Alemi et al. use 1e-3 on MNIST).
    """

    requires_stochastic = True
    weights = ("beta",)

    def __init__(self, beta: float = 1e-3) -> None:
        super().__init__()
        self.beta = check_weight(beta, "beta")

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        mean, std = _gaussian_params(out.rep, type(self).__name__)
        kl = gaussian_kl_to_standard_normal(mean, std).mean()
        ce = cross_entropy(out.logits, out.y)
        loss = ce + self.beta * kl
        return {"loss": loss, "ce": ce, "kl": kl}
