"""Out-of-range estimator parameters fail at construction with a ValueError that names the
parameter and its valid range -- through :func:`get_estimator` and through the classes."""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch

from lit_infobottleneck.estimators import (
    BinningEstimator,
    GaussianEstimator,
    HSICEstimator,
    InfoNCEEstimator,
    KDEEstimator,
    KSGEstimator,
    MINEEstimator,
    NoisyEstimator,
    NWJEstimator,
    RenyiEstimator,
    SMILEEstimator,
    available_estimators,
    get_estimator,
    kl_entropy,
    ksg_mutual_information,
)
from lit_infobottleneck.estimators._validation import all_finite

NAN, INF = math.nan, math.inf
NEURAL = ("infonce", "mine", "nwj", "smile")

# message fragments (regular expressions) that state the valid range
INT_AT_LEAST = r"must be an integer >= {}, got {}"
POSITIVE = r"must be a finite number > 0, got"
NON_NEGATIVE = r"must be a finite number >= 0, got"
SWITCH = r"must be True or False, got"
AUTO_OR_POSITIVE = r"must be a finite number > 0 or 'auto', got"

#: name -> parameter -> [(bad value, message fragment after the backticked name)]
BAD: dict[str, dict[str, list[tuple[object, str]]]] = {
    "binning": {
        "bins": [
            (1, INT_AT_LEAST.format(2, 1)),
            (0, INT_AT_LEAST.format(2, 0)),
            (-3, INT_AT_LEAST.format(2, -3)),
            (2.5, INT_AT_LEAST.format(2, r"2\.5")),
            (True, INT_AT_LEAST.format(2, "True")),
            ("30", INT_AT_LEAST.format(2, "'30'")),
        ],
        "bin_width": [(0.0, POSITIVE), (-0.1, POSITIVE), (NAN, POSITIVE), (INF, POSITIVE)],
        "value_range": [
            (bad, r"must be \(low, high\) with finite low < high")
            for bad in [(1.0, -1.0), (0.0, 0.0), (0.0, INF), (NAN, 1.0), (1.0,), (0, 1, 2), 5, "ab"]
        ],
    },
    "kde": {
        "noise_var": [
            *[(bad, POSITIVE) for bad in (0.0, -0.1, NAN, INF)],
            ("median", AUTO_OR_POSITIVE),
        ],
        "bound": [("middle", r"must be one of \('upper', 'lower'\)")],
    },
    "noisy": {
        "noise_var": [
            *[(bad, POSITIVE) for bad in (0.0, -0.1, NAN, INF)],
            ("Auto", AUTO_OR_POSITIVE),
        ],
        "samples": [
            (0, INT_AT_LEAST.format(1, 0)),
            (2.5, INT_AT_LEAST.format(1, r"2\.5")),
            (True, INT_AT_LEAST.format(1, "True")),
        ],
        "seed": [(-1, INT_AT_LEAST.format(0, -1)), (1.5, INT_AT_LEAST.format(0, r"1\.5"))],
        "chunk_size": [(0, INT_AT_LEAST.format(1, 0)), (1.5, INT_AT_LEAST.format(1, r"1\.5"))],
    },
    "ksg": {
        "k": [
            (0, INT_AT_LEAST.format(1, 0)),
            (-1, INT_AT_LEAST.format(1, -1)),
            (2.5, INT_AT_LEAST.format(1, r"2\.5")),
            (3.0, INT_AT_LEAST.format(1, r"3\.0")),
            (True, INT_AT_LEAST.format(1, "True")),
        ],
        "jitter": [(-1e-10, NON_NEGATIVE), (NAN, NON_NEGATIVE), (INF, NON_NEGATIVE)],
        "seed": [(-1, INT_AT_LEAST.format(0, -1)), (1.5, INT_AT_LEAST.format(0, r"1\.5"))],
        "metric": [
            (bad, r"must be one of \('max', 'euclidean'\) \(or None for the default\)")
            for bad in ("sqeuclidean", "cosine")
        ],
        "backend": [("gpu", r"must be one of \('auto', 'brute', 'tree'\)")],
        "standardize": [("yes", SWITCH), (1, SWITCH)],
    },
    "gaussian": {"ridge": [(bad, POSITIVE) for bad in (0.0, -1e-6, NAN, INF)]},
    "renyi": {
        "alpha": [
            (1, r"= 1 is the Shannon limit.*pass alpha=1\.01"),
            (1.0, r"= 1 is the Shannon limit.*pass alpha=1\.01"),
            *[(bad, r"must be a finite number > 0 other than 1") for bad in (0, -0.5, NAN, INF)],
            ("2", r"must be a finite number > 0 other than 1"),
        ],
        "sigma": [
            *[(bad, POSITIVE) for bad in (0.0, -1.0, NAN, INF)],
            ("scott", r"must be a number > 0 or one of the rules \('silverman', 'median'\)"),
        ],
        "chunk_size": [
            (0, INT_AT_LEAST.format(1, 0)),
            (-1, INT_AT_LEAST.format(1, -1)),
            (1.5, INT_AT_LEAST.format(1, r"1\.5")),
        ],
        "standardize": [("yes", SWITCH)],
    },
    "hsic": {
        "sigma": [
            *[(bad, POSITIVE) for bad in (0.0, -1.0, NAN, INF)],
            ("silverman", r"must be a number > 0 or one of the rules \('median',\)"),
        ],
        "chunk_size": [(0, INT_AT_LEAST.format(1, 0))],
        "normalized": [("no", SWITCH), (0, SWITCH)],
    },
}
_NEURAL_BAD: dict[str, list[tuple[object, str]]] = {
    "critic": [("mlp", r"'mlp'; choose one of: concat, separable")],
    "activation": [("swish", r"'swish'; choose one of: relu, elu, gelu, tanh, softplus")],
    "hidden_dim": [(0, INT_AT_LEAST.format(1, 0)), (2.5, INT_AT_LEAST.format(1, r"2\.5"))],
    "num_layers": [(0, INT_AT_LEAST.format(1, 0))],
    "embed_dim": [(0, INT_AT_LEAST.format(1, 0))],
    "max_steps": [(0, INT_AT_LEAST.format(1, 0)), (-5, INT_AT_LEAST.format(1, -5))],
    "eval_every": [(0, INT_AT_LEAST.format(1, 0))],
    "patience": [(0, INT_AT_LEAST.format(1, 0))],
    "lr": [(bad, POSITIVE) for bad in (0.0, -1e-3, NAN, INF)],
    "batch_size": [(1, INT_AT_LEAST.format(2, 1)), (0, INT_AT_LEAST.format(2, 0))],
    "val_fraction": [
        (bad, r"must be a number in \(0, 1\) \(the held-out share of the samples\)")
        for bad in (0, 1, 1.5, -0.1, NAN)
    ],
    "seed": [(-1, INT_AT_LEAST.format(0, -1)), (1.5, INT_AT_LEAST.format(0, r"1\.5"))],
}
for _name in NEURAL:
    BAD[_name] = dict(_NEURAL_BAD)
BAD["smile"]["tau"] = [(bad, POSITIVE) for bad in (0.0, -1.0, NAN, INF)]

CLASSES = {
    "binning": BinningEstimator,
    "kde": KDEEstimator,
    "noisy": NoisyEstimator,
    "ksg": KSGEstimator,
    "gaussian": GaussianEstimator,
    "renyi": RenyiEstimator,
    "hsic": HSICEstimator,
    "infonce": InfoNCEEstimator,
    "mine": MINEEstimator,
    "nwj": NWJEstimator,
    "smile": SMILEEstimator,
}

CASES = [
    pytest.param(name, param, value, fragment, id=f"{name}-{param}={value!r}")
    for name, params in BAD.items()
    for param, bad_values in params.items()
    for value, fragment in bad_values
]


@pytest.mark.parametrize(("name", "param", "value", "fragment"), CASES)
def test_out_of_range_parameter_is_refused_at_construction(name, param, value, fragment):
    pattern = re.escape(f"`{param}`") + r"\s*" + fragment
    with pytest.raises(ValueError, match=pattern):
        get_estimator(name, **{param: value})
    with pytest.raises(ValueError, match=pattern):
        CLASSES[name](**{param: value})


def test_every_constructor_parameter_of_every_estimator_is_checked():
    # a new estimator or parameter needs its out-of-range cases above
    assert set(available_estimators()) <= set(BAD)
    for name in available_estimators():
        cls = type(get_estimator(name))
        assert cls is CLASSES[name]
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        assert accepted == set(BAD[name]), name


#: Values on the edge of each valid range: accepted, and round-tripped through params().
EDGE = {
    "binning": [
        {"bins": 2},
        {"bin_width": 1e-12},
        {"value_range": [-1, 1]},
        {"value_range": "auto"},
    ],
    "kde": [{"noise_var": 1e-12}, {"noise_var": "auto"}, {"bound": "lower"}],
    "noisy": [
        {"noise_var": 1e-12},
        {"noise_var": "auto"},
        {"samples": 1},
        {"seed": 0},
        {"chunk_size": 1},
    ],
    "ksg": [{"k": 1}, {"jitter": 0.0}, {"seed": 0}, {"metric": "euclidean"}, {"backend": "tree"}],
    "gaussian": [{"ridge": 1e-12}],
    "renyi": [
        {"alpha": 0.5},
        {"alpha": 2},
        {"sigma": 1e-3},
        {"sigma": "median"},
        {"chunk_size": 1},
    ],
    "hsic": [{"sigma": 1e-3}, {"chunk_size": 1}, {"normalized": False}],
    **{
        name: [{"batch_size": 2}, {"val_fraction": 0.5}, {"lr": 1e-6}, {"max_steps": 1}]
        for name in NEURAL
    },
}
EDGE["smile"].append({"tau": 1e-3})


@pytest.mark.parametrize(
    ("name", "params"), [(name, p) for name, ps in EDGE.items() for p in ps], ids=repr
)
def test_values_at_the_edge_of_the_range_are_accepted(name, params):
    est = get_estimator(name, **params)
    for key, value in params.items():
        if key != "chunk_size":  # memory only, not logged (it does not change the result)
            assert est.params()[key] == (tuple(value) if isinstance(value, list) else value)
    assert get_estimator(name, **est.params()).params() == est.params()


def test_the_functional_k_nn_api_checks_seed_and_k_before_computing():
    x = torch.randn(20, 2)
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0, got 1\.5"):
        ksg_mutual_information(x, x, seed=1.5)
    with pytest.raises(ValueError, match=r"`seed` must be an integer >= 0, got -2"):
        kl_entropy(x, seed=-2)
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 1, got 0"):
        kl_entropy(x, k=0)


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([1.0, -2.0, 3.5], True),
        ([1e308, 1e308, -1.0], True),  # the sum overflows to inf: settled entry by entry
        ([1.0, float("nan"), 2.0], False),
        ([1.0, float("inf"), 2.0], False),
        ([float("inf"), float("-inf")], False),  # the sum is NaN
        ([-1e308, -1e308, float("nan")], False),
    ],
)
def test_all_finite_is_exact_where_the_fast_sum_is_not(values, finite):
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        t = torch.tensor(values, dtype=torch.float64).to(dtype).reshape(-1, 1)
        assert all_finite(t) is bool(torch.isfinite(t).all()), dtype
    assert all_finite(torch.tensor(values, dtype=torch.float64)) is finite


def test_all_finite_when_a_low_precision_sum_overflows():
    t = torch.tensor([60000.0, 60000.0], dtype=torch.float16)  # finite; the sum is inf
    assert not bool(torch.isfinite(t.sum()))
    assert all_finite(t) is True
    assert all_finite(torch.tensor([3e38, 3e38], dtype=torch.float32)) is True
