"""HSIC and normalised HSIC: dense formula, closed form, invariances, gradients, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from lit_infobottleneck.estimators._kernels import median_distance
from lit_infobottleneck.estimators.hsic import HSICEstimator, hsic, normalized_hsic
from lit_infobottleneck.estimators.registry import get_estimator


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dense_hsic(k: torch.Tensor, lmat: torch.Tensor) -> torch.Tensor:
    n = k.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    return torch.trace(k @ h @ lmat @ h) / (n - 1) ** 2


def dense_gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return torch.exp(-sq / (2.0 * sigma**2))


def dense_delta(y: torch.Tensor) -> torch.Tensor:
    return (y[:, None] == y[None, :]).to(torch.float64)


def _data(n: int = 17, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = _gen(seed)
    x = torch.randn(n, 3, dtype=torch.float64, generator=gen)
    y = torch.cat([x[:, :1] ** 2, torch.randn(n, 1, dtype=torch.float64, generator=gen)], 1)
    labels = torch.randint(0, 3, (n,), generator=gen)
    return x, y, labels


# ---------------------------------------------------------------------- against dense formula


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 17, 50])
def test_chunked_hsic_equals_dense_formula(chunk_size):
    x, y, labels = _data()
    k = dense_gaussian(x, 0.8)
    lmat = dense_gaussian(y, 1.3)
    want = dense_hsic(k, lmat)
    got = hsic(x, y, sigma_x=0.8, sigma_y=1.3, chunk_size=chunk_size)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    want_n = want / torch.sqrt(dense_hsic(k, k) * dense_hsic(lmat, lmat))
    got_n = normalized_hsic(x, y, sigma_x=0.8, sigma_y=1.3, chunk_size=chunk_size)
    torch.testing.assert_close(got_n, want_n, rtol=1e-10, atol=1e-12)
    # Median rule on each side, and the delta kernel for labels.
    kx = dense_gaussian(x, median_distance(x).item())
    got = hsic(x, labels, chunk_size=chunk_size)
    torch.testing.assert_close(got, dense_hsic(kx, dense_delta(labels)), rtol=1e-10, atol=1e-12)
    ky = dense_gaussian(y, median_distance(y).item())
    got = normalized_hsic(x, y, chunk_size=chunk_size)
    want = dense_hsic(kx, ky) / torch.sqrt(dense_hsic(kx, kx) * dense_hsic(ky, ky))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_delta_kernels_match_closed_form_in_pmfs():
    gen = _gen(1)
    n = 60
    a = torch.randint(0, 3, (n,), generator=gen)
    b = (a + torch.randint(0, 2, (n,), generator=gen)) % 4  # dependent on a
    joint = torch.zeros(3, 4, dtype=torch.float64)
    joint.index_put_((a, b), torch.ones(n, dtype=torch.float64), accumulate=True)
    joint /= n
    pa, pb = joint.sum(1), joint.sum(0)
    want = n**2 / (n - 1) ** 2 * ((joint - pa[:, None] * pb[None, :]) ** 2).sum()
    got = hsic(a, b, discrete_x=True, chunk_size=7)
    assert abs(got.item() - want.item()) < 1e-12
    assert want.item() > 1e-3  # the check is not vacuous


# ------------------------------------------------------------------------------- properties


def test_normalized_hsic_of_a_variable_with_itself_is_one():
    x, _, labels = _data(40, seed=2)
    assert abs(normalized_hsic(x, x).item() - 1.0) < 1e-12
    assert abs(normalized_hsic(x, x, sigma_x=0.5, sigma_y=0.5, chunk_size=3).item() - 1.0) < 1e-12
    assert abs(normalized_hsic(labels, labels, discrete_x=True).item() - 1.0) < 1e-12


def test_product_design_is_exactly_independent():
    n_a, m_b = [1, 2, 3], [2, 1, 1, 4]
    pairs = [(a, b) for a, ca in enumerate(n_a) for b, cb in enumerate(m_b) for _ in range(ca * cb)]
    x = torch.tensor([p[0] for p in pairs])
    y = torch.tensor([p[1] for p in pairs])
    assert abs(hsic(x, y, discrete_x=True).item()) < 1e-12
    assert abs(normalized_hsic(x, y, discrete_x=True).item()) < 1e-12
    # Continuous x whose values are the product-design codes: still exactly independent.
    xc = x.to(torch.float64)[:, None]
    assert abs(normalized_hsic(xc, y, sigma_x=0.7, chunk_size=5).item()) < 1e-12


def test_large_independent_sample_is_near_zero_and_dependent_is_not():
    gen = _gen(3)
    n = 1500
    x = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    y_ind = torch.randn(n, 2, dtype=torch.float64, generator=gen)
    y_dep = x[:, :1] ** 2 + 0.3 * torch.randn(n, 1, dtype=torch.float64, generator=gen)
    ind = normalized_hsic(x, y_ind).item()
    dep = normalized_hsic(x, y_dep).item()
    assert 0.0 <= ind < 0.01
    assert dep > 0.05 and dep > 10 * ind
    assert dep <= 1.0


def test_symmetry_and_permutation_invariance():
    x, y, labels = _data(30, seed=4)
    a = hsic(x, y, sigma_x=0.9, sigma_y=2.0).item()
    b = hsic(y, x, sigma_x=2.0, sigma_y=0.9).item()
    assert abs(a - b) < 1e-12
    a = normalized_hsic(x, y).item()
    assert abs(a - normalized_hsic(y, x).item()) < 1e-12
    perm = torch.randperm(30, generator=_gen(5))
    assert abs(a - normalized_hsic(x[perm], y[perm], chunk_size=4).item()) < 1e-12
    c = normalized_hsic(x, labels).item()
    assert abs(c - normalized_hsic(labels, x, discrete_x=True, discrete_y=False).item()) < 1e-12
    # The median rule makes nHSIC invariant to a global rescaling of either variable.
    assert abs(a - normalized_hsic(1e3 * x, 1e-2 * y).item()) < 1e-10


def test_constant_variable_gives_zero():
    x, _, _ = _data(12, seed=6)
    assert normalized_hsic(x, torch.ones(12, 1, dtype=torch.float64)).item() == 0.0
    assert abs(hsic(x, torch.ones(12, 1, dtype=torch.float64)).item()) < 1e-12


# -------------------------------------------------------------------------------- gradients


def test_gradient_flows_through_normalized_hsic():
    x, y, labels = _data(25, seed=7)
    x = x.clone().requires_grad_(True)
    y = y.clone().requires_grad_(True)
    gx, gy = torch.autograd.grad(normalized_hsic(x, y, chunk_size=4), (x, y))
    for g in (gx, gy):
        assert torch.isfinite(g).all() and g.abs().sum() > 1e-6
    (gl,) = torch.autograd.grad(normalized_hsic(x, labels), x)
    assert torch.isfinite(gl).all() and gl.abs().sum() > 1e-6
    # Float32 input: the conversion to float64 is differentiable too.
    x32 = x.detach().float().requires_grad_(True)
    (g32,) = torch.autograd.grad(hsic(x32, labels), x32)
    assert g32.dtype == torch.float32 and torch.isfinite(g32).all() and g32.abs().sum() > 0


@pytest.mark.parametrize("sigma", [0.9, "median"])
def test_gradcheck(sigma):
    x, y, _ = _data(8, seed=8)
    x = x.clone().requires_grad_(True)
    y = y.clone().requires_grad_(True)

    def fn(a, b):
        return normalized_hsic(a, b, sigma_x=sigma, sigma_y=sigma, chunk_size=3)

    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(
        lambda a, b: hsic(a, b, sigma_x=sigma, sigma_y=sigma, chunk_size=3), (x, y)
    )


# ------------------------------------------------------------------------- estimator and API


def test_registered_estimator_returns_unitless_nhsic():
    x, y, labels = _data(30, seed=9)
    est = get_estimator("hsic")
    assert isinstance(est, HSICEstimator)
    params = est.params()
    assert params["sigma"] == "median" and params["normalized"] is True
    assert est.unit == "nHSIC"
    assert est.mutual_information(x, y).item() == pytest.approx(
        normalized_hsic(x, y).item(), abs=1e-14
    )
    assert est.label_information(x, labels).item() == pytest.approx(
        normalized_hsic(x, labels).item(), abs=1e-14
    )
    raw = HSICEstimator(sigma=1.5, normalized=False)
    assert raw.mutual_information(x, y).item() == pytest.approx(
        hsic(x, y, sigma_x=1.5, sigma_y=1.5).item(), abs=1e-14
    )
    assert raw.unit == "HSIC"
    assert math.isfinite(est.input_information(torch.randn(30, 5), x).item())


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), "silverman", None])
def test_bad_sigma(sigma):
    x, y, _ = _data(10)
    with pytest.raises(ValueError, match="sigma"):
        hsic(x, y, sigma_x=sigma)
    with pytest.raises(ValueError, match="sigma"):
        normalized_hsic(x, y, sigma_y=sigma)
    with pytest.raises(ValueError, match="sigma"):
        HSICEstimator(sigma=sigma)


def test_bad_input():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="10 samples but `y` has 9"):
        hsic(x, torch.randn(9, 1))
    with pytest.raises(ValueError, match="10 samples but `y` has 9"):
        normalized_hsic(x, torch.zeros(9, dtype=torch.int64))
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/Inf"):
        normalized_hsic(torch.randn(10, 1), bad)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN/Inf"):
        hsic(bad, torch.randn(10, 1))
    with pytest.raises(ValueError, match="empty"):
        hsic(torch.zeros(0, 2), torch.zeros(0, 1))
    with pytest.raises(ValueError, match="empty"):
        normalized_hsic(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least 2"):
        hsic(torch.randn(1, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="chunk_size"):
        hsic(x, x, chunk_size=0)
