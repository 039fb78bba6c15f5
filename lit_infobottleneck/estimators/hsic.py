"""HSIC and normalised HSIC: kernel dependence measures, NOT mutual information in nats.

Method: the Hilbert-Schmidt independence criterion (Gretton, Bousquet, Smola & Schoelkopf
2005, "Measuring statistical dependence with Hilbert-Schmidt norms"), biased V-statistic

    HSIC(X, Y) = tr(K H L H) / (n - 1)^2,      H = I - 11'/n,

with ``K``, ``L`` the Gram matrices of ``x`` and ``y``, and the normalised HSIC of the HSIC
bottleneck (Ma, Lewis & Kleijn 2020, "The HSIC bottleneck: deep learning without
back-propagation")

    nHSIC(X, Y) = HSIC(X, Y) / sqrt(HSIC(X, X) HSIC(Y, Y)).

Units: HSIC is in squared kernel units (unitless for these kernels, which take values in
[0, 1]); nHSIC is unitless in [0, 1] (up to rounding: Cauchy-Schwarz for the inner product
of the centred Gram matrices): 0 for independence (in the large-sample limit), 1 for
``y = x``. Neither is in nats, and neither is on the scale of the other estimators; the
registered ``HSICEstimator`` returns nHSIC from ``mutual_information`` so that it can
sit in the same information-plane machinery, but its numbers are not mutual information.
If nHSIC's denominator is 0 (a constant variable: its centred Gram matrix vanishes), nHSIC
is reported as 0.

Kernels: Gaussian ``exp(-||x_i - x_j||^2 / (2 sigma^2))`` for continuous data, on the raw
columns (no standardisation); the delta kernel ``[y_i == y_j]`` for class labels (integer/bool
``y`` or ``discrete_y=True``; ``discrete_x=True`` likewise for ``x``). With delta kernels on
both sides, ``HSIC = n^2 / (n-1)^2 * sum_{a,b} (p(a,b) - p(a) p(b))^2`` for the empirical
pmfs.

Free parameter: the kernel width ``sigma`` of each continuous variable, a float (in the
units of the data) or the median heuristic ``"median"`` (default): the lower median of the
Euclidean distances between distinct pairs of samples, on a seeded random subset of
``lit_infobottleneck.estimators._kernels.MEDIAN_MAX_SAMPLES`` rows for larger ``n`` (see
``lit_infobottleneck.estimators._kernels.median_distance``). The median-rule width is a
function of the data and is differentiated through.

Memory: no ``n x n`` matrix is stored. With row sums ``k = K1`` and ``l = L1``,

    tr(K H L H) = sum_ij K_ij L_ij - (2/n) sum_i k_i l_i + (1'k)(1'l) / n^2,

accumulated over matching row blocks of ``K`` and ``L`` (the chunked squared-Euclidean walk
of ``._pairwise``, same ``chunk_size`` on both sides), so extra memory is O(n * chunk).
Time is O(n^2 d). Everything is differentiable with respect to ``x`` and ``y`` (no
detaching, no in-place updates), as the HSIC-bottleneck objective trains through it.
"""

from __future__ import annotations

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
SIGMA_RULES = ("median",)


def _centred_inner(s_kl: torch.Tensor, k1: torch.Tensor, l1: torch.Tensor, n: int) -> torch.Tensor:
    """``tr(K H L H)`` from ``sum K o L`` and the row sums ``K1``, ``L1``."""
    return s_kl - (2.0 / n) * (k1 * l1).sum() + k1.sum() * l1.sum() / n**2


def _hsic_terms(
    x: object,
    y: object,
    *,
    sigma_x: float | str,
    sigma_y: float | str,
    discrete_x: bool,
    discrete_y: bool | None,
    chunk_size: int | None,
    with_self_terms: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(HSIC(X,Y), HSIC(X,X), HSIC(Y,Y))`` in one lockstep walk (self terms if asked)."""
    check_sigma(sigma_x, SIGMA_RULES)
    check_sigma(sigma_y, SIGMA_RULES)
    check_chunk_size(chunk_size)
    y_raw = as_tensor(y, "y")
    disc_y = resolve_discrete(y_raw, discrete_y)
    dx, sx = prepare_variable(
        x,
        "x",
        discrete=discrete_x,
        sigma=sigma_x,
        standardize=False,
        chunk_size=chunk_size,
        min_samples=2,
    )
    dy, sy = prepare_variable(
        y_raw,
        "y",
        discrete=disc_y,
        sigma=sigma_y,
        standardize=False,
        chunk_size=chunk_size,
        min_samples=2,
    )
    check_same_length(dx, dy, "x", "y")
    dy = dy.to(dx.device)
    n = dx.shape[0]
    chunk = chunk_size or default_chunk_size(n)

    zero = torch.zeros((), dtype=torch.float64, device=dx.device)
    s_kl, s_kk, s_ll = zero, zero, zero
    k_rows: list[torch.Tensor] = []
    l_rows: list[torch.Tensor] = []
    blocks_x = kernel_blocks(dx, discrete=discrete_x, sigma=sx, chunk_size=chunk)
    blocks_y = kernel_blocks(dy, discrete=disc_y, sigma=sy, chunk_size=chunk)
    for (rows_x, kb), (rows_y, lb) in zip(blocks_x, blocks_y, strict=True):
        if rows_x != rows_y:  # pragma: no cover - guaranteed by kernel_blocks
            raise RuntimeError("row blocks of x and y are out of step")
        s_kl = s_kl + (kb * lb).sum()
        if with_self_terms:
            s_kk = s_kk + (kb * kb).sum()
            s_ll = s_ll + (lb * lb).sum()
        k_rows.append(kb.sum(dim=1))
        l_rows.append(lb.sum(dim=1))
    k1 = torch.cat(k_rows)
    l1 = torch.cat(l_rows)
    scale = 1.0 / (n - 1) ** 2
    h_xy = scale * _centred_inner(s_kl, k1, l1, n)
    if not with_self_terms:
        return h_xy, None, None
    h_xx = scale * _centred_inner(s_kk, k1, k1, n)
    h_yy = scale * _centred_inner(s_ll, l1, l1, n)
    return h_xy, h_xx, h_yy


def hsic(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma_x: float | str = "median",
    sigma_y: float | str = "median",
    discrete_x: bool = False,
    discrete_y: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Biased HSIC ``tr(K H L H) / (n-1)^2``; 0-d float64, unitless (not nats).

    Gaussian kernels of width ``sigma_x`` / ``sigma_y`` (a float or ``"median"``); the delta
    kernel for labels (``discrete_y=None`` treats an integer/bool ``y`` as labels; ``x`` is
    continuous unless ``discrete_x=True``). Differentiable in ``x`` and ``y``.
    """
    return _hsic_terms(
        x,
        y,
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        discrete_x=discrete_x,
        discrete_y=discrete_y,
        chunk_size=chunk_size,
        with_self_terms=False,
    )[0]


def normalized_hsic(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma_x: float | str = "median",
    sigma_y: float | str = "median",
    discrete_x: bool = False,
    discrete_y: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """nHSIC ``HSIC(X,Y) / sqrt(HSIC(X,X) HSIC(Y,Y))``; 0-d float64, unitless in [0, 1].

    Arguments as ``hsic``. Not nats. 0 if either variable is constant.
    """
    h_xy, h_xx, h_yy = _hsic_terms(
        x,
        y,
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        discrete_x=discrete_x,
        discrete_y=discrete_y,
        chunk_size=chunk_size,
        with_self_terms=True,
    )
    assert h_xx is not None and h_yy is not None
    denom_sq = h_xx * h_yy
    if not bool(denom_sq > 0):
        return h_xy * 0.0
    return h_xy / denom_sq.sqrt()


@register
class HSICEstimator(Estimator):
    """Normalised HSIC (default) or HSIC: a unitless kernel dependence measure, NOT nats.

    ``mutual_information`` returns nHSIC in [0, 1] (``normalized=True``) or the biased HSIC
    (``normalized=False``), with the same ``sigma`` (a float or ``"median"``) applied to each
    continuous side; labels get the delta kernel. ``chunk_size`` changes memory, not the
    result.
    """

    name = "hsic"

    def __init__(
        self,
        sigma: float | str = "median",
        normalized: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        check_sigma(sigma, SIGMA_RULES)
        check_chunk_size(chunk_size)
        check_bool(normalized, "normalized")
        self.sigma = sigma
        self.normalized = normalized
        self.unit = "nHSIC" if self.normalized else "HSIC"
        self.chunk_size = chunk_size

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        """nHSIC (or HSIC) between ``x`` and ``y``: unitless, NOT mutual information in nats."""
        fn = normalized_hsic if self.normalized else hsic
        return fn(
            x,
            y,
            sigma_x=self.sigma,
            sigma_y=self.sigma,
            discrete_y=discrete_y,
            chunk_size=self.chunk_size,
        )

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "normalized": self.normalized}
