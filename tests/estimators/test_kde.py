import math

import pytest
import torch

from lit_infobottleneck.estimators import get_estimator
from lit_infobottleneck.estimators.kde import (
    KDEEstimator,
    kde_entropy,
    kde_mutual_information,
)


def _mixture_entropy_1d(centres: torch.Tensor, weights: torch.Tensor, var: float) -> float:
    """Numerical H of a 1-D Gaussian mixture (trapezoid rule on a fine grid), nats."""
    grid = torch.linspace(
        float(centres.min()) - 12 * math.sqrt(var),
        float(centres.max()) + 12 * math.sqrt(var),
        200_001,
        dtype=torch.float64,
    )
    comp = torch.exp(-((grid[:, None] - centres[None, :]) ** 2) / (2 * var))
    p = (comp * weights[None, :]).sum(1) / math.sqrt(2 * math.pi * var)
    integrand = torch.where(p > 0, -p * p.log(), torch.zeros_like(p))
    return float(torch.trapezoid(integrand, grid))


def test_two_point_closed_form():
    delta, var = 1.3, 0.2
    t = torch.tensor([[0.0], [delta]])
    x = torch.tensor([[0], [1]])
    up = KDEEstimator(noise_var=var, bound="upper").input_information(x, t)
    low = KDEEstimator(noise_var=var, bound="lower").input_information(x, t)
    assert float(up) == pytest.approx(math.log(2) - math.log1p(math.exp(-(delta**2) / (2 * var))))
    assert float(low) == pytest.approx(math.log(2) - math.log1p(math.exp(-(delta**2) / (8 * var))))


def test_bounds_bracket_the_true_mi_of_a_noisy_mixture():
    centres = torch.tensor([-1.0, -0.2, 0.1, 0.9, 2.5], dtype=torch.float64)
    var = 0.3
    true_mi = _mixture_entropy_1d(centres, torch.full((5,), 0.2, dtype=torch.float64), var) - (
        0.5 * math.log(2 * math.pi * math.e * var)
    )
    x = torch.arange(5)
    low = float(KDEEstimator(noise_var=var, bound="lower").input_information(x, centres))
    up = float(KDEEstimator(noise_var=var, bound="upper").input_information(x, centres))
    assert low < true_mi < up
    # the entropy bounds bracket the numerically integrated entropy too
    h_true = true_mi + 0.5 * math.log(2 * math.pi * math.e * var)
    assert float(kde_entropy(centres, noise_var=var, bound="lower")) < h_true
    assert float(kde_entropy(centres, noise_var=var, bound="upper")) > h_true


def test_label_information_with_class_points_is_bracketed():
    # T = mu_y exactly: H(T|Y) is the noise entropy (exact), H(T) a 2-component mixture.
    labels = torch.tensor([0] * 30 + [1] * 10)
    mu = torch.tensor([0.0, 1.0], dtype=torch.float64)
    t = mu[labels][:, None]
    var = 0.25
    true_mi = _mixture_entropy_1d(mu, torch.tensor([0.75, 0.25], dtype=torch.float64), var) - (
        0.5 * math.log(2 * math.pi * math.e * var)
    )
    low = float(KDEEstimator(noise_var=var, bound="lower").label_information(t, labels))
    up = float(KDEEstimator(noise_var=var, bound="upper").label_information(t, labels))
    assert low < true_mi < up
    h_y = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert up < h_y


def test_bounds_order_and_decrease_with_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen)
    t = torch.tanh(x @ torch.randn(5, 4, generator=gen))
    previous_up = previous_low = math.inf
    for var in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        up = float(KDEEstimator(noise_var=var).input_information(x, t))
        low = float(KDEEstimator(noise_var=var, bound="lower").input_information(x, t))
        assert 0.0 <= low <= up <= math.log(300) + 1e-12
        assert up < previous_up and low < previous_low
        previous_up, previous_low = up, low


def test_limits_far_apart_and_identical_points():
    far = 100.0 * torch.arange(50, dtype=torch.float64)[:, None]
    est = KDEEstimator(noise_var=0.1)
    assert float(est.input_information(torch.arange(50), far)) == pytest.approx(math.log(50))
    same = torch.zeros(50, 3)
    assert float(est.input_information(torch.arange(50), same)) == pytest.approx(0.0, abs=1e-12)


def test_identity_labels_give_input_information_and_constant_labels_zero():
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(120, 3, generator=gen)
    est = KDEEstimator(noise_var=0.5)
    ids = torch.arange(120)
    assert float(est.label_information(t, ids)) == pytest.approx(
        float(est.input_information(torch.randn(120, 2, generator=gen), t)), abs=1e-12
    )
    assert float(est.label_information(t, torch.zeros(120, dtype=torch.long))) == pytest.approx(
        0.0, abs=1e-12
    )


def test_chunked_equals_dense_and_invariances():
    gen = torch.Generator().manual_seed(2)
    t = torch.randn(157, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (157,), generator=gen)
    dense = float(kde_mutual_information(t, y, chunk_size=157, discrete_groups=True))
    for chunk in (1, 10, 64):
        chunked = kde_mutual_information(t, y, chunk_size=chunk, discrete_groups=True)
        assert float(chunked) == pytest.approx(dense, abs=1e-10)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    perm = torch.randperm(157, generator=gen)
    assert float(kde_mutual_information(t @ q + 3.0, y)) == pytest.approx(dense, abs=1e-10)
    assert float(kde_mutual_information(t[perm], y[perm])) == pytest.approx(dense, abs=1e-10)


def test_bad_parameters_and_input():
    with pytest.raises(ValueError, match="`noise_var` must be a finite number > 0"):
        KDEEstimator(noise_var=-1.0)
    with pytest.raises(ValueError, match="`bound` must be one of"):
        KDEEstimator(bound="middle")
    with pytest.raises(ValueError, match="`t` has 3 samples but `y` has 2"):
        kde_mutual_information(torch.randn(3, 2), torch.arange(2))


def test_continuous_y_is_grouped_by_distinct_rows_as_the_readme_says():
    # KDE treats y as discrete: distinct continuous rows are distinct groups, so with all
    # rows distinct it measures I(X + noise; row identity), the value of labels 0..n-1.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen)
    y = x[:, :1] + 0.1 * torch.randn(200, 1, generator=gen)
    estimator = get_estimator("kde", noise_var=0.1)
    by_rows = estimator.mutual_information(x, y)
    assert float(by_rows) == pytest.approx(
        float(estimator.mutual_information(x, torch.arange(200))), rel=1e-12
    )
    repeated = torch.cat([y[:100], y[:100]])  # 100 distinct rows, each twice
    assert float(estimator.mutual_information(torch.cat([x[:100], x[:100]]), repeated)) == (
        pytest.approx(float(estimator.mutual_information(x[:100], torch.arange(100))), rel=1e-9)
    )
