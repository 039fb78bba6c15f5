"""Matrix-based Renyi alpha-entropy and mutual information from Gram matrices.

Method (Sanchez Giraldo, Rao & Principe 2015, "Measures of entropy from data using infinitely
divisible kernels"; applied to deep networks by Yu, Wickstrom, Jenssen & Principe 2019,
"Understanding convolutional neural networks with information theory: an initial
exploration"): for samples ``x`` ``(n, d)`` build the Gram matrix ``K`` of a kernel, normalise
it to unit trace, ``A = K / tr(K)``, and take

    S_alpha(A) = 1 / (1 - alpha) * log(sum_i lambda_i(A) ** alpha)        (nats)

with ``lambda_i`` the eigenvalues of ``A`` (``torch.linalg.eigvalsh``; rounding noise below
``n * eps * lambda_max``, including tiny negatives, is set to 0). The joint entropy of ``x``
and ``y`` uses the Hadamard product, ``S_alpha(A o B / tr(A o B))``, and

    I_alpha(X; Y) = S_alpha(A) + S_alpha(B) - S_alpha(A o B)                (nats).

Sanchez Giraldo et al. show ``S(A o B) >= max(S(A), S(B))``, so the MI is at most
``min(S(A), S(B))``; every entropy is at most ``log n``.

Kernels:

- continuous data: Gaussian ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, built from the
  chunked squared-Euclidean blocks of ``._pairwise``. With ``standardize=True`` (default)
  each column is centred and divided by its standard deviation first (constant columns are
  only centred), so the estimate is invariant to the scale of every column.
- discrete labels (integer/bool ``y``, or ``discrete_y=True``): the delta kernel
  ``K_ij = [y_i == y_j]``, i.e. the linear kernel of one-hot labels. Its normalised Gram has
  eigenvalues ``p(c)``, so ``S_alpha`` is then exactly the Renyi entropy of the empirical
  label distribution, ``1 / (1 - alpha) log sum_c p(c) ** alpha``.

Free parameters, logged by ``RenyiEstimator.params``:

- ``alpha`` (default 1.01; must be > 0 and != 1). ``alpha -> 1`` is the Shannon limit, where
  the formula is undefined; 1.01 approximates it (Yu et al. 2019).
- ``sigma``, the Gaussian kernel width, in units of the (standardised) data: a float, or a
  rule. ``"silverman"`` (default): ``sigma = s * (4 / (d + 2)) ** (1 / (d + 4)) *
  n ** (-1 / (d + 4))`` with ``n`` samples, ``d`` columns and ``s`` the root-mean variance of
  the non-constant columns, which is 1 on standardised data (Silverman's rule for a
  ``d``-dimensional Gaussian with per-dimension std ``s``). ``"median"``: the lower median of
  the Euclidean distances between distinct pairs of samples (on a seeded random subset of
  1,000 rows when ``n`` is larger; see ``._kernels.median_distance``).

What is measured is set by ``sigma``: for a deterministic network, I(X;T) of continuous T is
infinite, and here ``sigma -> 0`` drives every Gram matrix to the identity (all entropies
``log n``) while ``sigma -> inf`` drives them to rank one (all entropies 0). Compare numbers
only at the same ``alpha`` and ``sigma`` rule (Geiger 2021).

Cost: the Gram matrix is inherently ``n x n`` -- O(n^2) memory (three such matrices for the
MI) and O(n^3) time for the eigendecompositions; only its construction is chunked (no
``(n, n, d)`` tensor is built). Keep ``n`` to a few thousand samples. Everything is
differentiable (no detaching), though gradients of ``eigvalsh`` are unstable for repeated
eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lit_infobottleneck.estimators._kernels import (
    check_chunk_size,
    check_sigma,
    kernel_blocks,
    prepare_variable,
)
from lit_infobottleneck.estimators._pairwise import default_chunk_size
from lit_infobottleneck.estimators._validation import (
    as_tensor,
    check_bool,
    check_same_length,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register

#: Kernel-width rules accepted as ``sigma`` by this module.
SIGMA_RULES = ("silverman", "median")


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ValueError(f"`alpha` must be a finite number > 0 other than 1, got {alpha!r}.")
    if alpha == 1:
        raise ValueError(
            "`alpha` = 1 is the Shannon limit, where 1/(1-alpha) log sum lambda^alpha is "
            "undefined; pass alpha=1.01 (the default) to approximate it."
        )
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"`alpha` must be a finite number > 0 other than 1, got {alpha!r}.")


def _gram(
    data: torch.Tensor, *, discrete: bool, sigma: torch.Tensor | float | None, chunk_size: int
) -> torch.Tensor:
    n = data.shape[0]
    gram = torch.empty((n, n), dtype=torch.float64, device=data.device)
    for rows, block in kernel_blocks(data, discrete=discrete, sigma=sigma, chunk_size=chunk_size):
        gram[rows] = block
    return gram


def matrix_entropy(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """``S_alpha(K / tr K)`` in nats for a symmetric PSD Gram matrix ``K`` ``(n, n)``."""
    a = gram / torch.trace(gram)
    lam = torch.linalg.eigvalsh(a)
    tol = lam.shape[0] * torch.finfo(lam.dtype).eps * float(lam.max().detach().clamp(min=0.0))
    keep = lam > tol
    # Double `where` so that no gradient flows through the powers of discarded eigenvalues.
    powered = torch.where(keep, lam, torch.ones_like(lam)) ** alpha
    total = torch.where(keep, powered, torch.zeros_like(powered)).sum()
    return torch.log(total) / (1.0 - alpha)


def gram_matrix(
    x: torch.Tensor,
    *,
    discrete: bool = False,
    sigma: float | str = "silverman",
    standardize: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The (un-normalised) ``(n, n)`` Gram matrix used by this module, built in row blocks.

    Gaussian kernel of width ``sigma`` (a number or a rule in ``SIGMA_RULES``) on the
    (standardised) rows of ``x``, or the delta kernel of labels when ``discrete=True``.
    """
    check_sigma(sigma, SIGMA_RULES)
    check_chunk_size(chunk_size)
    data, width = prepare_variable(
        x, "x", discrete=discrete, sigma=sigma, standardize=standardize, chunk_size=chunk_size
    )
    chunk = chunk_size or default_chunk_size(data.shape[0])
    return _gram(data, discrete=discrete, sigma=width, chunk_size=chunk)


def renyi_entropy(
    x: torch.Tensor,
    *,
    discrete: bool = False,
    alpha: float = 1.01,
    sigma: float | str = "silverman",
    standardize: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Matrix-based Renyi alpha-entropy ``S_alpha(A)`` of ``x`` in nats; 0-d float64.

    ``discrete=True`` treats ``x`` as integer class labels (delta kernel); the result is then
    the Renyi entropy of the empirical label distribution.
    """
    _check_alpha(alpha)
    gram = gram_matrix(
        x, discrete=discrete, sigma=sigma, standardize=standardize, chunk_size=chunk_size
    )
    return matrix_entropy(gram, alpha)


def _pair_grams(
    x: object,
    y: object,
    *,
    discrete_x: bool,
    discrete_y: bool | None,
    sigma: float | str,
    standardize: bool,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_sigma(sigma, SIGMA_RULES)
    check_chunk_size(chunk_size)
    y_raw = as_tensor(y, "y")
    disc_y = resolve_discrete(y_raw, discrete_y)
    dx, sx = prepare_variable(
        x, "x", discrete=discrete_x, sigma=sigma, standardize=standardize, chunk_size=chunk_size
    )
    dy, sy = prepare_variable(
        y_raw, "y", discrete=disc_y, sigma=sigma, standardize=standardize, chunk_size=chunk_size
    )
    check_same_length(dx, dy, "x", "y")
    dy = dy.to(dx.device)
    chunk = chunk_size or default_chunk_size(dx.shape[0])
    kx = _gram(dx, discrete=discrete_x, sigma=sx, chunk_size=chunk)
    ky = _gram(dy, discrete=disc_y, sigma=sy, chunk_size=chunk)
    return kx, ky


def renyi_joint_entropy(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    discrete_x: bool = False,
    discrete_y: bool | None = None,
    alpha: float = 1.01,
    sigma: float | str = "silverman",
    standardize: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Joint matrix-based Renyi entropy ``S_alpha(A o B / tr(A o B))`` in nats; 0-d float64.

    ``sigma`` (a number or a rule) is applied to each continuous variable separately.
    ``discrete_y=None`` treats an integer/bool ``y`` as labels; ``x`` is continuous unless
    ``discrete_x=True``.
    """
    _check_alpha(alpha)
    kx, ky = _pair_grams(
        x,
        y,
        discrete_x=discrete_x,
        discrete_y=discrete_y,
        sigma=sigma,
        standardize=standardize,
        chunk_size=chunk_size,
    )
    return matrix_entropy(kx * ky, alpha)


def renyi_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    discrete_y: bool | None = None,
    discrete_x: bool = False,
    alpha: float = 1.01,
    sigma: float | str = "silverman",
    standardize: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Matrix-based Renyi MI ``S(A) + S(B) - S(A o B)`` in nats; 0-d float64.

    See the module docstring for the kernels and the ``sigma`` rules. ``discrete_y=None``
    treats an integer/bool ``y`` as class labels (delta kernel); ``x`` is continuous unless
    ``discrete_x=True``.
    """
    _check_alpha(alpha)
    kx, ky = _pair_grams(
        x,
        y,
        discrete_x=discrete_x,
        discrete_y=discrete_y,
        sigma=sigma,
        standardize=standardize,
        chunk_size=chunk_size,
    )
    return matrix_entropy(kx, alpha) + matrix_entropy(ky, alpha) - matrix_entropy(kx * ky, alpha)


@register
class RenyiEstimator(Estimator):
    """Matrix-based Renyi alpha-MI (nats) from trace-normalised Gram matrices.

    ``chunk_size`` (rows per block while building the Gram) changes memory, not the result.
    """

    name = "renyi"

    def __init__(
        self,
        alpha: float = 1.01,
        sigma: float | str = "silverman",
        standardize: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        _check_alpha(alpha)
        check_sigma(sigma, SIGMA_RULES)
        check_chunk_size(chunk_size)
        check_bool(standardize, "standardize")
        self.alpha = alpha
        self.sigma = sigma
        self.standardize = standardize
        self.chunk_size = chunk_size

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        return renyi_mutual_information(
            x,
            y,
            discrete_y=discrete_y,
            alpha=self.alpha,
            sigma=self.sigma,
            standardize=self.standardize,
            chunk_size=self.chunk_size,
        )

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "sigma": self.sigma,
            "standardize": self.standardize,
        }
