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


def test_logdet_bias_is_the_wishart_expectation():
    """Monte Carlo mean of log det S (Sigma = I, so log det Sigma = 0) over 4,000 draws."""
    from lit_infobottleneck.estimators.gaussian import _covariance, logdet_bias

    gen = torch.Generator().manual_seed(5)
    d, m = 3, 10
    draws = torch.randn(4000, m, d, generator=gen, dtype=torch.float64)
    logdets = torch.stack([torch.logdet(_covariance(z)) for z in draws])
    standard_error = float(logdets.std()) / math.sqrt(len(draws))
    assert float(logdets.mean()) == pytest.approx(logdet_bias(d, m), abs=4 * standard_error)
    assert logdet_bias(d, m) < -0.5  # a bias worth correcting at this size
    assert logdet_bias(0, 5) == 0.0


def test_wide_layers_with_independent_labels_read_zero_not_tens_of_nats():
    """256 units, 10 classes of ~410: the plug-in log-dets of the class covariances are
    ~0.3 nats per unit too small; uncorrected this read 49 nats for a true 0."""
    gen = torch.Generator().manual_seed(0)
    t = torch.randn(4096, 256, generator=gen)
    labels = torch.randint(0, 10, (4096,), generator=gen)
    assert abs(float(gaussian_mutual_information(t, labels))) < 0.5
    x, y = gaussian_pair(500, 20, 0.0, seed=1)  # continuous, independent: +0.42 bias uncorrected
    assert abs(float(gaussian_mutual_information(x, y))) < 0.2


def test_a_class_with_no_more_samples_than_dimensions_is_refused():
    t = torch.randn(100, 30, dtype=torch.float64)
    labels = torch.cat([torch.zeros(75), torch.ones(25)]).long()  # 25 <= 30 dims
    with pytest.raises(ValueError, match="class with 25 samples but `x` varies in 30 dim"):
        gaussian_mutual_information(t, labels)
    constant = torch.cat([t[:, :20], torch.ones(100, 10, dtype=torch.float64)], dim=1)
    assert math.isfinite(float(gaussian_mutual_information(constant, labels)))  # 20 vary
