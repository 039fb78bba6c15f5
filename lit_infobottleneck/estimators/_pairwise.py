"""Chunked pairwise distances: the one place where n x n work is done.

Every estimator that needs distances between samples (KDE, k-NN, Renyi, HSIC) walks the
``(n, n)`` distance matrix in row blocks of ``chunk_size`` rows from ``distance_blocks``.
Extra memory is ``O(n * chunk_size)`` float64 values; an ``(n, n, d)`` tensor is never built.
The same code runs on CPU and GPU (blocks live on the input's device).

Metrics: ``"max"`` (Chebyshev, L-infinity) and ``"euclidean"`` (L2), both from exact
coordinate differences (what k-NN needs: ties and near-duplicates are ordered correctly),
and ``"sqeuclidean"`` (squared L2 from a matrix product: the fast path for kernels; both sets
are first shifted by one sample, so the absolute round-off is about ``1e-16 * |x - x_0|^2``,
whatever the offset of the data; values below that round-off, e.g. between duplicated rows
and from a point to itself, are exactly 0).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

METRICS = ("max", "euclidean", "sqeuclidean")

#: Memory budget for one ``(chunk, n)`` float64 block, in bytes (32 MiB).
DEFAULT_BLOCK_BYTES = 32 * 2**20


def check_metric(metric: str) -> str:
    """Return ``metric`` if known, else raise a ``ValueError`` listing the choices."""
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, got {metric!r}.")
    return metric


def default_chunk_size(n: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Rows per block so that one ``(rows, n)`` float64 block fits in ``block_bytes``."""
    return max(1, min(n, block_bytes // (8 * max(n, 1))))


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=1)


def distance_block(
    a: torch.Tensor,
    b: torch.Tensor,
    metric: str,
    *,
    b_sq_norms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distances between rows of ``a`` ``(m, d)`` and rows of ``b`` ``(n, d)``: ``(m, n)``.

    ``b_sq_norms`` (the squared row norms of ``b``) may be passed to avoid recomputing them
    for every block of a Euclidean walk. Autocast is off here: under mixed precision a
    bf16/fp16 matrix product would wreck the distances.
    """
    with torch.autocast(device_type=a.device.type, enabled=False):
        if metric == "max":
            return torch.cdist(a, b, p=float("inf"))
        if metric == "euclidean":  # exact differences: k-NN ties and near-duplicates
            return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
        if b_sq_norms is None:
            b_sq_norms = _squared_norms(b)
        norms = _squared_norms(a)[:, None] + b_sq_norms[None, :]
        # Below (d + 2) eps (|a|^2 + |b|^2) the value is round-off, not distance: duplicated
        # rows come out at +-1e-16 |x|^2. They are reported as exactly 0 (and negatives too),
        # as the median rule, which looks for coinciding pairs, needs.
        eps_scale = (a.shape[1] + 2) * torch.finfo(norms.dtype).eps
        if _needs_grad(a, b):  # out of place: the objectives train through these blocks
            sq = norms - 2.0 * (a @ b.T)
            sq = torch.where(sq > eps_scale * norms, sq, torch.zeros_like(sq))
            return sq if metric == "sqeuclidean" else sq.sqrt()
        # estimation: two (m, n) buffers instead of seven, about 4x faster per block
        sq = torch.addmm(norms, a, b.T, alpha=-2.0)
        sq.masked_fill_(sq <= norms.mul_(eps_scale), 0.0)
        return sq if metric == "sqeuclidean" else sq.sqrt_()


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def distance_blocks(
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    exclude_self: bool = False,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(rows, block)`` with ``block[i, j] = dist(x[rows][i], y[j])``, shape ``(r, n)``.

    With ``y=None`` the walk is ``x`` against itself; ``exclude_self=True`` then sets the
    diagonal (a point's distance to itself) to ``+inf`` so that nearest-neighbour searches
    and counts skip the point. The block is a fresh tensor that callers may modify. When
    gradients are needed no in-place operation touches it, so they flow through the
    ``"sqeuclidean"`` blocks (the objectives train through them); otherwise it is built in
    place, with fewer temporary blocks.
    """
    check_metric(metric)
    if metric == "sqeuclidean":
        # Distances do not change under translation. Shifting both sets by one sample keeps
        # |x|^2, and with it the matrix product's round-off, at the scale of the spread
        # instead of the offset (1e6 + N(0, 1) data lost whole nats in KDE), and makes the
        # rows equal to that sample, e.g. all rows of a constant input, exactly 0 apart.
        shift = (x if y is None else y)[:1].detach()
        x = x - shift
        y = None if y is None else y - shift
    other = x if y is None else y
    n_rows = x.shape[0]
    if chunk_size is None:
        chunk_size = default_chunk_size(other.shape[0])
    other_sq = _squared_norms(other) if metric != "max" else None
    for start in range(0, n_rows, chunk_size):
        rows = slice(start, min(start + chunk_size, n_rows))
        block = distance_block(x[rows], other, metric, b_sq_norms=other_sq)
        if y is None:
            idx = torch.arange(rows.start, rows.stop, device=x.device)
            fill = torch.tensor(float("inf") if exclude_self else 0.0, dtype=block.dtype)
            if _needs_grad(block):
                block = block.index_put((idx - rows.start, idx), fill.to(block.device))
            else:
                block.index_put_((idx - rows.start, idx), fill.to(block.device))
        yield rows, block


def dense_distances(x: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """The full ``(n, n)`` distance matrix in one block (small inputs and tests only)."""
    return next(distance_blocks(x, metric=metric, chunk_size=x.shape[0]))[1]
