"""Matrix-based Renyi alpha-entropy and MI: closed forms, invariances, rules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lit_infobottleneck.estimators._kernels import (
    MEDIAN_MAX_SAMPLES,
    median_distance,
    silverman_sigma,
)
from lit_infobottleneck.estimators.registry import get_estimator
from lit_infobottleneck.estimators.renyi import (
    RenyiEstimator,
    gram_matrix,
    matrix_entropy,
    renyi_entropy,
    renyi_joint_entropy,
    renyi_mutual_information,
)

ALPHAS = (0.5, 1.01, 2.0, 3.0)


def closed_form_renyi(counts, alpha: float) -> float:
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(np.log(np.sum(p**alpha)) / (1.0 - alpha))


def labels_from_counts(counts, seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((c,), i, dtype=torch.int64) for i, c in enumerate(counts)])
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))
    return labels[perm]


def dense_gaussian_gram(x: torch.Tensor, sigma: float) -> torch.Tensor:
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return torch.exp(-sq / (2.0 * sigma**2))


# ------------------------------------------------------------------ closed forms (delta kernel)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("counts", [[5, 5], [1, 2, 3, 4], [10, 1], [3, 3, 3, 3, 3, 1], [7]])
def test_delta_kernel_entropy_is_renyi_entropy_of_empirical_pmf(counts, alpha):
    y = labels_from_counts(counts)
    got = renyi_entropy(y, discrete=True, alpha=alpha)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert abs(got.item() - closed_form_renyi(counts, alpha)) < 1e-8


@pytest.mark.parametrize("alpha", (1.01, 2.0))
def test_mi_with_deterministic_function_of_labels_is_its_entropy(alpha):
    y = torch.randint(0, 6, (90,), generator=torch.Generator().manual_seed(1))
    fy = y % 3
    expected = closed_form_renyi(torch.bincount(fy).tolist(), alpha)
    mi = renyi_mutual_information(y, fy, discrete_x=True, alpha=alpha)
    mi_rev = renyi_mutual_information(fy, y, discrete_x=True, alpha=alpha)
    assert abs(mi.item() - expected) < 1e-8
    assert abs(mi_rev.item() - expected) < 1e-8
    # The joint entropy of y and f(y) is the entropy of y.
    joint = renyi_joint_entropy(y, fy, discrete_x=True, alpha=alpha)
    assert abs(joint.item() - closed_form_renyi(torch.bincount(y).tolist(), alpha)) < 1e-8


@pytest.mark.parametrize("alpha", (1.01, 2.0))
def test_product_design_gives_zero_mi(alpha):
    # Every pair (a, b) appears n_a * m_b times: the empirical joint pmf is the product of
    # (non-uniform) marginals, so the Renyi entropies add and the MI is exactly 0.
    n_a, m_b = [1, 2, 3], [2, 1, 1, 4]
    pairs = [(a, b) for a, ca in enumerate(n_a) for b, cb in enumerate(m_b) for _ in range(ca * cb)]
    x = torch.tensor([p[0] for p in pairs])
    y = torch.tensor([p[1] for p in pairs])
    mi = renyi_mutual_information(x, y, discrete_x=True, alpha=alpha)
    assert abs(mi.item()) < 1e-8
    joint = renyi_joint_entropy(x, y, discrete_x=True, alpha=alpha)
    expected = closed_form_renyi(n_a, alpha) + closed_form_renyi(m_b, alpha)
    assert abs(joint.item() - expected) < 1e-8


def test_narrow_kernel_on_distinct_points_gives_log_n_and_label_entropy():
    # sigma far below the point spacing: K = I, so S = log n and I(X;Y) = H_alpha(Y).
    n = 40
    x = torch.arange(n, dtype=torch.float64)[:, None] * 2.0
    y = torch.arange(n) % 4
    ent = renyi_entropy(x, sigma=0.05, standardize=False)
    assert abs(ent.item() - math.log(n)) < 1e-8
    mi = renyi_mutual_information(x, y, sigma=0.05, standardize=False)
    assert abs(mi.item() - math.log(4)) < 1e-8


# ------------------------------------------------------------------------------ Gram matrix


@pytest.mark.parametrize("chunk_size", [1, 4, 13, 100])
def test_chunked_gram_equals_dense_formula(chunk_size):
    x = torch.randn(13, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    got = gram_matrix(x, sigma=0.7, standardize=False, chunk_size=chunk_size)
    torch.testing.assert_close(got, dense_gaussian_gram(x, 0.7), rtol=0, atol=1e-10)
    # Standardised data with the Silverman rule, checked against the stated formula.
    z = (x - x.mean(0)) / x.std(0)
    n, d = z.shape
    sigma = (4 / (d + 2)) ** (1 / (d + 4)) * n ** (-1 / (d + 4))
    got = gram_matrix(x, chunk_size=chunk_size)
    torch.testing.assert_close(got, dense_gaussian_gram(z, sigma), rtol=0, atol=1e-10)


def test_label_gram_is_delta_kernel():
    y = torch.tensor([0, 2, 2, 1, 0])
    k = gram_matrix(y, discrete=True, chunk_size=2)
    onehot = torch.nn.functional.one_hot(y).to(torch.float64)
    torch.testing.assert_close(k, onehot @ onehot.T, rtol=0, atol=0)


# --------------------------------------------------------------------------------- sigma rules


def test_silverman_rule_value():
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    z = (x - x.mean(0)) / x.std(0)
    expected = (4 / 5) ** (1 / 7) * 200 ** (-1 / 7)
    assert abs(silverman_sigma(z).item() - expected) < 1e-12
    # Unstandardised: scaled by the root-mean variance of the columns.
    w = x * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    s = w.var(0).mean().sqrt().item()
    assert abs(silverman_sigma(w).item() - s * expected) < 1e-12


def test_median_rule_value():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    # Distances 1, 3, 7, 2, 6, 4: lower median 3.
    assert median_distance(x).item() == pytest.approx(3.0, abs=1e-12)
    assert median_distance(x, chunk_size=1).item() == pytest.approx(3.0, abs=1e-12)
    # Three of six distances are 0: fall back to the median of the non-zero ones.
    dup = torch.tensor([[0.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
    assert median_distance(dup).item() == pytest.approx(1.0, abs=1e-12)
    assert median_distance(torch.zeros(5, 2, dtype=torch.float64)).item() == 1.0
    # The Gram matrix uses it.
    y = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    d = torch.cdist(y, y)
    med = torch.sort(d[torch.triu(torch.ones(9, 9, dtype=torch.bool), 1)]).values[(36 - 1) // 2]
    got = gram_matrix(y, sigma="median", standardize=False)
    torch.testing.assert_close(got, dense_gaussian_gram(y, med.item()), rtol=0, atol=1e-10)


def test_median_rule_subsamples_large_inputs_deterministically():
    x = torch.randn(MEDIAN_MAX_SAMPLES + 200, 1, dtype=torch.float64)
    a, b = median_distance(x), median_distance(x)
    assert a.item() == b.item()
    # Median |X - X'| of N(0, 1) is sqrt(2) * 0.6745; the subset estimate is close to it.
    assert abs(a.item() - math.sqrt(2) * 0.6745) < 0.1


# ------------------------------------------------------------------------------ invariances


def _gaussian_pair(n: int, rho: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    noise = torch.randn(n, 1, dtype=torch.float64, generator=gen)
    y = rho * x[:, :1] + math.sqrt(1 - rho**2) * noise
    return x, y


@pytest.mark.parametrize("sigma", ["silverman", "median"])
def test_invariances(sigma):
    x, y = _gaussian_pair(120, 0.7, seed=5)
    base = renyi_mutual_information(x, y, sigma=sigma).item()
    scaled = renyi_mutual_information(
        x * torch.tensor([1e-3, 50.0], dtype=torch.float64) + 4.0, y * 7.0, sigma=sigma
    ).item()
    perm = torch.randperm(120, generator=torch.Generator().manual_seed(6))
    permuted = renyi_mutual_information(x[perm], y[perm], sigma=sigma).item()
    swapped = renyi_mutual_information(y, x, sigma=sigma).item()
    assert abs(scaled - base) < 1e-8
    assert abs(permuted - base) < 1e-8
    assert abs(swapped - base) < 1e-8
    # Labels too: swap the discrete side to x.
    labels = (y[:, 0] > 0).long()
    a = renyi_mutual_information(x, labels, sigma=sigma).item()
    b = renyi_mutual_information(labels, x, discrete_x=True, discrete_y=False, sigma=sigma)
    assert abs(a - b.item()) < 1e-8


def test_dependent_gaussians_have_larger_mi_than_independent():
    x, y = _gaussian_pair(300, 0.9, seed=7)
    x_ind, y_ind = _gaussian_pair(300, 0.0, seed=8)
    dep = renyi_mutual_information(x[:, :1], y).item()
    ind = renyi_mutual_information(x_ind[:, :1], y_ind).item()
    assert dep > 3 * ind and dep - ind > 0.3


def test_mi_bounded_by_marginal_entropies():
    x, y = _gaussian_pair(150, 0.5, seed=9)
    sx = renyi_entropy(x).item()
    sy = renyi_entropy(y).item()
    sxy = renyi_joint_entropy(x, y).item()
    mi = renyi_mutual_information(x, y).item()
    assert abs(mi - (sx + sy - sxy)) < 1e-10
    assert max(sx, sy) - 1e-10 <= sxy <= math.log(150) + 1e-10
    assert 0.0 <= mi <= min(sx, sy)


def test_matrix_entropy_of_identity_and_rank_one():
    assert abs(matrix_entropy(torch.eye(8, dtype=torch.float64), 2.0).item() - math.log(8)) < 1e-12
    ones = torch.ones(8, 8, dtype=torch.float64)
    assert abs(matrix_entropy(ones, 1.01).item()) < 1e-10


# ------------------------------------------------------------------------- estimator and API


def test_registered_estimator():
    est = get_estimator("renyi", alpha=2.0, sigma="median")
    assert isinstance(est, RenyiEstimator)
    assert est.params() == {"alpha": 2.0, "sigma": "median", "standardize": True}
    t, _ = _gaussian_pair(60, 0.5, seed=10)
    labels = (t[:, 0] > 0).long()
    got = est.label_information(t, labels)
    want = renyi_mutual_information(t, labels, alpha=2.0, sigma="median")
    assert got.item() == pytest.approx(want.item(), abs=1e-12)
    inp = est.input_information(torch.randn(60, 4, dtype=torch.float64), t)
    assert inp.dim() == 0 and torch.isfinite(inp)


def test_accepts_numpy_and_trailing_shapes():
    x = np.random.default_rng(0).normal(size=(20, 2, 3))
    got = renyi_entropy(x)
    want = renyi_entropy(torch.from_numpy(x.reshape(20, 6)))
    assert got.item() == pytest.approx(want.item(), abs=1e-12)


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("alpha", [1, 1.0])
def test_alpha_one_is_refused_with_hint(alpha):
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match=r"alpha=1\.01"):
        renyi_entropy(x, alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha=1\.01"):
        RenyiEstimator(alpha=alpha)


@pytest.mark.parametrize("alpha", [0.0, -2.0, float("nan"), "two"])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        renyi_mutual_information(torch.randn(10, 2), torch.randn(10, 1), alpha=alpha)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf"), "scott", None])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        renyi_entropy(torch.randn(10, 2), sigma=sigma)
    with pytest.raises(ValueError, match="sigma"):
        RenyiEstimator(sigma=sigma)


def test_bad_input():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="10 samples but `y` has 9"):
        renyi_mutual_information(x, torch.randn(9, 1))
    with pytest.raises(ValueError, match="10 samples but `y` has 9"):
        renyi_mutual_information(x, torch.zeros(9, dtype=torch.int64))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        renyi_mutual_information(bad, torch.randn(10, 1))
    with pytest.raises(ValueError, match="NaN/Inf"):
        renyi_entropy(bad)
    with pytest.raises(ValueError, match="empty"):
        renyi_entropy(torch.zeros(0, 2))
    with pytest.raises(ValueError, match="empty"):
        renyi_mutual_information(torch.zeros(0, 2), torch.zeros(0, 1))
    with pytest.raises(ValueError, match="integers"):
        renyi_entropy(torch.randn(10), discrete=True)
    with pytest.raises(ValueError, match="chunk_size"):
        renyi_entropy(x, chunk_size=0)
