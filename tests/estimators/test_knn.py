import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

from lit_infobottleneck.estimators.knn import (
    kl_entropy,
    ksg_mutual_information,
    prepare_samples,
)
from tests.conftest import gaussian_mi, gaussian_pair


def _ksg_reference(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Textbook KSG algorithm 1 with cKDTree (as NPEET), independent of our code."""
    n = len(x)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    radius = np.nextafter(eps, 0)
    nx = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    return digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1))


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ksg_recovers_gaussian_mi_low_dimension(d, rho):
    x, y = gaussian_pair(5000, d, rho, seed=d)
    estimate = float(ksg_mutual_information(x, y))
    assert abs(estimate - gaussian_mi(d, rho)) < 0.05


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_ksg_five_dimensions_has_its_known_negative_bias(rho):
    # KSG underestimates strongly dependent high-dimensional pairs (Kraskov et al. 2004,
    # Fig. 4; Gao et al. 2015): measured -15 % (rho=0.5) and -24 % (rho=0.9) at n = 5000.
    # We assert the estimate lies in [0.7, 1.0] x truth, and that the euclidean marginal
    # norm (less biased here) is closer.
    x, y = gaussian_pair(5000, 5, rho, seed=5)
    truth = gaussian_mi(5, rho)
    est_max = float(ksg_mutual_information(x, y))
    est_l2 = float(ksg_mutual_information(x, y, metric="euclidean"))
    assert 0.7 * truth < est_max < truth
    assert est_max < est_l2 < truth


def test_ksg_independent_is_near_zero():
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(4000, 2, generator=gen), torch.randn(4000, 2, generator=gen)
    assert abs(float(ksg_mutual_information(x, y))) < 0.02


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("d", [1, 3, 8])
def test_brute_and_tree_equal_the_ckdtree_reference(k, d):
    x, y = gaussian_pair(800, d, 0.7, seed=k + d)
    xs = prepare_samples(x, standardize=True, jitter=1e-10, seed=0)
    ys = prepare_samples(y, standardize=True, jitter=1e-10, seed=1)
    reference = _ksg_reference(xs.numpy(), ys.numpy(), k)
    for backend in ("brute", "tree"):
        ours = float(ksg_mutual_information(x, y, k=k, backend=backend))
        assert ours == pytest.approx(reference, abs=1e-10)
    chunked = ksg_mutual_information(x, y, k=k, backend="brute", chunk_size=13)
    assert float(chunked) == pytest.approx(reference, abs=1e-10)


def test_agrees_with_scikit_learn_regression_1d():
    for seed, rho in [(0, 0.3), (1, 0.6), (2, 0.95)]:
        x, y = gaussian_pair(3000, 1, rho, seed=seed)
        y = torch.sinh(y)  # a monotone map: MI unchanged, k-NN geometry changed
        ref = mutual_info_regression(x.numpy(), y[:, 0].numpy(), n_neighbors=3, random_state=0)
        assert float(ksg_mutual_information(x, y, k=3)) == pytest.approx(ref[0], abs=0.02)


#: scikit-learn adds 1e-10 * max(1, mean|x|) * N(0, 1) to every standardised column
#: (sklearn/feature_selection/_mutual_info.py). For pre-standardised input, mean|x| < 1, so a
#: coordinate moves by < 5e-10 (5 sd) and a distance by < 1e-9: counts agree whenever every
#: distance is more than this away from each point's k-NN radius.
SKLEARN_NOISE_DISTANCE = 2 * 5 * 1e-10


def _pre_jittered(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values rounded to 0.1 (heavy ties), jittered by 1e-2 of their spread (by us, so both
    implementations see the same tie-free data), divided by the std (as scikit-learn)."""
    tied = np.round(values, 1)
    jittered = tied + 1e-2 * tied.std() * rng.standard_normal(tied.shape)
    return jittered / jittered.std()


def _radius_margin(distances: list[np.ndarray], radius: np.ndarray) -> float:
    """Smallest gap between any pairwise distance and the radius of its row (the radius's
    own neighbour excluded): how far the data are from a tie that noise could flip."""
    margin = np.inf
    for d in distances:
        gap = np.abs(d - radius[:, None])
        gap[(d == radius[:, None]) | np.eye(len(d), dtype=bool)] = np.inf
        margin = min(margin, float(gap.min()))
    return margin


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_ksg_equals_scikit_learn_regression_on_shared_tie_free_input(rho, k):
    """docs/benchmarks.md: our KSG agrees with scikit-learn's to 1e-6 on shared input."""
    rng = np.random.default_rng(int(10 * rho) + k)
    z = rng.standard_normal((2000, 2))
    z[:, 1] = rho * z[:, 0] + math.sqrt(1 - rho**2) * z[:, 1]
    x, y = _pre_jittered(z[:, 0], rng), _pre_jittered(np.sinh(z[:, 1]), rng)
    dx, dy = np.abs(x[:, None] - x[None]), np.abs(y[:, None] - y[None])
    joint = np.maximum(dx, dy)
    np.fill_diagonal(joint, np.inf)
    radius = np.sort(joint, axis=1)[:, k - 1]
    assert _radius_margin([dx, dy, joint], radius) > SKLEARN_NOISE_DISTANCE
    reference = mutual_info_regression(x[:, None], y, n_neighbors=k, random_state=0)[0]
    assert reference > 0.01  # dependent data: scikit-learn clips negative estimates to 0
    for backend in ("tree", "brute"):
        ours = ksg_mutual_information(
            torch.from_numpy(x), torch.from_numpy(y), k=k, jitter=0.0, backend=backend
        )
        assert float(ours) == pytest.approx(reference, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_ross_equals_scikit_learn_classif_on_shared_tie_free_input(k):
    rng = np.random.default_rng(k)
    labels = rng.integers(0, 4, 2000)
    x = _pre_jittered(labels + 0.8 * rng.standard_normal(2000), rng)
    d = np.abs(x[:, None] - x[None])
    same_class = labels[:, None] == labels[None]
    np.fill_diagonal(same_class, False)
    radius = np.sort(np.where(same_class, d, np.inf), axis=1)[:, k - 1]
    assert _radius_margin([d], radius) > SKLEARN_NOISE_DISTANCE
    reference = mutual_info_classif(x[:, None], labels, n_neighbors=k, random_state=0)[0]
    assert reference > 0.1
    ours = ksg_mutual_information(torch.from_numpy(x), torch.from_numpy(labels), k=k, jitter=0.0)
    assert float(ours) == pytest.approx(reference, abs=1e-6)


def test_ross_agrees_with_scikit_learn_classif_1d():
    gen = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 4, (3000,), generator=gen)
    x = labels.double()[:, None] + 0.8 * torch.randn(3000, 1, generator=gen, dtype=torch.float64)
    ref = mutual_info_classif(x.numpy(), labels.numpy(), n_neighbors=3, random_state=0)[0]
    assert float(ksg_mutual_information(x, labels)) == pytest.approx(ref, abs=0.02)


def test_ross_on_separable_classes_gives_label_entropy():
    # x determines y exactly, so I(X;Y) = H(Y); classes of unequal size.
    gen = torch.Generator().manual_seed(5)
    probs = torch.tensor([0.5, 0.3, 0.2])
    labels = torch.multinomial(probs, 4000, replacement=True, generator=gen)
    x = 10.0 * labels.double()[:, None] + torch.rand(4000, 2, generator=gen, dtype=torch.float64)
    counts = torch.bincount(labels).double() / 4000
    h_y = float(-(counts * counts.log()).sum())
    assert float(ksg_mutual_information(x, labels)) == pytest.approx(h_y, abs=0.01)


def test_ross_independent_labels_near_zero_and_never_above_label_entropy():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3000, 4, generator=gen)
    labels = torch.randint(0, 10, (3000,), generator=gen)
    est = float(ksg_mutual_information(x, labels))
    assert abs(est) < 0.03
    assert est <= math.log(10)


def test_ross_drops_singleton_classes_and_small_classes_use_smaller_k():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(200, 2, generator=gen)
    labels = torch.randint(0, 2, (200,), generator=gen)
    with_singleton = torch.cat([labels, torch.tensor([5])])
    x_plus = torch.cat([x, torch.randn(1, 2, generator=gen)])
    base = ksg_mutual_information(x, labels, jitter=0.0, standardize=False)
    with_extra = ksg_mutual_information(x_plus, with_singleton, jitter=0.0, standardize=False)
    assert float(with_extra) == pytest.approx(float(base), abs=1e-12)
    tiny_class = torch.cat([labels, torch.tensor([7, 7])])
    x_tiny = torch.cat([x, torch.randn(2, 2, generator=gen)])
    assert math.isfinite(float(ksg_mutual_information(x_tiny, tiny_class)))


def test_invariances():
    x, y = gaussian_pair(2000, 2, 0.8, seed=8)
    base = float(ksg_mutual_information(x, y, jitter=0.0))
    scale = torch.tensor([1e-3, 1e4], dtype=torch.float64)
    assert float(ksg_mutual_information(x * scale, y / scale, jitter=0.0)) == pytest.approx(
        base, abs=1e-9
    )
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(0))
    assert float(ksg_mutual_information(x[perm], y[perm], jitter=0.0)) == pytest.approx(
        base, abs=1e-12
    )
    assert float(ksg_mutual_information(y, x, jitter=0.0)) == pytest.approx(base, abs=1e-12)


def test_duplicates_and_constant_columns_stay_finite():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(500, 3, generator=gen)
    x[:, 1] = 0.0  # a dead unit
    x[:250, :] = 0.0  # half the samples identical (dead ReLU layer)
    y = (x[:, 0] > 0).long()
    for value in (
        ksg_mutual_information(x, x[:, :1] * 2),
        ksg_mutual_information(x, y),
        kl_entropy(x),
    ):
        assert math.isfinite(float(value))
    constant = torch.zeros(300, 2)
    other = torch.randn(300, 1, generator=gen)
    assert abs(float(ksg_mutual_information(constant, other))) < 0.05


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("metric", ["euclidean", "max"])
def test_kozachenko_leonenko_entropy_of_standard_normal(d, metric):
    gen = torch.Generator().manual_seed(d)
    z = torch.randn(5000, d, generator=gen, dtype=torch.float64)
    per_dim = float(kl_entropy(z, metric=metric)) / d
    assert per_dim == pytest.approx(0.5 * math.log(2 * math.pi * math.e), abs=0.05)


@pytest.mark.parametrize("metric", ["euclidean", "max"])
def test_kl_entropy_shifts_by_d_log_c_under_scaling(metric):
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    shift = float(kl_entropy(3.0 * z, metric=metric) - kl_entropy(z, metric=metric))
    assert shift == pytest.approx(2 * math.log(3.0), abs=1e-9)


def test_bad_input_is_refused_with_a_named_argument():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="`x` has 10 samples but `y` has 9"):
        ksg_mutual_information(x, torch.randn(9, 2))
    with pytest.raises(ValueError, match="needs at least 4"):
        ksg_mutual_information(x[:3], x[:3])
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        ksg_mutual_information(x, x, k=0)
    with pytest.raises(ValueError, match="NaN/Inf"):
        ksg_mutual_information(x, torch.full((10, 2), float("nan")))
    with pytest.raises(ValueError, match=r"`y` has dtype torch\.float32 but labels must be"):
        ksg_mutual_information(x, torch.rand(10), discrete_y=True)
    with pytest.raises(ValueError, match="argmax"):
        ksg_mutual_information(x, torch.eye(10, dtype=torch.long), discrete_y=True)
    with pytest.raises(ValueError, match="`backend` must be one of"):
        ksg_mutual_information(x, x, backend="gpu")
    with pytest.raises(ValueError, match="empty"):
        ksg_mutual_information(torch.zeros(0, 2), torch.zeros(0, 2))


@pytest.mark.parametrize("metric", ["euclidean", "max"])
def test_ross_with_repeated_rows_and_independent_labels_is_near_zero(metric):
    # dead or saturated layers repeat rows; ties must be broken by the jitter, not by
    # matrix-product round-off (with which this reads 0.68 nats)
    gen = torch.Generator().manual_seed(12)
    t = torch.randn(30, 8, generator=gen).repeat_interleave(20, 0)
    labels = torch.randint(0, 4, (600,), generator=gen)
    assert abs(float(ksg_mutual_information(t, labels, metric=metric))) < 0.08
