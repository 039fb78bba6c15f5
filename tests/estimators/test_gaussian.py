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
    """Class 0 lives on {t_0..t_9 = 0}. A Gaussian fit to all 20 units with the ridge reads
    32 nats for H(Y) = 0.69: each dead unit adds ~1/2 p(c) |log ridge|. The estimate is the
    Gaussian fit of the 10 units that vary within both classes, whatever the ridge."""
    t, labels = _relu_layer_with_units_dead_in_one_class()
    value = float(gaussian_mutual_information(t, labels))
    assert value <= _label_entropy(labels) + 1e-9
    assert value == pytest.approx(float(gaussian_mutual_information(t[:, 10:], labels)), 1e-12)
    assert 0.05 < value  # the varying units carry the class shift
    ridge_free = float(gaussian_mutual_information(t, labels, ridge=1e-12))
    assert ridge_free == pytest.approx(value, abs=1e-5)  # not ~1/2 |log ridge| per unit


def test_units_at_zero_in_other_classes_too_are_no_evidence_of_the_class():
    """A unit that is 0 for all of class 0 and for 99 % of class 1 tells the classes apart on
    0.5 % of the samples: true I(T;Y) = 0.0035 nats (5 noise units carry nothing). A rule that
    separates the classes by which units are constant would read H(Y) = 0.69."""
    gen = torch.Generator().manual_seed(0)
    n = 4000
    labels = torch.randint(0, 2, (n,), generator=gen)
    t = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    fires = (labels == 1) & (torch.rand(n, generator=gen) < 0.01)
    t[:, 0] = torch.where(fires, torch.rand(n, generator=gen, dtype=torch.float64), 0.0)
    assert abs(float(gaussian_mutual_information(t, labels))) < 0.01


def test_a_class_of_one_sample_is_refused():
    gen = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(1, dtype=torch.long), torch.randint(1, 3, (500,))])
    t = torch.randn(501, 3, generator=gen, dtype=torch.float64)
    with pytest.raises(ValueError, match="a class with 1 sample"):
        gaussian_mutual_information(t, labels)


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
