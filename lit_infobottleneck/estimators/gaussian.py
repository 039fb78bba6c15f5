"""Log-det mutual information of the Gaussian fit: exact for jointly Gaussian data.

For continuous ``x`` ``(n, dx)`` and ``y`` ``(n, dy)``:
``I = 1/2 (log det R_xx + log det R_yy - log det R)``, with ``R`` the sample correlation
matrix of ``[x, y]`` plus ``ridge * I``. Working on correlations makes the estimate invariant
to the scale of every column, and the ridge keeps rank-deficient covariances (more dimensions
than samples, constant or collinear columns) finite. For a constant column the ridge terms
cancel between joint and marginal, so it adds no information.

For discrete labels ``y``: ``I = H(x_S) - sum_c p(c) H(x_S | y=c)`` with Gaussian entropies
``1/2 log det(2 pi e Sigma)`` of the standardised activations, restricted to ``S``, the
columns of ``x`` that vary within every class. A column constant within a class (a ReLU
unit dead for that class) makes the class covariance singular, and through the ridge it
would add about ``1/2 p(c) |log ridge|`` nats; dropping it is a deterministic function of
``x``, so the estimate is of ``I(x_S; y) <= I(x; y)`` (data processing): never inflated,
possibly low when the dropped units carry the class (their atoms are not modelled). With
no such column ``S`` is every column; with ``S`` empty the estimate is 0. The Gaussian fit
is a maximum-entropy approximation, not a bound: for small classes it can exceed the label
entropy, so the result is ``min(fit, H(y))`` (the true value never exceeds ``H(y)``). It is
not clipped below: independent labels give values scattered around 0. Every class needs
at least 2 samples, and more samples than ``|S|``. Units that are almost constant (sparse
ReLU units firing on a few samples per class) are kept and fitted as Gaussians, which they
are not: there the estimate can be far too high (10 classes, a 20-unit ReLU layer with
97-100 % zeros per unit: 1.25 nats where I(X;Y), an upper bound, is 0.175); prefer ``ksg``
on such layers (0.045 nats there).

Bias correction: the log-det of a sample covariance of m Gaussian samples in d dimensions is
biased low by ``b(d, m) = d log(2 / (m - 1)) + sum_{i=1..d} psi((m - i) / 2)`` (the Wishart
expectation; Ahmed & Gokhale 1989, Misra, Singh & Demchuk 2005). The class covariances of
small classes are the most concentrated: uncorrected, 256 units, 200 samples per class and
labels independent of T give hundreds of nats for a true 0. Each log-det is corrected by its
``b(d, m)``, with d the number of non-constant columns, which makes the estimate unbiased for
Gaussian data. Labels with a class of at most d samples are refused: the class covariance
is singular and no log-det estimate exists. For continuous ``y`` with n <= dx + dy the
correction is undefined and the (ridge-dominated) plug-in value is returned.

Free parameter: ``ridge`` (> 0; default 1e-6, in units of each column's variance; for
``gaussian_entropy``, in the squared units of ``x``).
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


def _logdet(cov: torch.Tensor, ridge: float) -> torch.Tensor:
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return torch.linalg.slogdet(cov + ridge * eye)[1]


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


def _check_ridge(ridge: float) -> None:
    try:
        check_positive(ridge, "ridge")
    except ValueError as err:
        raise ValueError(
            f"{err} The ridge keeps singular covariances finite (log det 0 = -inf); pass a "
            "small positive ridge such as the default 1e-6."
        ) from None


def _plug_in_entropy(counts: torch.Tensor) -> torch.Tensor:
    """Entropy (nats, float64) of the distribution with the given positive counts."""
    p = counts.to(torch.float64) / counts.sum()
    return -(p * p.log()).sum()


def _label_information(x: torch.Tensor, labels: torch.Tensor, ridge: float) -> torch.Tensor:
    """``min(I_fit(x_S; y), H(y))`` with ``S`` the columns varying within every class (see
    the module docstring); ``labels`` are codes 0..C-1, every code present."""
    counts = torch.bincount(labels)
    smallest = int(counts.min())
    if smallest < 2:
        raise ValueError(
            "`y` has a class with 1 sample: the Gaussian estimate needs at least 2 samples "
            "per class (a class covariance); pass more samples or merge rare classes."
        )
    varying = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
    for c in range(counts.numel()):
        rows = x[labels == c]
        varying &= (rows != rows[:1]).any(dim=0)
    d = int(varying.sum())
    if d == 0:  # no column varies within every class: nothing the fit can compare
        return torch.zeros((), dtype=torch.float64, device=x.device)
    if smallest <= d:
        raise ValueError(
            f"`y` has a class with {smallest} samples but `x` varies in {d} dimensions within "
            "every class: the Gaussian estimate needs more samples per class than dimensions;"
            " pass more samples, measure a narrower layer, or use another estimator."
        )
    n = x.shape[0]
    z = standardize_columns(x[:, varying])
    h_z = _logdet(_covariance(z), ridge) - logdet_bias(d, n)
    h_z_given_y = torch.zeros((), dtype=torch.float64, device=x.device)
    for c, m in enumerate(counts.tolist()):
        class_logdet = _logdet(_covariance(z[labels == c]), ridge)
        h_z_given_y = h_z_given_y + m / n * (class_logdet - logdet_bias(d, m))
    fit = 0.5 * (h_z - h_z_given_y)
    return torch.minimum(fit, _plug_in_entropy(counts))


def gaussian_entropy(x: torch.Tensor, *, ridge: float = 1e-6) -> torch.Tensor:
    """Entropy (nats) of the Gaussian fit to ``x`` ``(n, d)``: 1/2 log det(2 pi e S)."""
    _check_ridge(ridge)
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
    _check_ridge(ridge)
    x = as_samples(x, "x", min_samples=2)
    y_raw = as_tensor(y, "y")
    if resolve_discrete(y_raw, discrete_y):
        labels = as_labels(y_raw, "y").to(x.device)
        check_same_length(x, labels, "x", "y")
        return _label_information(x, labels, ridge)
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
        _check_ridge(ridge)
        self.ridge = ridge

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        return gaussian_mutual_information(x, y, discrete_y=discrete_y, ridge=self.ridge)

    def params(self) -> dict[str, Any]:
        return {"ridge": self.ridge}
