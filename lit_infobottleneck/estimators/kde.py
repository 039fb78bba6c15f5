"""Pairwise-distance (KDE) bounds on information with Gaussian noise added to T.

A deterministic layer has infinite I(X;T) for continuous T; this family measures the
information of the noisy representation ``T + N(0, noise_var * I)`` instead, whose
distribution over the n samples is a mixture of n Gaussians. Kolchinsky & Tracey (2017,
"Estimating mixture entropy with pairwise distances") bound the mixture entropy with
pairwise divergences between components, ``H_D = H(T|C) - 1/n sum_i log 1/n sum_j
exp(-D(p_i||p_j))``:

- ``D`` = KL divergence ``||t_i - t_j||^2 / (2 noise_var)`` gives an upper bound on H;
- ``D`` = Bhattacharyya distance ``||t_i - t_j||^2 / (8 noise_var)`` gives a lower bound.

Mutual information with a discrete variable C (class labels, or the input X by identity):
``I(T;C) = H(T) - sum_c p(c) H(T|C=c)``, the same pairwise estimator in both terms, so the
noise entropy ``d/2 log(2 pi e noise_var)`` cancels:

    I = 1/n sum_i [ log(1/n_c(i) sum_{j in c(i)} e^{-D_ij}) - log(1/n sum_j e^{-D_ij}) ].

For I(X;T) of a deterministic network with distinct inputs, H(T|X) is exactly the noise
entropy, so ``bound="upper"`` (KL) and ``bound="lower"`` (Bhattacharyya) are true upper and
lower bounds, both at most log n (Kolchinsky, Tracey & Wolpert 2019; Saxe et al. 2018 used
the upper bound with ``noise_var=0.1``). For I(T;Y) they are the same estimators plugged into
both terms (the Saxe et al. convention), estimates rather than guaranteed bounds.

Free parameter: ``noise_var`` (sigma^2, in the units of T squared; default 0.1), or
``noise_var="auto"``: ``AUTO_NOISE_FRACTION`` (0.1) times the median squared Euclidean
distance between pairs of samples of the layer (``auto_noise_var``; on a seeded random
subset of ``AUTO_MAX_SAMPLES`` = 2,000 rows for larger n). Why relative: in high dimensions
the pairwise distances concentrate around their median, so a fixed variance either resolves
every sample (I(X;T) = log n: 0.1 against the squared distances in the hundreds of a wide
ReLU layer) or none. Relative to the layer's own scale the noise sets a resolution that
means the same for a tanh layer in [-1, 1] and a ReLU layer of scale 30; the estimate is
then invariant to rescaling the layer. For the small tanh layers of Saxe et al. (2018) the
rule gives the same order as their fixed 0.1: at initialisation, 0.21-0.27 for the 10-unit
layer on the 12-bit task, 0.09-0.11 for the 7-unit one, 0.03-0.06 for the narrower ones.
``KDEEstimator.calibration`` returns the value chosen for a layer, to be frozen with
``lit_infobottleneck.estimators.base.Estimator.with_params``; an estimator still at
``"auto"`` calibrates on the data of each call. A constant layer (all rows equal) has no
scale and is refused with a ``ValueError``.

Cost: one chunked walk of the n x n squared distances, O(n^2 d) time, O(n * chunk) extra
memory; ``"auto"`` adds one walk over at most 2,000 rows and a median of their ~2e6 pairs.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lit_infobottleneck.estimators._pairwise import distance_blocks
from lit_infobottleneck.estimators._validation import (
    as_codes,
    as_labels,
    as_samples,
    as_tensor,
    check_positive,
    check_same_length,
    layer_samples,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register

BOUNDS = {"upper": 2.0, "lower": 8.0}

#: ``noise_var="auto"``: this fraction of the median squared distance between samples.
AUTO_NOISE_FRACTION = 0.1
#: Rows used by the median of the ``"auto"`` rule; larger inputs use a seeded random subset.
AUTO_MAX_SAMPLES = 2000
#: Seed of that subset (fixed: the same rows give the same value).
AUTO_SEED = 0


def _check_bound(bound: str) -> float:
    if bound not in BOUNDS:
        raise ValueError(f"`bound` must be one of {tuple(BOUNDS)}, got {bound!r}.")
    return BOUNDS[bound]


def check_noise_var(noise_var: object, *, allow_tensor: bool = False) -> None:
    """Raise unless ``noise_var`` is a finite number > 0 or ``"auto"`` (or a 0-d tensor)."""
    if allow_tensor and isinstance(noise_var, torch.Tensor):
        if noise_var.dim() != 0:
            raise ValueError("`noise_var` must be a number or a 0-d tensor (one variance).")
        return
    if isinstance(noise_var, str):
        if noise_var != "auto":
            raise ValueError(
                f"`noise_var` must be a finite number > 0 or 'auto', got {noise_var!r}."
            )
        return
    check_positive(noise_var, "noise_var")


def median_squared_distance(
    t: torch.Tensor, *, max_samples: int = AUTO_MAX_SAMPLES, seed: int = AUTO_SEED
) -> float:
    """Lower median of ``||t_i - t_j||^2`` over pairs ``i < j`` of rows of ``t`` ``(n, d)``.

    With more than ``max_samples`` rows, over a random subset of ``max_samples`` rows drawn
    with ``seed`` (it then depends on the row order). If more than half the pairs coincide,
    the median of the non-zero ones (the layer's scale where it is not collapsed). Raises
    ``ValueError`` when all rows are equal (a constant layer has no scale) or n < 2.
    """
    t = as_samples(t, "t")
    n = t.shape[0]
    sub = t
    if n > max_samples:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples]
        sub = t[idx.to(t.device)]
        if not bool((sub != sub[:1]).any()):  # a rare few rows differ: take them all once
            sub = torch.unique(t, dim=0)
            sub = sub[torch.randperm(sub.shape[0], generator=torch.Generator().manual_seed(seed))]
            sub = sub[:max_samples]
    if n < 2 or not bool((sub != sub[:1]).any()):
        raise ValueError(
            f"`t` has {n} sample(s) and no two distinct rows: a constant layer has no scale to "
            "calibrate noise_var='auto' on; pass a fixed noise_var (its estimate is 0 for any "
            "value) or more varied samples."
        )
    m = sub.shape[0]
    cols = torch.arange(m, device=sub.device)
    parts = []
    for rows, block in distance_blocks(sub, metric="sqeuclidean"):
        row_idx = torch.arange(rows.start, rows.stop, device=sub.device)
        parts.append(block[cols[None, :] > row_idx[:, None]])
    sq = torch.cat(parts)
    med = sq.median()
    if not bool(med > 0):
        med = sq[sq > 0].median()
    return float(med)


def auto_noise_var(t: torch.Tensor) -> float:
    """``noise_var="auto"``: ``AUTO_NOISE_FRACTION`` x ``median_squared_distance`` of ``t``.

    Raises ``ValueError`` for a constant layer (see the module docstring).
    """
    return AUTO_NOISE_FRACTION * median_squared_distance(t)


def _resolve_noise_var(
    t: torch.Tensor, noise_var: float | str | torch.Tensor
) -> float | torch.Tensor:
    return auto_noise_var(t) if isinstance(noise_var, str) else noise_var


def kde_entropy(
    t: torch.Tensor,
    *,
    noise_var: float | str | torch.Tensor = 0.1,
    bound: str = "upper",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Pairwise-distance bound (nats, 0-d float64) on H(T + N(0, noise_var I)), ``t`` ``(n, d)``.

    Differentiable in ``t`` and in a tensor ``noise_var``; ``"auto"`` calibrates on ``t``.
    """
    check_noise_var(noise_var, allow_tensor=True)
    factor = _check_bound(bound)
    t = as_samples(t, "t")
    noise_var = _resolve_noise_var(t, noise_var)
    scale = factor * noise_var
    n, d = t.shape
    log_mix = torch.cat(
        [
            torch.logsumexp(-sq / scale, dim=1)
            for _, sq in distance_blocks(t, metric="sqeuclidean", chunk_size=chunk_size)
        ]
    ) - math.log(n)
    log_noise = torch.log(torch.as_tensor(2 * math.pi * math.e * noise_var, dtype=torch.float64))
    return 0.5 * d * log_noise.to(t.device) - log_mix.mean()


def kde_mutual_information(
    t: torch.Tensor,
    groups: torch.Tensor,
    *,
    noise_var: float | str | torch.Tensor = 0.1,
    bound: str = "upper",
    discrete_groups: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """I(T + noise; C) in nats (0-d float64) for continuous ``t`` ``(n, d)`` and discrete C.

    ``groups`` ``(n, ...)``: integer class labels, or any tensor whose distinct rows are the
    values of C (e.g. the network inputs X, for I(X;T)). ``discrete_groups=True`` requires
    integer labels; ``None``/``False`` group by distinct rows of any dtype. Differentiable in
    ``t`` and in a tensor ``noise_var`` (the nonlinear-IB objective trains through it);
    ``noise_var="auto"`` calibrates on ``t`` (``auto_noise_var``).
    """
    check_noise_var(noise_var, allow_tensor=True)
    factor = _check_bound(bound)
    t = as_samples(t, "t")
    g = as_tensor(groups, "y")
    codes = as_labels(g, "y") if discrete_groups else as_codes(g, "y")
    check_same_length(t, codes, "t", "y")
    scale = factor * _resolve_noise_var(t, noise_var)
    return _grouped_information(t, [codes.to(t.device)], scale, chunk_size)[0]


def _grouped_information(
    t: torch.Tensor, groupings: list[torch.Tensor], scale: Any, chunk_size: int | None
) -> list[torch.Tensor]:
    """I(T + noise; C) for several groupings C (int64 codes ``(n,)``) in one distance walk."""
    n = t.shape[0]
    log_sizes = [torch.bincount(codes).to(torch.float64).log() for codes in groupings]
    # all groups of one sample (e.g. distinct inputs X): the own-group term is log K(0) = 0
    singletons = [bool((sizes == 0).all()) for sizes in log_sizes]
    per_point: list[list[torch.Tensor]] = [[] for _ in groupings]
    for rows, sq in distance_blocks(t, metric="sqeuclidean", chunk_size=chunk_size):
        log_kernel = -sq / scale
        log_all = torch.logsumexp(log_kernel, dim=1) - math.log(n)
        for out, codes, sizes, single in zip(
            per_point, groupings, log_sizes, singletons, strict=True
        ):
            if single:
                out.append(-log_all)
                continue
            other_group = codes[rows, None] != codes[None, :]
            log_same = torch.logsumexp(log_kernel.masked_fill(other_group, -math.inf), dim=1)
            out.append(log_same - sizes[codes[rows]] - log_all)
    return [torch.cat(parts).mean() for parts in per_point]


@register
class KDEEstimator(Estimator):
    """Kolchinsky-Tracey pairwise-distance bounds for T plus Gaussian noise of ``noise_var``.

    ``noise_var="auto"`` sets it per layer (see the module docstring); ``calibration``
    reports the value, and every estimate of an estimator still at ``"auto"`` calibrates on
    the activations it is given (``x`` of ``mutual_information``, ``t`` otherwise).
    """

    name = "kde"
    treats_x_by_identity = True

    def __init__(self, noise_var: float | str = 0.1, bound: str = "upper") -> None:
        check_noise_var(noise_var)
        _check_bound(bound)
        self.noise_var, self.bound = noise_var, bound

    def calibration(self, t: torch.Tensor) -> dict[str, Any]:
        """``{"noise_var": float}`` chosen on ``t`` when ``noise_var="auto"``, else ``{}``."""
        if self.noise_var != "auto":
            return {}
        return {"noise_var": auto_noise_var(t)}

    def _scale(self, t: torch.Tensor) -> float:
        return _check_bound(self.bound) * float(_resolve_noise_var(t, self.noise_var))

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        """I(X + noise; Y): noise is added to ``x``; ``y`` is discrete (labels or distinct rows)."""
        y_t = as_tensor(y, "y")
        return kde_mutual_information(
            x,
            y_t,
            noise_var=self.noise_var,
            bound=self.bound,
            discrete_groups=resolve_discrete(y_t, discrete_y),
        )

    def input_information(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """I(X;T + noise) with X discrete by identity: a true bound for distinct inputs."""
        return kde_mutual_information(
            t, x, noise_var=self.noise_var, bound=self.bound, discrete_groups=False
        )

    def layer_information(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(I(X;T), I(T;Y)) from one walk over the distances of ``t``."""
        t, inputs, labels = layer_samples(x, t, y)
        ixt, ity = _grouped_information(t, [inputs, labels], self._scale(t), None)
        return ixt, ity

    def params(self) -> dict[str, Any]:
        return {"noise_var": self.noise_var, "bound": self.bound}
