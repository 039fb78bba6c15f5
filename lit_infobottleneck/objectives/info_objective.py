"""The three-term information objective ``max I(X;Y) - l1 H(X|Z) - l2 H(Z|Y)``.

I(X;Y) is a property of the data and does not depend on the network; each trainable term
is replaced by an honest bound, so that the loss minimised is an upper bound on the negated
objective up to constants:

- prediction: cross-entropy ``CE = E[-log p(y|z)] = H(Y) - I(Z;Y) + E KL(p(y|z) || q(y|z))``
  is an upper bound on ``-I(Z;Y)`` up to the constant H(Y);
- ``H(X|Z) <= E[-log q(x|z)]`` for any decoder q (the reconstruction negative log-likelihood,
  Gaussian or Bernoulli, ``lit_infobottleneck.nets.Decoder``);
- ``H(Z|Y) <= sum_y p(y) 1/2 log det(2 pi e (Sigma_y + eps I))``: a Gaussian has the largest
  differential entropy for a given covariance, and adding ``eps I`` only increases it
  (``gaussian_class_conditional_entropy``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lit_infobottleneck._checks import check_choice, check_positive, check_weight
from lit_infobottleneck.nets import Decoder
from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy


def gaussian_class_conditional_entropy(
    z: torch.Tensor, y: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """Gaussian maximum-entropy bound on H(Z|Y) in nats (0-d float64).

    ``z`` ``(N, K)`` vectors, ``y`` ``(N,)`` integer class labels. Returns
    ``sum_y w_y 1/2 log det(2 pi e (Sigma_y + eps I))`` with ``Sigma_y`` the unbiased sample
    covariance (divisor ``n_y - 1``) of the rows of class y and ``w_y = n_y / sum n_y`` the
    class frequencies. Classes with fewer than 2 rows have no covariance: they are skipped
    and the weights of the others renormalised; if every class is skipped the result is 0
    (no information about H(Z|Y) in the batch). Computed in float64 with autocast off, and
    differentiable in ``z``. The value may be negative (a differential entropy); it is at
    least ``K/2 log(2 pi e eps)``.

    The bound holds for the population covariance; with the batch covariance it is an
    estimate of the bound, biased low when a class has few vectors (E log det of a sample
    covariance is below log det of the true one, and with ``n_y <= K`` the ``eps`` ridge
    fills the missing directions), so use batches with many vectors per class.
    """
    eps = check_positive(eps, "eps")
    if z.dim() != 2:
        raise ValueError(f"`z` must have shape (N, K), got {tuple(z.shape)}.")
    if y.dim() != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(
            f"`y` must have shape (N,) = ({z.shape[0]},) to match `z`, got {tuple(y.shape)}."
        )
    with torch.autocast(device_type=z.device.type, enabled=False):
        z64 = z.to(torch.float64)
        k = z64.shape[1]
        eye = torch.eye(k, dtype=torch.float64, device=z64.device)
        classes, counts = torch.unique(y, return_counts=True)
        entropies, weights = [], []
        for c, n_c in zip(classes.tolist(), counts.tolist(), strict=True):
            if n_c < 2:
                continue
            zc = z64[y == c]
            centred = zc - zc.mean(dim=0, keepdim=True)
            cov = centred.T @ centred / (n_c - 1) + eps * eye
            logdet = 2.0 * torch.linalg.cholesky(cov).diagonal().log().sum()
            entropies.append(0.5 * (k * math.log(2 * math.pi * math.e) + logdet))
            weights.append(float(n_c))
        if not entropies:
            return z64.sum() * 0.0
        w = torch.tensor(weights, dtype=torch.float64, device=z64.device)
        return (torch.stack(entropies) * (w / w.sum())).sum()


class InfoObjective(Objective):
    """``loss = ce + lambda1 * recon_nll + lambda2 * h_z_given_y`` (all nats per example).

    Minimises an upper bound on ``-(I(X;Y) - lambda1 H(X|Z) - lambda2 H(Z|Y))`` up to the
    constants H(Y) and I(X;Y):

    - ``ce``: cross-entropy averaged over the S samples of z, ``= H(Y) - I(Z;Y) + gap``;
    - ``recon_nll``: ``E[-log q(x|z)] >= H(X|Z)`` with the decoder q built by ``bind``
      (``nets.Decoder(latent_dim, prod(input_shape), decoder_hidden, likelihood)``),
      averaged over the S samples and the batch;
    - ``h_z_given_y``: ``sum_y p(y) 1/2 log det(2 pi e (Sigma_y + eps I)) >= H(Z|Y)``, the
      Gaussian maximum-entropy bound, over all S x B vectors of z; ``Sigma_y`` is the
      batch covariance of class y, ``p(y)`` the batch class frequencies; classes with
      fewer than 2 vectors in the batch are skipped and the weights renormalised (see
      ``gaussian_class_conditional_entropy``).

    Args:
        lambda1: weight of H(X|Z) (>= 0).
        lambda2: weight of H(Z|Y) (>= 0).
        likelihood: decoder likelihood, ``"gaussian"`` (N(x_hat, I), standardised inputs) or
            ``"bernoulli"`` (inputs in [0, 1]).
        decoder_hidden: hidden widths of the decoder MLP.
        eps: ridge added to each class covariance (units of z squared, > 0); it bounds the
            H(Z|Y) term below by ``K/2 log(2 pi e eps)``.
    """

    weights = ("lambda1", "lambda2")

    def __init__(
        self,
        lambda1: float = 1e-3,
        lambda2: float = 1e-3,
        likelihood: str = "gaussian",
        decoder_hidden: Sequence[int] = (256,),
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.lambda1 = check_weight(lambda1, "lambda1")
        self.lambda2 = check_weight(lambda2, "lambda2")
        self.likelihood = check_choice(likelihood, "likelihood", Decoder.LIKELIHOODS)
        self.decoder_hidden = tuple(decoder_hidden)
        self.eps = check_positive(eps, "eps")
        self.decoder: Decoder | None = None

    def bind(self, *, latent_dim: int, input_shape: Sequence[int] | None, num_classes: int) -> None:
        """Build the decoder q(x|z): ``latent_dim -> prod(input_shape)`` features."""
        if input_shape is None:
            raise ValueError(
                "InfoObjective needs `input_shape` (the shape of one input, e.g. [64] or "
                "[1, 28, 28]) to size its decoder q(x|z); pass `input_shape` to the classifier."
            )
        out_features = math.prod(int(s) for s in input_shape)
        self.decoder = Decoder(
            latent_dim, out_features, self.decoder_hidden, likelihood=self.likelihood
        )

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        if self.decoder is None:
            raise RuntimeError("InfoObjective has no decoder yet: call `bind(...)` first.")
        ce = cross_entropy(out.logits, out.y)
        z = out.rep.z  # (S, B, K)
        recon_nll = self.decoder.negative_log_likelihood(z, out.x).mean()
        s, _, k = z.shape
        h_z_given_y = gaussian_class_conditional_entropy(
            z.reshape(-1, k), out.y.repeat(s), self.eps
        )
        loss = ce + self.lambda1 * recon_nll + self.lambda2 * h_z_given_y
        return {"loss": loss, "ce": ce, "recon_nll": recon_nll, "h_z_given_y": h_z_given_y}
