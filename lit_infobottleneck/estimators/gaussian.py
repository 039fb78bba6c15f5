"""Log-det mutual information of the Gaussian fit: exact for jointly Gaussian data.

For continuous ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``:
``I = 1/2 (log det R_xx + log det R_yy - log det R)``, with ``R`` the sample correlation
matrix of ``[x, y]`` plus ``ridge * I``. Working on correlations makes the estimate invariant
to the scale of every column, and the ridge keeps rank-deficient covariances (more dimensions
than samples, constant or collinear columns) finite. For a constant column the ridge terms
cancel between joint and marginal, so it adds no information.

For discrete labels ``y``: ``I = H(x) - sum_c p(c) H(x | y=c)`` with Gaussian entropies
``1/2 log det(2 pi e Sigma)`` of the standardised activations (a maximum-entropy
approximation, not a bound on the true I(X;Y)).

Bias correction: the log-det of a sample covariance of m Gaussian samples in d dimensions is
biased low by ``b(d, m) = d log(2 / (m - 1)) + sum_{i=1..d} psi((m - i) / 2)`` (the Wishart
expectation; Ahmed & Gokhale 1989, Misra, Singh & Demchuk 2005). Uncorrected, the class
covariances of small classes look far too concentrated: 256 units, 200 samples per class and
labels independent of T read 400 nats instead of 0. Each log-det is corrected by its
``b(d, m)``, with d the number of non-constant columns, which makes the estimate unbiased for
Gaussian data. Labels with a class of at most d samples are refused (the class covariance is
singular; no log-det estimate exists); for continuous ``y`` with n <= dx + dy the correction
is undefined and the (ridge-dominated) plug-in value is returned.

Free parameter: ``ridge`` (default 1e-6, in units of each column's variance).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lit_infobottleneck.estimators._validation import (
    as_labels,
    as_samples,
    as_tensor,
    check_positive,
    check_same_length,
    resolve_discrete,
    standardize_columns,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register


def _covariance(z: torch.Tensor) -> torch.Tensor:
    """Sample covariance ``(d, d)`` of centred-or-not rows ``z`` ``(n, d)``; zeros if n = 1."""
    n = z.shape[0]
    zc = z - z.mean(dim=0)
    return zc.T @ zc / max(n - 1, 1)


def logdet_bias(d: int, m: int) -> float:
    """E[log det S] - log det Sigma for the sample covariance S of ``m`` Gaussian samples in
    ``d`` dimensions (nats; needs m > d): ``d log(2 / (m - 1)) + sum_i psi((m - i) / 2)``."""
    if d == 0:
        return 0.0
    if m <= d:
        raise ValueError(f"the log-det bias needs more samples than dimensions ({m} <= {d})")
    half = (m - torch.arange(1, d + 1, dtype=torch.float64)) / 2
    return d * math.log(2 / (m - 1)) + float(torch.special.digamma(half).sum())


def _varying_columns(z: torch.Tensor) -> int:
    """Number of columns of ``z`` that are not constant."""
    return int((z != z[:1]).any(dim=0).sum())


def _logdet(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return torch.linalg.slogdet(cov + ridge * eye)[1]


def gaussian_entropy(x: torch.Tensor, *, ridge: float = 1e-6) -> torch.Tensor:
    """Entropy (nats) of the Gaussian fit to ``x`` ``(n, d)``: 1/2 log det(2 pi e S)."""
    check_positive(ridge, "ridge", allow_zero=True)
    x = as_samples(x, "x", min_samples=2)
    d = x.shape[1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + _logdet(_covariance(x), ridge))


def gaussian_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    discrete_y: bool | None = None,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """I(X;Y) in nats of the Gaussian fit (see the module docstring); 0-d float64."""
    check_positive(ridge, "ridge", allow_zero=True)
    x = as_samples(x, "x", min_samples=2)
    y_raw = as_tensor(y, "y")
    if resolve_discrete(y_raw, discrete_y):
        labels = as_labels(y_raw, "y").to(x.device)
        check_same_length(x, labels, "x", "y")
        z = standardize_columns(x)
        d = _varying_columns(z)
        counts = torch.bincount(labels).to(torch.float64)
        smallest = int(counts[counts > 0].min())
        if smallest <= d:
            raise ValueError(
                f"`y` has a class with {smallest} samples but `x` varies in {d} dimensions: "
                "the Gaussian estimate needs more samples per class than dimensions; pass "
                "more samples, measure a narrower layer, or use another estimator."
            )
        h_x = _logdet(_covariance(z), ridge) - logdet_bias(d, x.shape[0])
        h_x_given_y = torch.zeros((), dtype=torch.float64, device=x.device)
        for c, count in enumerate(counts.tolist()):
            if count == 0:
                continue
            class_logdet = _logdet(_covariance(z[labels == c]), ridge)
            h_x_given_y = h_x_given_y + count / x.shape[0] * (
                class_logdet - logdet_bias(d, int(count))
            )
        return 0.5 * (h_x - h_x_given_y)
    y = as_samples(y_raw, "y", min_samples=2)
    check_same_length(x, y, "x", "y")
    z = standardize_columns(torch.cat([x, y.to(x.device)], dim=1))
    corr = _covariance(z)
    dx = x.shape[1]
    plug_in = 0.5 * (
        _logdet(corr[:dx, :dx], ridge) + _logdet(corr[dx:, dx:], ridge) - _logdet(corr, ridge)
    )
    n, d_x, d_y = z.shape[0], _varying_columns(z[:, :dx]), _varying_columns(z[:, dx:])
    if n <= d_x + d_y:
        return plug_in  # the correction is undefined (see the module docstring)
    bias = logdet_bias(d_x, n) + logdet_bias(d_y, n) - logdet_bias(d_x + d_y, n)
    return plug_in - 0.5 * bias


@register
class GaussianEstimator(Estimator):
    """Gaussian-fit (log-det) MI: exact for Gaussian data, a baseline otherwise."""

    name = "gaussian"

    def __init__(self, ridge: float = 1e-6) -> None:
        check_positive(ridge, "ridge", allow_zero=True)
        self.ridge = ridge

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        return gaussian_mutual_information(x, y, discrete_y=discrete_y, ridge=self.ridge)

    def params(self) -> dict[str, Any]:
        return {"ridge": self.ridge}
