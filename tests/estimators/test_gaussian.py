import math

import pytest
import torch

from lit_infobottleneck.estimators.gaussian import (
    GaussianEstimator,
    gaussian_entropy,
    gaussian_mutual_information,
)
from tests.conftest import gaussian_mi, gaussian_pair


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_exact_for_correlated_gaussians(d, rho):
    # n = 50,000: at n = 5,000 the sampling error alone (rho = 0.9, d = 5) is ~0.03 nats.
    x, y = gaussian_pair(50_000, d, rho, seed=10 * d)
    assert float(gaussian_mutual_information(x, y)) == pytest.approx(gaussian_mi(d, rho), abs=0.02)


def test_entropy_of_a_known_gaussian():
    gen = torch.Generator().manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64)
    z = torch.randn(50_000, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    truth = 0.5 * (2 * math.log(2 * math.pi * math.e) + math.log(float(torch.linalg.det(cov))))
    assert float(gaussian_entropy(z)) == pytest.approx(truth, abs=0.02)


def test_invariant_to_scale_and_symmetric():
    x, y = gaussian_pair(3000, 3, 0.7, seed=1)
    base = float(gaussian_mutual_information(x, y))
    scale = torch.tensor([1e-4, 1.0, 1e5], dtype=torch.float64)
    assert float(gaussian_mutual_information(x * scale, y + 7)) == pytest.approx(base, abs=1e-6)
    assert float(gaussian_mutual_information(y, x)) == pytest.approx(base, abs=1e-10)


def test_labels_with_gaussian_classes():
    # T | y ~ N(mu_y, I): the Gaussian fit gives I = 1/2 log det(I + Cov(mu_Y)).
    gen = torch.Generator().manual_seed(2)
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.randint(0, 3, (60_000,), generator=gen)
    t = mu[labels] + torch.randn(60_000, 2, generator=gen, dtype=torch.float64)
    p = torch.bincount(labels).double() / 60_000
    mean = (p[:, None] * mu).sum(0)
    cov_mu = ((mu - mean).T * p) @ (mu - mean)
    truth = 0.5 * float(torch.logdet(torch.eye(2, dtype=torch.float64) + cov_mu))
    assert float(gaussian_mutual_information(t, labels)) == pytest.approx(truth, abs=0.02)


def test_rank_deficient_and_constant_columns_stay_finite():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 50, generator=gen)  # more dimensions than samples
    y = x[:, :3] @ torch.randn(3, 2, generator=gen)  # collinear
    assert math.isfinite(float(gaussian_mutual_information(x, y)))
    a, b = gaussian_pair(2000, 2, 0.6, seed=4)
    with_constant = torch.cat([a, torch.ones(2000, 1, dtype=torch.float64)], dim=1)
    assert float(gaussian_mutual_information(with_constant, b)) == pytest.approx(
        float(gaussian_mutual_information(a, b)), abs=1e-6
    )


def test_bad_parameters():
    with pytest.raises(ValueError, match="`ridge` must be a finite number >= 0"):
        GaussianEstimator(ridge=-1.0)
    with pytest.raises(ValueError, match="needs at least 2"):
        gaussian_mutual_information(torch.zeros(1, 2), torch.zeros(1, 2))
