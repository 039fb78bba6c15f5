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
    with pytest.raises(ValueError, match="`ridge` must be a finite number > 0"):
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
    ~0.3 nats per unit too small; without the Wishart correction the estimate is 49 nats
    for a true 0."""
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


def _label_entropy(labels: torch.Tensor) -> float:
    p = torch.bincount(labels).double() / labels.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _relu_layer_with_units_dead_in_one_class(n: int = 2000, seed: int = 0):
    """20 ReLU units; units 0..9 are exactly 0 for every sample of class 0."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    t = (torch.randn(n, 20, generator=gen, dtype=torch.float64) + 0.5 * labels[:, None]).relu()
    t[labels == 0, :10] = 0.0
    return t, labels


def test_units_constant_within_a_class_do_not_inflate_the_estimate():
    """Class 0 lives on {t_0..t_9 = 0}, class 1 does not: T identifies the class, so
    I(T;Y) = H(Y). A Gaussian fit to all 20 units with the ridge reads 32 nats: each dead
    unit adds ~1/2 p(c) |log ridge|."""
    t, labels = _relu_layer_with_units_dead_in_one_class()
    h_y = _label_entropy(labels)
    value = float(gaussian_mutual_information(t, labels))
    assert value <= h_y + 1e-9
    assert value == pytest.approx(h_y, abs=1e-9)
    # the same for any ridge: the dead units never reach a log-det
    assert float(gaussian_mutual_information(t, labels, ridge=1e-12)) == pytest.approx(value)


def test_classes_sharing_a_support_are_compared_by_the_gaussian_fit_on_it():
    """Classes 0 and 1 have units 0..9 dead, class 2 does not: I = H(G) + P(G=01) I(T;Y|G=01)
    with G the support group, the Gaussian fit on the 10 units that vary within classes 0, 1."""
    gen = torch.Generator().manual_seed(1)
    n = 3000
    labels = torch.randint(0, 3, (n,), generator=gen)
    t = torch.randn(n, 20, generator=gen, dtype=torch.float64) + labels[:, None].double()
    t[labels < 2, :10] = 0.0
    in_group = labels < 2
    share = float(in_group.double().mean())
    h_group = -(share * math.log(share) + (1 - share) * math.log(1 - share))
    within = float(gaussian_mutual_information(t[in_group][:, 10:], labels[in_group]))
    assert 0.5 < within < math.log(2)  # informative, below the cap
    expected = h_group + share * within
    assert float(gaussian_mutual_information(t, labels)) == pytest.approx(expected, abs=1e-9)
    assert expected <= _label_entropy(labels)


def test_the_estimate_is_capped_at_the_label_entropy():
    """A Gaussian fit is not a bound: for 2 classes of 14 samples, 3 sd apart in each of 12
    dimensions, it reads 1.11 nats > H(Y) = log 2. The true I(T;Y) cannot exceed H(Y), so
    the estimate is min(fit, H(Y))."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(28) % 2
    t = torch.randn(28, 12, generator=gen, dtype=torch.float64) + 3.0 * labels[:, None]
    assert float(gaussian_mutual_information(t, labels)) == pytest.approx(math.log(2), abs=1e-12)


@pytest.mark.parametrize("ridge", [0.0, -1e-6])
def test_ridge_must_be_positive(ridge):
    x, y = gaussian_pair(100, 2, 0.5, seed=0)
    labels = (x[:, 0] > 0).long()
    pattern = r"`ridge` must be a finite number > 0, got .*pass a small positive ridge"
    with pytest.raises(ValueError, match=pattern):
        gaussian_mutual_information(x, y, ridge=ridge)
    with pytest.raises(ValueError, match=pattern):
        gaussian_mutual_information(x, labels, ridge=ridge)
    with pytest.raises(ValueError, match=pattern):
        gaussian_entropy(x, ridge=ridge)
    with pytest.raises(ValueError, match=pattern):
        GaussianEstimator(ridge=ridge)
