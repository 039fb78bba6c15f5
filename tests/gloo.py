"""Helpers for tests that spawn their own gloo process groups on this machine."""

from __future__ import annotations

import datetime
import socket

import torch
import torch.distributed as dist


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world_size: int, port: int, timeout_seconds: float) -> None:
    """Join a CPU (gloo) process group on 127.0.0.1:``port``, one thread per process; a
    collective that cannot complete fails after ``timeout_seconds`` instead of hanging."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_seconds),
    )
