"""``_sampling.gather_captures`` under a real 2-process gloo group when the ranks' captures
differ in width (token ids of batches padded to their own longest sequence) and in key
order (layers ordered by each rank's forward pass): zero-padded to the widest, by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lit_infobottleneck.callbacks._sampling import gather_captures
from tests.gloo import gloo_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs gloo"),
]


class _Strategy:
    """What ``gather_captures`` uses of a Lightning strategy: a device and all_gather."""

    root_device = torch.device("cpu")

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        return torch.stack(parts)


def _local(rank: int) -> dict[str, torch.Tensor]:
    """Rank r holds samples r, r + 2, r + 4 with ids of width 3 + 2r, one layer of width 4."""
    index = torch.arange(rank, 6, 2)
    ids = torch.arange(3 * (3 + 2 * rank)).reshape(3, -1).float() + 100 * rank
    layer = index[:, None].float().expand(3, 4)
    keys = {"x": ids, "index": index, "layer:a": layer}
    return keys if rank == 0 else dict(reversed(list(keys.items())))


def _worker(rank: int, out_dir: str) -> None:
    with gloo_group(rank, 2, str(Path(out_dir) / "store"), timeout_seconds=30):
        data = gather_captures(_Strategy(), 2, _local(rank), 100, torch.device("cpu"))
        torch.save(data, Path(out_dir) / f"rank{rank}.pt")


def test_ranks_of_different_widths_and_key_orders_gather_zero_padded(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert list(results[1]) == ["layer:a", "index", "x"]  # each rank keeps its own order
    for data in results:
        assert data["index"].tolist() == list(range(6))
        assert data["x"].shape == (6, 5)  # rank 0's width 3 padded to rank 1's 5
        for position, sample in enumerate(range(6)):
            rank, row = sample % 2, sample // 2
            expected = _local(rank)["x"][row]
            assert data["x"][position, : expected.numel()].tolist() == expected.tolist()
            assert data["x"][position, expected.numel() :].abs().sum() == 0
        assert data["layer:a"][:, 0].tolist() == [float(i) for i in range(6)]
