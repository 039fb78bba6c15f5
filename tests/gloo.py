"""Helpers for tests that spawn their own gloo process groups on this machine."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator

import torch
import torch.distributed as dist


@contextlib.contextmanager
def gloo_group(
    rank: int, world_size: int, store_file: str, timeout_seconds: float
) -> Iterator[None]:
    """Run the body in a CPU (gloo) process group, one thread per process.

    The ranks meet through a file store at ``store_file`` (a path that does not exist yet,
    one per spawn): no rank hosts a TCP store server that the others still need when it
    exits, and no port is picked that another process could take first. A body that ends
    normally waits for every rank (a barrier) before the group is destroyed, so no rank
    tears its connections down while another still uses them; a body that raises destroys
    the group at once. A collective that cannot complete fails after ``timeout_seconds``
    instead of hanging.
    """
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_seconds),
    )
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()
