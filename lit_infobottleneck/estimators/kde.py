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

Free parameter: ``noise_var`` (sigma^2, in the units of T squared; default 0.1). Cost: one
chunked walk of the n x n squared distances, O(n^2 d) time, O(n * chunk) extra memory.
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
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register

BOUNDS = {"upper": 2.0, "lower": 8.0}


def _check_bound(bound: str) -> float:
    if bound not in BOUNDS:
        raise ValueError(f"`bound` must be one of {tuple(BOUNDS)}, got {bound!r}.")
    return BOUNDS[bound]


def _check_noise_var(noise_var: float | torch.Tensor) -> None:
    if isinstance(noise_var, torch.Tensor):
        if noise_var.dim() != 0:
            raise ValueError("`noise_var` must be a number or a 0-d tensor (one variance).")
        return
    check_positive(noise_var, "noise_var")


def kde_entropy(
    t: torch.Tensor,
    *,
    noise_var: float | torch.Tensor = 0.1,
    bound: str = "upper",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Pairwise-distance bound (nats, 0-d float64) on H(T + N(0, noise_var I)), ``t`` ``(n, d)``.

    Differentiable in ``t`` and in a tensor ``noise_var``.
    """
    _check_noise_var(noise_var)
    scale = _check_bound(bound) * noise_var
    t = as_samples(t, "t")
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
    noise_var: float | torch.Tensor = 0.1,
    bound: str = "upper",
    discrete_groups: bool | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """I(T + noise; C) in nats (0-d float64) for continuous ``t`` ``(n, d)`` and discrete C.

    ``groups`` ``(n, ...)``: integer class labels, or any tensor whose distinct rows are the
    values of C (e.g. the network inputs X, for I(X;T)). ``discrete_groups=True`` requires
    integer labels; ``None``/``False`` group by distinct rows of any dtype. Differentiable in
    ``t`` and in a tensor ``noise_var`` (the nonlinear-IB objective trains through it).
    """
    _check_noise_var(noise_var)
    scale = _check_bound(bound) * noise_var
    t = as_samples(t, "t")
    g = as_tensor(groups, "y")
    codes = as_labels(g, "y") if discrete_groups else as_codes(g, "y")
    check_same_length(t, codes, "t", "y")
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
    """Kolchinsky-Tracey pairwise-distance bounds for T plus Gaussian noise of ``noise_var``."""

    name = "kde"

    def __init__(self, noise_var: float = 0.1, bound: str = "upper") -> None:
        check_positive(noise_var, "noise_var")
        _check_bound(bound)
        self.noise_var, self.bound = noise_var, bound

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
        t = as_samples(t, "t")
        inputs, labels = as_codes(x, "x"), as_labels(y, "y")
        check_same_length(t, inputs, "t", "x")
        check_same_length(t, labels, "t", "y")
        scale = _check_bound(self.bound) * self.noise_var
        groupings = [inputs.to(t.device), labels.to(t.device)]
        ixt, ity = _grouped_information(t, groupings, scale, None)
        return ixt, ity

    def params(self) -> dict[str, Any]:
        return {"noise_var": self.noise_var, "bound": self.bound}
