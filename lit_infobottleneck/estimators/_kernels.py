"""Kernel Gram blocks and kernel-width rules shared by the Renyi and HSIC estimators.

Gram matrices are produced in row blocks from the chunked distances of ``._pairwise``
(extra memory O(n * chunk)); callers that need the full matrix assemble it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lit_infobottleneck.estimators._pairwise import distance_blocks
from lit_infobottleneck.estimators._validation import (
    as_labels,
    as_samples,
    check_int_at_least,
    check_positive,
    standardize_columns,
)

#: Rows used by the median rule; larger inputs use a seeded random subset of this size.
MEDIAN_MAX_SAMPLES = 1000


def check_sigma(sigma: float | str, rules: tuple[str, ...]) -> None:
    """Raise unless ``sigma`` is a finite number > 0 or one of ``rules``."""
    if isinstance(sigma, str) and sigma in rules:
        return
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise ValueError(
            f"`sigma` must be a number > 0 or one of the rules {rules}, got {sigma!r}."
        )
    check_positive(sigma, "sigma")


def check_chunk_size(chunk_size: int | None) -> None:
    """Raise unless ``chunk_size`` is ``None`` or an integer >= 1."""
    if chunk_size is not None:
        check_int_at_least(chunk_size, "chunk_size", 1)


def silverman_sigma(x: torch.Tensor) -> torch.Tensor:
    """Silverman's rule ``s * (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4))``.

    ``s`` is the root-mean variance of the non-constant columns of ``x`` ``(n, d)`` (1 on
    standardised data; 1 if every column is constant).
    """
    n, d = x.shape
    factor = (4.0 / (d + 2)) ** (1.0 / (d + 4)) * n ** (-1.0 / (d + 4))
    if n < 2:
        return torch.tensor(factor, dtype=x.dtype, device=x.device)
    var = x.var(dim=0)
    live = var > 0
    if not bool(live.any()):
        return torch.tensor(factor, dtype=x.dtype, device=x.device)
    return factor * var[live].mean().sqrt()


def median_distance(
    x: torch.Tensor,
    *,
    chunk_size: int | None = None,
    max_samples: int = MEDIAN_MAX_SAMPLES,
    seed: int = 0,
) -> torch.Tensor:
    """Lower median of the Euclidean distances ``||x_i - x_j||``, ``i < j`` (0-d tensor).

    With more than ``max_samples`` rows, the median is taken over a random subset of
    ``max_samples`` rows drawn with ``seed`` (then it depends on the sample order). If more
    than half the pairs coincide (median 0), the median of the non-zero distances is used;
    if all samples coincide, 1.0 (the kernel is then constant whatever the width).
    """
    n = x.shape[0]
    if n > max_samples:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=gen)[:max_samples].to(x.device)
        x = x[idx]
        n = max_samples
    cols = torch.arange(n, device=x.device)
    parts = []
    for rows, block in distance_blocks(x, metric="sqeuclidean", chunk_size=chunk_size):
        row_idx = torch.arange(rows.start, rows.stop, device=x.device)
        parts.append(block[cols[None, :] > row_idx[:, None]])
    sq = torch.cat(parts)
    positive = sq[sq > 0]
    if positive.numel() == 0:
        return torch.ones((), dtype=x.dtype, device=x.device)
    med = sq.median()
    if not bool(med > 0):
        med = positive.median()
    return med.sqrt()


def resolve_sigma(
    x: torch.Tensor, sigma: float | str, *, chunk_size: int | None = None
) -> torch.Tensor | float:
    """The kernel width for ``x``: ``sigma`` itself if a number, else the named rule's value."""
    if sigma == "silverman":
        return silverman_sigma(x)
    if sigma == "median":
        return median_distance(x, chunk_size=chunk_size)
    return float(sigma)


def kernel_blocks(
    data: torch.Tensor,
    *,
    discrete: bool,
    sigma: torch.Tensor | float | None = None,
    chunk_size: int,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, K[rows])`` row blocks of a Gram matrix, ``chunk_size`` rows at a time.

    ``discrete=True``: ``data`` is an ``(n,)`` label vector and ``K_ij = [y_i == y_j]``.
    Otherwise ``data`` is ``(n, d)`` and ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``.
    Blocks of two calls with the same ``n`` and ``chunk_size`` cover the same row slices.
    """
    if discrete:
        n = data.shape[0]
        for start in range(0, n, chunk_size):
            rows = slice(start, min(start + chunk_size, n))
            yield rows, (data[rows, None] == data[None, :]).to(torch.float64)
        return
    if sigma is None:
        raise ValueError("`sigma` is required for the Gaussian kernel.")
    scale = -0.5 / sigma**2
    for rows, sq in distance_blocks(data, metric="sqeuclidean", chunk_size=chunk_size):
        yield rows, torch.exp(sq * scale)


def prepare_variable(
    x: object,
    name: str,
    *,
    discrete: bool,
    sigma: float | str,
    standardize: bool,
    chunk_size: int | None,
    min_samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | float | None]:
    """Validate one variable; return ``(data, sigma)`` ready for ``kernel_blocks``.

    Discrete data become ``(n,)`` int64 label codes (``sigma`` is ``None``); continuous data
    become float64 ``(n, d)`` (standardised if asked) with the resolved kernel width.
    """
    if discrete:
        labels = as_labels(x, name)
        if labels.shape[0] < min_samples:
            raise ValueError(
                f"`{name}` has {labels.shape[0]} samples but this estimator needs at least "
                f"{min_samples}; pass more samples."
            )
        return labels, None
    data = as_samples(x, name)
    if data.shape[0] < min_samples:
        raise ValueError(
            f"`{name}` has {data.shape[0]} samples but this estimator needs at least "
            f"{min_samples}; pass more samples."
        )
    if standardize:
        data = standardize_columns(data)
    return data, resolve_sigma(data, sigma, chunk_size=chunk_size)
