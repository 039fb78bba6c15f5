"""Nonlinear information bottleneck (Kolchinsky, Tracey & Wolpert 2019).

"Nonlinear information bottleneck", Entropy 21(12):1181. The representation is
``T = f(X) + N(0, noise_var I)`` (``lit_infobottleneck.nets.NoisyBottleneck``, with a
learnable ``noise_var``). Over a batch of B distinct inputs, each its own value of X, the
distribution of T is a mixture of B Gaussians, and the pairwise-KL bound of Kolchinsky &
Tracey (2017) gives

    I(X;T) <= -1/B sum_i log 1/B sum_j exp(-||f(x_i) - f(x_j)||^2 / (2 noise_var)) <= log B,

computed by ``lit_infobottleneck.estimators.kde.kde_mutual_information`` (upper bound)
and differentiated in both ``f(x)`` and ``noise_var``.
"""

from __future__ import annotations

import torch

from lit_infobottleneck._checks import check_weight
from lit_infobottleneck.estimators.kde import kde_mutual_information
from lit_infobottleneck.nets import NoisyBottleneck
from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy


def _shared_noise_var(std: torch.Tensor | None) -> torch.Tensor:
    """The one noise variance (0-d tensor) of a ``(B, K)`` std shared by all units and rows."""
    msg = (
        "NonlinearIB needs one noise variance shared by every unit and example; use "
        "nets.NoisyBottleneck as the bottleneck"
    )
    if std is None:
        raise ValueError(f"{msg} (got a deterministic representation, `rep.std` is None).")
    # NoisyBottleneck expands a 0-d std (stride 0): no value check needed then.
    if any(st != 0 for st in std.stride()) and not bool((std == std.reshape(-1)[0]).all()):
        raise ValueError(f"{msg} (got a per-unit std, e.g. from GaussianBottleneck).")
    first = std.reshape(-1)[0]
    # Square in float32 at least: under autocast the bottleneck's std may be bf16/fp16.
    return first.to(torch.promote_types(first.dtype, torch.float32)) ** 2


class NonlinearIB(Objective):
    """``loss = ce + beta * I_up`` (or ``beta * I_up ** 2`` with ``squared=True``), nats.

    ``I_up`` (term ``i_xz_upper``, nats, in [0, log B]) is the KDE pairwise-KL upper bound on
    I(X;T) of the batch means ``rep.mean`` ``(B, K)`` under the bottleneck's Gaussian noise
    ``noise_var = rep.std[0, 0] ** 2`` (term ``noise_var``, units of z squared, not nats),
    each example its own value of X. Needs ``lit_infobottleneck.nets.NoisyBottleneck``
    (one learnable variance); a per-unit std (``GaussianBottleneck``) raises ``ValueError``.
    ``ce`` is computed on the noisy samples ``rep.z``.

    ``squared=True`` is the squared-IB Lagrangian (Kolchinsky, Tracey & Van Kuyk 2019,
    "Caveats for information bottleneck in deterministic scenarios"; Rodriguez Galvez et
    al. 2020, "The convex information bottleneck Lagrangian"): a convex function of I(X;T)
    lets different ``beta`` reach different points of the IB curve when Y is a
    deterministic function of X, where the plain Lagrangian cannot.

    Args:
        beta: weight of the compression term (>= 0).
        squared: penalise ``I_up ** 2`` instead of ``I_up``.
    """

    requires_stochastic = True
    compatible_bottlenecks = (NoisyBottleneck,)
    weights = ("beta",)

    def __init__(self, beta: float = 1e-2, squared: bool = False) -> None:
        super().__init__()
        self.beta = check_weight(beta, "beta")
        self.squared = bool(squared)

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        ce = cross_entropy(out.logits, out.y)
        noise_var = _shared_noise_var(out.rep.std)
        mean = out.rep.mean
        groups = torch.arange(mean.shape[0], device=mean.device)
        i_up = kde_mutual_information(
            mean, groups, noise_var=noise_var, bound="upper", discrete_groups=True
        )
        penalty = i_up**2 if self.squared else i_up
        loss = ce + self.beta * penalty
        return {"loss": loss, "ce": ce, "i_xz_upper": i_up, "noise_var": noise_var.detach()}
