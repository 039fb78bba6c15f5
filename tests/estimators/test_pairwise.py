import pytest
import torch

from lit_infobottleneck.estimators._pairwise import (
    default_chunk_size,
    dense_distances,
    distance_blocks,
)


def _naive(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    diff = x[:, None, :] - y[None, :, :]
    if metric == "max":
        return diff.abs().amax(dim=-1)
    sq = (diff**2).sum(dim=-1)
    return sq if metric == "sqeuclidean" else sq.sqrt()


@pytest.mark.parametrize("metric", ["max", "euclidean", "sqeuclidean"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 500])
def test_chunked_blocks_equal_the_naive_matrix(metric, chunk_size):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(97, 5, generator=gen, dtype=torch.float64)
    blocks = list(distance_blocks(x, metric=metric, chunk_size=chunk_size))
    assert all(b.shape[0] <= chunk_size for _, b in blocks)
    full = torch.cat([b for _, b in blocks])
    torch.testing.assert_close(full, _naive(x, x, metric), rtol=0, atol=1e-10)


def test_cross_distances_and_self_exclusion():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    cross = torch.cat([b for _, b in distance_blocks(x, y, metric="euclidean", chunk_size=8)])
    torch.testing.assert_close(cross, _naive(x, y, "euclidean"), rtol=0, atol=1e-10)
    own = torch.cat(
        [b for _, b in distance_blocks(x, metric="max", chunk_size=8, exclude_self=True)]
    )
    assert torch.isinf(own.diagonal()).all()
    off = ~torch.eye(30, dtype=torch.bool)
    torch.testing.assert_close(own[off], _naive(x, x, "max")[off], rtol=0, atol=0)


def test_default_chunk_bounds_block_memory():
    n = 16_384
    rows = default_chunk_size(n)
    assert rows * n * 8 <= 32 * 2**20
    assert default_chunk_size(10) == 10


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="`metric` must be one of"):
        dense_distances(torch.zeros(3, 2), metric="cosine")


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_in_place_estimation_path_equals_the_differentiable_path(metric, exclude_self):
    """Without gradients the blocks are built in place; the values must not change."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(70, 5, generator=gen, dtype=torch.float64) * 3 + 100
    x[10] = x[3]  # a duplicated row: its round-off must be zeroed on both paths
    fast = [
        b for _, b in distance_blocks(x, metric=metric, chunk_size=16, exclude_self=exclude_self)
    ]
    xg = x.clone().requires_grad_(True)
    slow = [
        b for _, b in distance_blocks(xg, metric=metric, chunk_size=16, exclude_self=exclude_self)
    ]
    assert all(b.grad_fn is not None for b in slow)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-9)
    assert float(torch.cat(fast)[10, 3]) == 0.0
