"""Geometry summaries against closed forms: class separation of Gaussian classes with known
means, the participation ratio of isotropic, rank-k and known-spectrum clouds, invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_infobottleneck.geometry import layer_geometry, participation_ratio, within_class_ratio


def gaussian_classes(n_per_class: int, a: float, d: int = 5, seed: int = 0):
    """4 classes with means a e_c (c = 0..3) in d = 5 dims, unit isotropic noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat_interleave(n_per_class)
    means = a * torch.eye(4, d, dtype=torch.float64)
    t = means[y] + torch.randn(4 * n_per_class, d, generator=gen, dtype=torch.float64)
    return t, y


@pytest.mark.parametrize("a", [0.0, 1.0, 4.0, 20.0])
def test_within_class_ratio_of_gaussian_classes_matches_its_closed_form(a):
    # tr S_W / n = d sigma^2 = 5; tr S_B / n = mean_c |a e_c - mean|^2 = (3/4) a^2
    t, y = gaussian_classes(5000, a)
    expected = 5.0 / (5.0 + 0.75 * a * a)
    assert within_class_ratio(t, y) == pytest.approx(expected, abs=0.01)


def test_collapsed_classes_give_zero_and_no_class_structure_gives_one():
    t, y = gaussian_classes(100, 3.0)
    means = torch.stack([t[y == c].mean(0) for c in range(4)])
    assert within_class_ratio(means[y], y) == pytest.approx(0.0, abs=1e-12)
    assert within_class_ratio(t, torch.zeros_like(y)) == pytest.approx(1.0, abs=1e-12)


def test_within_class_ratio_is_invariant_to_relabelling_rotation_scale_and_shift():
    t, y = gaussian_classes(300, 2.0)
    base = within_class_ratio(t, y)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    relabelled = torch.tensor([7, 3, 9, 1])[y]
    assert within_class_ratio(t, relabelled) == pytest.approx(base, rel=1e-12)
    assert within_class_ratio(3.0 * t @ rotation + 5.0, y) == pytest.approx(base, rel=1e-10)
    assert within_class_ratio(t.float(), y) == pytest.approx(base, rel=1e-5)


@pytest.mark.parametrize("d", [1, 10, 40])
def test_participation_ratio_of_an_isotropic_cloud_is_its_dimension(d):
    # sample covariance of n draws: E||C||_F^2 = d + d(d+1)/n, so PR = d / (1 + (d+1)/n)
    n = 20000
    t = torch.randn(n, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    assert participation_ratio(t) == pytest.approx(d / (1 + (d + 1) / n), rel=0.01)


def test_a_rank_k_cloud_in_many_dimensions_has_effective_dimension_k():
    gen = torch.Generator().manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(64, 3, generator=gen, dtype=torch.float64))
    t = torch.randn(20000, 3, generator=gen, dtype=torch.float64) @ basis.T  # (n, 64), rank 3
    assert participation_ratio(t) == pytest.approx(3.0, rel=0.01)


def test_known_spectrum_gives_the_closed_form():
    # variances 4, 1, 1: PR = (4 + 1 + 1)^2 / (16 + 1 + 1) = 2
    gen = torch.Generator().manual_seed(2)
    t = torch.randn(50000, 3, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.0, 1.0])
    assert participation_ratio(t) == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("n,d", [(100, 20), (50, 300)])
def test_gram_and_covariance_paths_agree_with_the_eigenvalues(n, d):
    """d <= n uses the d x d covariance, d > n the n x n Gram matrix: same spectrum."""
    t = torch.randn(n, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = t * torch.linspace(0.1, 3.0, d, dtype=torch.float64)
    centred = (t - t.mean(0)).numpy()
    eig = np.linalg.eigvalsh(centred.T @ centred / (n - 1))
    assert participation_ratio(t) == pytest.approx(eig.sum() ** 2 / (eig**2).sum(), rel=1e-9)


def test_a_constant_layer_has_no_geometry_and_bad_shapes_are_refused():
    constant = torch.ones(10, 4)
    assert layer_geometry(constant, torch.arange(10) % 2) == {
        "within_class_ratio": None,
        "effective_dim": None,
    }
    with pytest.raises(ValueError, match="`t` must be"):
        participation_ratio(torch.ones(5))
    with pytest.raises(ValueError, match="`y` must be"):
        within_class_ratio(torch.randn(10, 2), torch.zeros(9, dtype=torch.long))
