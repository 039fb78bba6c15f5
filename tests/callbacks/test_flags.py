"""Honesty flags: each raised on data built to raise it, absent on data built not to."""

from __future__ import annotations

import math

import pytest
import torch

from lit_infobottleneck.callbacks._estimate import estimate_layers
from lit_infobottleneck.estimators import get_estimator
from lit_infobottleneck.estimators.kde import median_squared_distance


def _flags(records, layer=None):
    return {r["layer"]: r["flags"] for r in records if layer in (None, r["layer"])}


def _digits(n: int = 1000):
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data[:n], dtype=torch.float32) / 16.0
    return x, torch.tensor(data.target[:n])


def _wide_relu(x: torch.Tensor, width: int = 512, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(x.shape[1], width, generator=gen) / math.sqrt(x.shape[1])
    return torch.relu(x @ weight * 30.0)  # activations of scale ~30, as in trained ReLU nets


def test_fixed_kde_noise_on_a_wide_relu_layer_is_flagged_with_numbers_in_the_fix():
    x, y = _digits()
    t = _wide_relu(x)
    result = estimate_layers(x, {"wide": t}, y, {"kde": get_estimator("kde", noise_var=0.1)})
    record = result.records[0]
    assert record["I_XT"] >= 0.97 * math.log2(1000)
    assert "saturated_xt" in record["flags"]
    hint = next(h for (_, _, flag, h) in result.hints if flag == "saturated_xt")
    assert "median squared distance between samples is" in hint and "noise_var='auto'" in hint


def test_auto_kde_on_the_same_layer_and_a_narrow_tanh_layer_are_not_saturated():
    x, y = _digits()
    gen = torch.Generator().manual_seed(1)
    tanh = torch.tanh(x @ torch.randn(64, 3, generator=gen))
    layers = {"wide": _wide_relu(x), "tanh3": tanh}
    auto = estimate_layers(x, layers, y, {"kde": get_estimator("kde", noise_var="auto")})
    for record in auto.records:
        assert "saturated_xt" not in record["flags"], record
        assert 0.1 * math.log2(1000) < record["I_XT"] < 0.9 * math.log2(1000)
    fixed_narrow = estimate_layers(x, {"tanh3": tanh}, y, {"kde": get_estimator("kde")})
    assert "saturated_xt" not in fixed_narrow.records[0]["flags"]


def test_saturated_ty_on_separated_classes_only():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 2
    x = torch.randn(400, 4, generator=gen)
    separated = x[:, :2] + 20.0 * y[:, None]
    overlapping = x[:, :2] + 0.3 * y[:, None]
    estimator = {"gaussian": get_estimator("gaussian")}
    result = estimate_layers(x, {"far": separated, "near": overlapping}, y, estimator)
    assert "saturated_ty" in _flags(result.records)["far"]
    assert "saturated_ty" not in _flags(result.records)["near"]


def test_clipped_records_the_fraction_outside_a_fixed_range():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=gen)
    y = torch.arange(500) % 2
    t = torch.relu(x)  # about half the entries are above 0; those above 1 are clipped
    binning = {"binning": get_estimator("binning", value_range=(-1.0, 1.0))}
    record = estimate_layers(x, {"relu": t}, y, binning).records[0]
    assert "clipped" in record["flags"]
    assert record["clipped_fraction"] == pytest.approx(float((t > 1).double().mean()), abs=1e-12)
    inside = estimate_layers(x, {"tanh": torch.tanh(x)}, y, binning).records[0]
    assert "clipped" not in inside["flags"] and "clipped_fraction" not in inside


def test_high_dim_knn_above_20_joint_dimensions():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    ksg = {"ksg": get_estimator("ksg")}
    x_narrow, x_wide = torch.randn(300, 5, generator=gen), torch.randn(300, 30, generator=gen)
    t = torch.randn(300, 3, generator=gen)
    assert "high_dim_knn" not in estimate_layers(x_narrow, {"t": t}, y, ksg).records[0]["flags"]
    assert "high_dim_knn" in estimate_layers(x_wide, {"t": t}, y, ksg).records[0]["flags"]


def test_bound_cap_when_infonce_reaches_log_batch_size():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(240) % 2
    x = torch.randn(240, 2, generator=gen)
    # batch 2: the held-out estimate of I(X;X) (infinite) reaches 0.66 of log 2 = 0.69 nats
    # here; with batch 4 it stopped at 1.21-1.28 of log 4 = 1.39 depending on the CPU, on
    # either side of the 0.1-nat margin
    settings = {"batch_size": 2, "max_steps": 1000, "eval_every": 50, "hidden_dim": 32, "lr": 3e-3}
    infonce = {"infonce": get_estimator("infonce", **settings)}
    capped = estimate_layers(x, {"copy": x.clone()}, y, infonce).records[0]
    assert "bound_cap" in capped["flags"], capped
    independent = torch.randn(240, 2, generator=gen)
    free = estimate_layers(x, {"noise": independent}, y, infonce).records[0]
    assert "bound_cap" not in free["flags"], free


def test_dpi_flag_on_the_layer_that_gains_information():
    x, y = _digits(300)
    gen = torch.Generator().manual_seed(0)
    coarse = torch.tanh(x @ torch.randn(64, 1, generator=gen))
    fine = _wide_relu(x, 16)
    kde = {"kde": get_estimator("kde")}
    result = estimate_layers(x, {"coarse": coarse, "fine": fine}, y, kde, dpi_tolerance=0.1)
    flags = _flags(result.records)
    assert "dpi" in flags["fine"] and "dpi" not in flags["coarse"]
    assert result.dpi == {"kde": ["fine (after coarse)"]}


def test_calibration_is_chosen_once_and_reused():
    x, y = _digits(300)
    t = _wide_relu(x, 32)
    kde = {"kde": get_estimator("kde", noise_var="auto")}
    first = estimate_layers(x, {"t": t}, y, kde)
    chosen = first.calibration["kde"]["t"]["noise_var"]
    assert chosen == pytest.approx(0.1 * median_squared_distance(t), rel=1e-6)
    again = estimate_layers(x, {"t": 2.0 * t}, y, kde, calibration=first.calibration)
    assert again.calibration == {}  # nothing new chosen: the frozen value is used
    fixed = estimate_layers(x, {"t": 2.0 * t}, y, {"kde": get_estimator("kde", noise_var=chosen)})
    assert again.records[0]["I_XT"] == pytest.approx(fixed.records[0]["I_XT"], rel=1e-12)
