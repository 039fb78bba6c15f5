"""HSIC bottleneck as a regulariser on cross-entropy (Ma, Lewis & Kleijn 2020).

"The HSIC bottleneck: deep learning without back-propagation", AAAI 2020. The original
trains each layer to minimise ``nHSIC(X, Z) - beta nHSIC(Y, Z)`` with the normalised
Hilbert-Schmidt independence criterion as a proxy for mutual information; here that
difference is added to the cross-entropy of a classifier, through the differentiable
``lit_infobottleneck.estimators.hsic.normalized_hsic``.
"""

from __future__ import annotations

import torch

from lit_infobottleneck._checks import check_weight
from lit_infobottleneck.estimators._kernels import check_sigma
from lit_infobottleneck.estimators.hsic import SIGMA_RULES, normalized_hsic
from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy


class HSICBottleneck(Objective):
    """``loss = ce + beta * (nhsic_xz - lambda_y * nhsic_yz)``.

    ``nhsic_xz = nHSIC(X, Z)`` with Gaussian kernels on the flattened inputs ``x`` ``(B, d)``
    and on ``Z = rep.mean`` ``(B, K)`` (the deterministic representation or the mean of a
    stochastic one); ``nhsic_yz = nHSIC(Z, Y)`` with the delta kernel ``[y_i == y_j]`` on
    the labels. Both kernels on continuous data use the width ``sigma`` (a float in the
    units of the data, or ``"median"``: the median pairwise distance of each variable in the
    batch, differentiated through).

    Units: ``ce`` and ``loss`` are in nats per example, but nHSIC is a unitless kernel
    dependence measure in [0, 1], not mutual information: the "terms in nats" convention of
    ``lit_infobottleneck.objectives.base.Objective`` does not hold for ``nhsic_xz``
    and ``nhsic_yz``, and ``beta`` converts them to nats. Batches need at least 2 examples.

    Args:
        beta: weight of the HSIC regulariser (>= 0).
        lambda_y: weight of the label dependence nHSIC(Y, Z) inside it (>= 0).
        sigma: Gaussian kernel width for X and Z, a number > 0 or ``"median"``.
    """

    weights = ("beta", "lambda_y")

    def __init__(
        self, beta: float = 1e-2, lambda_y: float = 1.0, sigma: float | str = "median"
    ) -> None:
        super().__init__()
        self.beta = check_weight(beta, "beta")
        self.lambda_y = check_weight(lambda_y, "lambda_y")
        check_sigma(sigma, SIGMA_RULES)
        self.sigma = sigma if isinstance(sigma, str) else float(sigma)

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        ce = cross_entropy(out.logits, out.y)
        z = out.rep.mean
        x = out.x.reshape(out.x.shape[0], -1)
        nhsic_xz = normalized_hsic(x, z, sigma_x=self.sigma, sigma_y=self.sigma, discrete_y=False)
        nhsic_yz = normalized_hsic(z, out.y, sigma_x=self.sigma, discrete_y=True)
        loss = ce + self.beta * (nhsic_xz - self.lambda_y * nhsic_yz)
        return {"loss": loss, "ce": ce, "nhsic_xz": nhsic_xz, "nhsic_yz": nhsic_yz}
