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
    out_of_range_fraction,
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


def _codes_by_definition(x, low, width, last):
    """Bin index floor((x - low) / width) clipped to 0..last, then one code per distinct
    row in lexicographic order, all in int64 (what ``discretize`` computes)."""
    index = torch.floor((x.double() - low) / width).clamp(0, last).to(torch.int64)
    return torch.unique(index, dim=0, return_inverse=True)[1]


@pytest.mark.parametrize(
    ("bins", "bin_width", "value_range", "last"),
    [
        (30, None, (-2.0, 2.0), 29),  # int8 bin indices
        (2, None, (-1.0, 1.0), 1),
        (127, None, (-2.0, 2.0), 126),  # the largest int8 index
        (128, None, (-2.0, 2.0), 127),
        (129, None, (-2.0, 2.0), 128),  # int16
        (None, 1e-4, (-2.0, 2.0), 39_999),  # 40,000 bins: int32
    ],
)
def test_codes_equal_the_int64_definition_whatever_the_index_type(
    bins, bin_width, value_range, last
):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    x[150:] = x[:150].round(decimals=1)  # repeated and nearly repeated rows
    x[0, 0], x[1, 1] = -50.0, 50.0  # clipped into the edge bins
    low, high = value_range
    width = bin_width if bin_width is not None else (high - low) / bins
    codes = discretize(x, bins=bins or 30, bin_width=bin_width, value_range=value_range)
    assert codes.dtype == torch.int64
    assert torch.equal(codes, _codes_by_definition(x, low, width, last))
    x64 = x.double()  # float64 input is used as it is: discretize must not change it
    kept = x64.clone()
    codes64 = discretize(x64, bins=bins or 30, bin_width=bin_width, value_range=value_range)
    assert torch.equal(codes64, codes)
    assert torch.equal(x64, kept)


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


def test_auto_range_is_calibrated_on_the_layer_then_fixed():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(400, 5, generator=gen)
    t = torch.relu(x @ torch.randn(5, 8, generator=gen))
    y = torch.randint(0, 3, (400,), generator=gen)
    auto = BinningEstimator(bins=10, value_range="auto")
    assert auto.params() == {"bins": 10, "bin_width": None, "value_range": "auto"}
    assert BinningEstimator.treats_x_by_identity
    calibration = auto.calibration(t)
    assert calibration == {"value_range": (float(t.min()), float(t.max()))}
    assert all(type(v) is float for v in calibration["value_range"])
    assert BinningEstimator(value_range=(-1, 1)).calibration(t) == {}
    assert BinningEstimator().calibration(t) == {}
    frozen = auto.with_params(**calibration)
    assert frozen.params()["value_range"] == calibration["value_range"]
    # on the calibration data: the same bins as the observed range (value_range=None)
    observed = BinningEstimator(bins=10)
    for est in (auto, frozen):
        pair = est.layer_information(x, t, y)
        assert float(pair[0]) == float(observed.input_information(x, t))
        assert float(pair[1]) == float(observed.label_information(t, y))
    assert out_of_range_fraction(t, calibration["value_range"]) == 0.0
    # a later epoch whose activations doubled: the observed range rescales the bins with the
    # layer, so it cannot see the change; the frozen bins do (and clip the top to the last bin)
    later = 2.0 * t
    assert float(observed.input_information(x, later)) == float(observed.input_information(x, t))
    assert float(frozen.input_information(x, later)) > float(frozen.input_information(x, t))
    fraction = out_of_range_fraction(later, calibration["value_range"])
    assert fraction == pytest.approx(float((later > t.max()).double().mean()))
    assert 0.0 < fraction < 1.0


def test_auto_range_in_the_generic_call_and_a_constant_layer():
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(300, 2, generator=gen), torch.randn(300, 1, generator=gen)
    auto = BinningEstimator(bins=6, value_range="auto")
    # calibrated on x; a continuous y is binned in that same range, as for any fixed range
    low, high = float(x.min()), float(x.max())
    assert float(auto.mutual_information(x, y)) == float(
        binning_mutual_information(x, y, bins=6, value_range=(low, high))
    )
    # integer x are codes, never binned: a continuous y keeps its own observed range
    codes = torch.randint(0, 4, (300,), generator=gen)
    assert float(auto.mutual_information(codes, y)) == float(
        binning_mutual_information(codes, y, bins=6)
    )
    with pytest.raises(ValueError, match=r"`t` is constant .*value_range='auto' has no range"):
        auto.calibration(torch.ones(50, 3))
    with pytest.raises(ValueError, match=r"`t` is constant"):
        auto.input_information(torch.randn(50, 2), torch.ones(50, 3))
    with pytest.raises(ValueError, match=r"`x` is constant"):
        auto.mutual_information(torch.ones(50, 3), torch.arange(50))
    with pytest.raises(ValueError, match=r"`value_range` must be \(low, high\) .* or 'auto'"):
        BinningEstimator(value_range="observed")
    with pytest.raises(ValueError, match=r"`value_range` must be \(low, high\)"):
        discretize(x, value_range="auto")  # the functional API takes explicit ranges only


def test_out_of_range_fraction():
    t = torch.tensor([[-2.0, -1.0], [0.0, 1.0], [1.5, 0.5]])
    assert out_of_range_fraction(t, (-1.0, 1.0)) == pytest.approx(2 / 6)
    assert out_of_range_fraction(t, (-5, 5)) == 0.0
    assert out_of_range_fraction(t[:, 0], (-1.0, 1.0)) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"`value_range` must be \(low, high\)"):
        out_of_range_fraction(t, (1.0, -1.0))
    with pytest.raises(ValueError, match="`t` contains 1 NaN"):
        out_of_range_fraction(torch.tensor([0.0, math.nan]), (-1.0, 1.0))
