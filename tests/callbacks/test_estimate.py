"""``estimate_layers``: InfoMetrics' estimation as a pure function, without a Trainer."""

from __future__ import annotations

import math

import pytest
import torch

from lit_infobottleneck.callbacks._estimate import dpi_violations, estimate_layers
from lit_infobottleneck.estimators import Estimator, get_estimator


class Raising(Estimator):
    """An estimator that fails the way real ones can (linear algebra, memory, bugs)."""

    name = "raising"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def mutual_information(self, x, y, *, discrete_y=None):
        raise self.error

    def params(self):
        return {}


def _layers(n: int = 300, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 6, generator=gen) + 2.0 * y[:, None]
    t1 = torch.tanh(x @ torch.randn(6, 5, generator=gen))
    t2 = torch.tanh(t1 @ torch.randn(5, 3, generator=gen))
    return x, {"t1": t1, "t2": t2}, y


def test_information_records_are_in_the_unit_asked_and_hsic_keeps_its_own():
    x, layers, y = _layers()
    estimators = {"kde": get_estimator("kde"), "hsic": get_estimator("hsic")}
    bits = estimate_layers(x, layers, y, estimators, unit="bits")
    nats = estimate_layers(x, layers, y, estimators, unit="nats")
    for b, n in zip(bits.records, nats.records, strict=True):
        if b["estimator"] == "kde":
            assert (b["unit"], n["unit"]) == ("bits", "nats")
            assert b["I_XT"] == pytest.approx(n["I_XT"] / math.log(2), rel=1e-12)
        else:  # a unitless score: never divided by ln 2
            assert b["unit"] == n["unit"] == "nHSIC"
            assert b["I_XT"] == n["I_XT"] and b["I_TY"] == n["I_TY"]
            assert 0.0 <= b["I_XT"] <= 1.0 and 0.0 <= b["I_TY"] <= 1.0
    assert bits.h_x == pytest.approx(math.log2(300))
    assert bits.h_y == pytest.approx(math.log2(3))
    # the data-processing check applies to information only
    assert set(bits.dpi) == {"kde"}


def test_dpi_violations_compare_consecutive_layers_with_the_tolerance():
    records = [{"layer": "a", "I_XT": 2.0}, {"layer": "b", "I_XT": 2.05}, {"layer": "c", "I_XT": 3}]
    assert dpi_violations(records, 0.1) == ["c (after b)"]
    assert dpi_violations(records, 0.01) == ["b (after a)", "c (after b)"]


@pytest.mark.parametrize(
    "error",
    [
        torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge"),
        MemoryError("k-d tree"),
        RuntimeError("CUDA out of memory"),
        ZeroDivisionError("a bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_failing_estimate_is_skipped_naming_estimator_layer_and_error(error):
    x, layers, y = _layers()
    estimators = {"binning": get_estimator("binning"), "broken": Raising(error)}
    result = estimate_layers(x, layers, y, estimators, epoch=3)
    assert [(r["estimator"], r["layer"]) for r in result.records] == [
        ("binning", "t1"),
        ("binning", "t2"),
    ]
    assert result.warnings == [
        f"broken on layer {name!r} skipped at epoch 3: {type(error).__name__}: {error}"
        for name in ("t1", "t2")
    ]


def test_strict_re_raises_the_first_failure():
    x, layers, y = _layers()
    with pytest.raises(MemoryError, match="k-d tree"):
        estimate_layers(x, layers, y, {"broken": Raising(MemoryError("k-d tree"))}, strict=True)


def test_too_few_samples_and_nan_inputs_give_no_records_and_say_why():
    x, layers, y = _layers(n=3)
    result = estimate_layers(x, layers, y, {"binning": get_estimator("binning")})
    assert result.records == [] and "only 3 samples" in result.warnings[0]
    x, layers, y = _layers()
    x[5, 0] = float("nan")
    result = estimate_layers(x, layers, y, {"binning": get_estimator("binning")})
    assert result.records == [] and "NaN/Inf" in result.warnings[0]


def test_unknown_unit_is_refused():
    x, layers, y = _layers()
    with pytest.raises(ValueError, match="`unit` must be one of"):
        estimate_layers(x, layers, y, {}, unit="hartleys")
