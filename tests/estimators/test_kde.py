import math

import pytest
import torch

from lit_infobottleneck.estimators import get_estimator
from lit_infobottleneck.estimators.kde import (
    AUTO_NOISE_FRACTION,
    KDEEstimator,
    auto_noise_var,
    kde_entropy,
    kde_mutual_information,
    median_squared_distance,
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


def _pairwise_median(t: torch.Tensor) -> float:
    """Lower median of the squared distances between pairs i < j, by brute force."""
    t = t.to(torch.float64)
    i, j = torch.triu_indices(t.shape[0], t.shape[0], offset=1)
    return float(((t[i] - t[j]) ** 2).sum(1).median())


def test_auto_noise_var_is_a_tenth_of_the_median_squared_distance():
    gen = torch.Generator().manual_seed(3)
    t = torch.relu(torch.randn(300, 40, generator=gen, dtype=torch.float64))
    assert AUTO_NOISE_FRACTION == 0.1
    assert auto_noise_var(t) == pytest.approx(0.1 * _pairwise_median(t), rel=1e-12)
    assert median_squared_distance(t) == pytest.approx(_pairwise_median(t), rel=1e-12)
    # mostly coinciding rows: the median of the pairs that do not coincide
    collapsed = torch.cat([torch.zeros(90, 3), torch.eye(3).repeat(4, 1)])
    assert median_squared_distance(collapsed) > 0
    # large n: a seeded subset of 2,000 rows, deterministic and close to the full median
    big = torch.randn(5000, 8, generator=gen, dtype=torch.float64)
    assert median_squared_distance(big) == median_squared_distance(big)
    assert median_squared_distance(big) == pytest.approx(_pairwise_median(big[:2500]), rel=0.03)
    # a layer of a few distinct rows among many copies is not mistaken for a constant one
    rare = torch.zeros(5000, 2)
    rare[1234, 0] = 1.0
    assert median_squared_distance(rare) == pytest.approx(1.0)


def test_auto_noise_var_is_close_to_saxe_s_fixed_value_on_a_small_tanh_layer():
    # The 4,096 inputs of the 12-bit task of Shwartz-Ziv & Tishby (every 0/1 pattern) through
    # a random 12-10 tanh layer (weights N(0, 1/12) clipped at 2 sd, no bias): 0.1 x median
    # gives 0.21-0.27 over seeds 0-2 (Saxe et al. 2018 fixed 0.1); the 7-unit layer after
    # it gives 0.08-0.11. With +-1 inputs instead of 0/1 the 10-unit layer gives 0.71-0.80.
    x = ((torch.arange(4096)[:, None] >> torch.arange(12)) & 1).to(torch.float64)
    values = []
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(12, 10, generator=gen, dtype=torch.float64).clamp(-2, 2) / math.sqrt(12)
        values.append(auto_noise_var(torch.tanh(x @ w)))
    assert all(0.15 < v < 0.3 for v in values)


def test_kde_auto_calibrates_per_layer_and_freezes():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    t = torch.relu(x @ torch.randn(6, 64, generator=gen, dtype=torch.float64))
    y = torch.randint(0, 3, (200,), generator=gen)
    auto = KDEEstimator(noise_var="auto")
    assert auto.params() == {"noise_var": "auto", "bound": "upper"}
    assert KDEEstimator.treats_x_by_identity
    calibration = auto.calibration(t)
    assert calibration == {"noise_var": auto_noise_var(t)}
    assert type(calibration["noise_var"]) is float
    assert KDEEstimator(noise_var=0.3).calibration(t) == {}
    frozen = auto.with_params(**calibration)
    assert (
        isinstance(frozen, KDEEstimator)
        and frozen.params()["noise_var"] == calibration["noise_var"]
    )
    assert frozen.with_params(bound="lower").params() == {**frozen.params(), "bound": "lower"}
    # "auto" calibrates on the data of each call: the same values as the frozen estimator
    for a, b in zip(
        auto.layer_information(x, t, y), frozen.layer_information(x, t, y), strict=True
    ):
        assert float(a) == pytest.approx(float(b), abs=1e-12)
    assert float(auto.input_information(x, t)) == pytest.approx(
        float(frozen.input_information(x, t)), abs=1e-12
    )
    assert float(auto.label_information(t, y)) == pytest.approx(
        float(frozen.label_information(t, y)), abs=1e-12
    )
    # noise added to x in the generic call: calibrated on x
    assert float(auto.mutual_information(t, y)) == pytest.approx(
        float(kde_mutual_information(t, y, noise_var=auto_noise_var(t))), abs=1e-12
    )
    assert float(kde_entropy(t, noise_var="auto")) == pytest.approx(
        float(kde_entropy(t, noise_var=auto_noise_var(t))), abs=1e-12
    )
    # relative noise: rescaling the layer leaves "auto" unchanged, not a frozen value
    assert float(auto.input_information(x, 4.0 * t)) == pytest.approx(
        float(auto.input_information(x, t)), abs=1e-12
    )
    assert float(frozen.input_information(x, 4.0 * t)) > float(auto.input_information(x, t)) + 0.1


def test_kde_auto_on_a_wide_relu_layer_does_not_saturate():
    # 512 ReLU units on 1,000 Gaussian inputs: squared distances in the hundreds, so 0.1
    # resolves every sample (log n); "auto" (35.0 here) measures 4.68 nats of 6.91.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 64, generator=gen)
    t = torch.relu(x @ torch.randn(64, 512, generator=gen) / 8)
    log_n = math.log(1000)
    assert float(KDEEstimator(noise_var=0.1).input_information(x, t)) >= 0.999 * log_n
    auto = float(KDEEstimator(noise_var="auto").input_information(x, t))
    assert 0.3 * log_n < auto < 0.97 * log_n


def test_kde_auto_refuses_a_constant_layer_and_unknown_rules():
    auto = KDEEstimator(noise_var="auto")
    with pytest.raises(ValueError, match=r"constant layer has no scale .*noise_var='auto'"):
        auto.calibration(torch.full((30, 4), 2.5))
    with pytest.raises(ValueError, match="constant layer"):
        auto.input_information(torch.randn(30, 2), torch.full((30, 4), 2.5))
    with pytest.raises(ValueError, match="constant layer"):
        auto.calibration(torch.ones(1, 4))  # a single sample has no pairs
    with pytest.raises(ValueError, match=r"`noise_var` must be a finite number > 0 or 'auto'"):
        KDEEstimator(noise_var="median")
    with pytest.raises(ValueError, match=r"`noise_var` must be a finite number > 0 or 'auto'"):
        kde_entropy(torch.randn(5, 2), noise_var="silverman")
