"""Shared test data: samples with analytic information content."""

from __future__ import annotations

import math

import pytest
import torch


def gaussian_pair(n: int, d: int, rho: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y of shape (n, d), each coordinate pair correlated with coefficient rho."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    noise = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * noise


def gaussian_mi(d: int, rho: float) -> float:
    """I(X;Y) = -d/2 log(1 - rho^2) nats for the pairs above."""
    return -0.5 * d * math.log(1 - rho**2)


@pytest.fixture
def make_gaussian_pair():
    return gaussian_pair
