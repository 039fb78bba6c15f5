import itertools
import math

import pytest
import torch

from lit_infobottleneck.estimators.binning import (
    BinningEstimator,
    binning_entropy,
    binning_mutual_information,
    discrete_mutual_information,
    discretize,
)


def _table_samples(table: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (a, b) with exactly table[a][b] occurrences of each pair."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    return torch.tensor(a), torch.tensor(b)


def _table_mi(table: list[list[int]]) -> float:
    joint = torch.tensor(table, dtype=torch.float64)
    joint = joint / joint.sum()
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    mask = joint > 0
    return float((joint[mask] * (joint[mask] / outer[mask]).log()).sum())


@pytest.mark.parametrize(
    "table",
    [
        [[10, 0], [0, 30]],
        [[5, 5], [5, 5]],
        [[12, 3, 1], [2, 9, 4], [0, 1, 20]],
        [[7, 1, 0, 2], [0, 6, 6, 1]],
    ],
)
def test_plugin_mi_equals_exact_mi_of_the_table(table):
    a, b = _table_samples(table)
    assert float(discrete_mutual_information(a, b)) == pytest.approx(_table_mi(table), abs=1e-12)
    assert float(binning_mutual_information(a, b)) == pytest.approx(_table_mi(table), abs=1e-12)


def test_mi_of_a_discrete_variable_with_itself_is_its_entropy():
    values = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    h = -sum(p * math.log(p) for p in (0.5, 0.3, 0.2))
    assert float(binning_entropy(values)) == pytest.approx(h, abs=1e-12)
    assert float(binning_mutual_information(values, values)) == pytest.approx(h, abs=1e-12)


def test_label_information_never_exceeds_label_entropy():
    gen = torch.Generator().manual_seed(0)
    est = BinningEstimator(bins=30)
    for d in (1, 4, 32):
        t = torch.randn(300, d, generator=gen)
        y = torch.randint(0, 3, (300,), generator=gen)
        h_y = float(binning_entropy(y))
        assert float(est.label_information(t, y)) <= h_y + 1e-12
    # every row distinct in 32-d: the plug-in saturates at H(Y) (the known overfit)
    assert float(est.label_information(t, y)) == pytest.approx(h_y, abs=1e-12)


def test_input_information_of_a_deterministic_map_is_the_binned_entropy():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(500, 8, generator=gen)
    t = torch.tanh(x @ torch.randn(8, 3, generator=gen))
    est = BinningEstimator(bins=10)
    codes = discretize(t, bins=10)
    assert float(est.input_information(x, t)) == pytest.approx(float(binning_entropy(t, bins=10)))
    assert int(codes.max()) + 1 <= 500
    assert float(est.input_information(x, t)) <= math.log(500)


def test_input_information_grows_with_the_bin_count():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2000, 4, generator=gen)
    t = torch.tanh(x[:, :2])
    values = [float(BinningEstimator(bins=b).input_information(x, t)) for b in (2, 4, 8, 16, 64)]
    assert all(lo < hi for lo, hi in itertools.pairwise(values))
    assert values[-1] <= math.log(2000) + 1e-12


def test_fixed_range_and_bin_width():
    t = torch.tensor([[-2.0], [-0.5], [0.2], [0.9], [5.0]])
    codes_range = discretize(t, bins=2, value_range=(-1.0, 1.0))
    assert codes_range.tolist() == [0, 0, 1, 1, 1]  # outside values go to the edge bins
    by_width = discretize(t, bin_width=1.0, value_range=(-1.0, 1.0))
    assert by_width.tolist() == codes_range.tolist()
    x = torch.linspace(0, 1, 101)[:, None]
    assert torch.equal(discretize(x, bins=4), discretize(x, bin_width=0.25))


def test_constant_activations_carry_no_information():
    t = torch.ones(100, 5)
    y = torch.arange(100) % 3
    est = BinningEstimator()
    assert float(est.label_information(t, y)) == 0.0
    assert float(est.input_information(torch.randn(100, 2), t)) == 0.0


def test_invariant_to_permutation_and_symmetric():
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(400, 2, generator=gen), torch.randn(400, 1, generator=gen)
    y = y + x[:, :1]
    perm = torch.randperm(400, generator=gen)
    base = float(binning_mutual_information(x, y, bins=6))
    assert float(binning_mutual_information(x[perm], y[perm], bins=6)) == pytest.approx(base)
    assert float(binning_mutual_information(y, x, bins=6)) == pytest.approx(base)


def test_bad_parameters_and_input():
    with pytest.raises(ValueError, match="`bins` must be an integer >= 2"):
        BinningEstimator(bins=1)
    with pytest.raises(ValueError, match="`bin_width` must be a finite number > 0"):
        BinningEstimator(bin_width=-0.1)
    with pytest.raises(ValueError, match="`value_range` must be"):
        BinningEstimator(value_range=(1.0, -1.0))
    est = BinningEstimator()
    with pytest.raises(ValueError, match="`t` has 5 samples but `y` has 4"):
        est.label_information(torch.randn(5, 2), torch.arange(4))
    with pytest.raises(ValueError, match="`t` contains 1 NaN"):
        est.label_information(torch.tensor([[0.0], [float("nan")]]), torch.arange(2))
