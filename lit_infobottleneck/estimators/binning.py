"""Plug-in entropy and mutual information of discretised activations.

The information-plane estimator of Shwartz-Ziv & Tishby (2017) and Saxe et al. (2018): every
activation is put into one of ``bins`` equal-width bins, a sample's code is its row of bin
indices, and entropies are plug-in entropies ``-sum p log p`` of the empirical code
distribution, in nats.

- Range: by default the bins span the observed range ``[min, max]`` of the whole tensor (all
  units of a layer share the bins), i.e. they move with the data at every call;
  ``value_range=(-1, 1)`` fixes them (as in the original tanh experiments; values outside
  are put in the edge bins, and ``out_of_range_fraction`` reports how many were);
  ``bin_width`` fixes the width instead of the count (bins start at the range's low end;
  the high end joins the last bin).
- Calibrated range, ``value_range="auto"``: ``BinningEstimator.calibration`` returns the
  observed ``[min, max]`` of a layer as ``{"value_range": (low, high)}``, to be frozen with
  ``lit_infobottleneck.estimators.base.Estimator.with_params`` at the first measured
  epoch: later epochs then bin in the same range, so their estimates are comparable (Geiger
  2021), and activations that grow beyond it are clipped to the edge bins (reported by
  ``out_of_range_fraction``). An estimator still at ``"auto"`` calibrates on the data of
  each call (the observed range of ``x`` of ``BinningEstimator.mutual_information``, of
  ``t`` otherwise; a continuous ``y`` is binned in that range too, as for any fixed range).
  A constant layer (min = max) has no range to calibrate and is refused with a ValueError.
- Discrete inputs: an integer/bool tensor is taken as codes already (one value per distinct
  row), never binned.
- I(X;T) of a layer (``BinningEstimator.input_information``): the input X is discrete by
  identity, one value per distinct input row. For a deterministic network and inputs seen
  once, I(X;T) = H(T_binned): the estimate is set by the bin count, not by the network alone
  (Geiger 2021). It never exceeds log(number of distinct inputs).

Free parameters: ``bins`` (default 30) or ``bin_width``, and ``value_range`` (None, a fixed
``(low, high)``, or ``"auto"``). Cost: O(n d) for the codes plus a sort of the n rows.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from lit_infobottleneck.estimators._validation import (
    as_codes,
    as_labels,
    as_samples,
    as_tensor,
    check_int_at_least,
    check_positive,
    check_same_length,
    is_integer_tensor,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register


def _check_binning(
    bins: int, bin_width: float | None, value_range: Any, *, allow_auto: bool = False
) -> None:
    check_int_at_least(bins, "bins", 2)
    if bin_width is not None:
        check_positive(bin_width, "bin_width")
    if allow_auto and isinstance(value_range, str) and value_range == "auto":
        return
    if value_range is not None:
        pair = tuple(value_range) if isinstance(value_range, (tuple, list)) else ()
        ok = len(pair) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in pair
        )
        if not (ok and pair[0] < pair[1]):
            auto = " or 'auto'" if allow_auto else ""
            raise ValueError(
                f"`value_range` must be (low, high) with finite low < high{auto}, got "
                f"{value_range!r}."
            )


def observed_range(t: torch.Tensor, name: str = "t") -> tuple[float, float]:
    """``(min, max)`` of all entries of ``t`` ``(n, ...)``: the range ``"auto"`` calibrates to.

    Raises ``ValueError`` when every entry is equal (no range to bin in).
    """
    t = as_samples(t, name)
    low, high = float(t.min()), float(t.max())
    if not low < high:
        raise ValueError(
            f"`{name}` is constant ({low!r} everywhere): value_range='auto' has no range to "
            "calibrate on; pass a fixed value_range=(low, high) or more varied samples."
        )
    return low, high


def out_of_range_fraction(t: torch.Tensor, value_range: tuple[float, float]) -> float:
    """Share of the entries of ``t`` ``(n, ...)`` outside ``[low, high]`` (put in the edge bins)."""
    _check_binning(2, None, value_range)
    t = as_samples(t, "t")
    low, high = float(value_range[0]), float(value_range[1])
    return float(((t < low) | (t > high)).sum()) / t.numel()


def discretize(
    x: torch.Tensor,
    *,
    bins: int = 30,
    bin_width: float | None = None,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Bin every entry of ``x`` ``(n, ...)`` and return one int64 code per distinct row ``(n,)``."""
    _check_binning(bins, bin_width, value_range)
    x = as_samples(x, "x")
    if value_range is None:
        low, high = float(x.min()), float(x.max())
    else:
        low, high = float(value_range[0]), float(value_range[1])
    if bin_width is None:
        width, last = ((high - low) / bins if high > low else 1.0), bins - 1
    else:
        width, last = bin_width, max(math.ceil((high - low) / bin_width), 1) - 1
    index = (x - low).div_(width).floor_().clamp_(0, last)  # in place: one temporary
    # the smallest integer type that holds the bin indices: the same distinct rows in the
    # same order, and torch.unique over int8 rows is about 7x faster than over int64
    return as_codes(index.to(_index_dtype(last)), "x")


def _index_dtype(last: int) -> torch.dtype:
    """The smallest signed integer dtype that holds ``0..last``."""
    for dtype in (torch.int8, torch.int16, torch.int32):
        if last <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def plugin_entropy(codes: torch.Tensor) -> torch.Tensor:
    """Plug-in entropy ``-sum p log p`` (nats, 0-d float64) of int64 codes ``(n,)``."""
    counts = torch.bincount(codes).to(torch.float64)
    p = counts[counts > 0] / codes.shape[0]
    return -(p * p.log()).sum()


def _joint_codes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.unique(a * (int(b.max()) + 1) + b, return_inverse=True)[1]


def discrete_mutual_information(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plug-in I(A;B) = H(A) + H(B) - H(A,B) in nats of two int64 code vectors ``(n,)``.

    Clamped to ``[0, min(H(A), H(B))]``, which removes float round-off only.
    """
    h_a, h_b = plugin_entropy(a), plugin_entropy(b)
    mi = h_a + h_b - plugin_entropy(_joint_codes(a, b))
    return mi.clamp(min=0.0).minimum(torch.minimum(h_a, h_b))


def binning_entropy(
    x: torch.Tensor,
    *,
    bins: int = 30,
    bin_width: float | None = None,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Plug-in entropy (nats) of the binned rows of ``x`` (integer ``x``: of its distinct rows)."""
    return plugin_entropy(_codes(x, "x", bins, bin_width, value_range, discrete=None))


def _codes(
    x: Any,
    name: str,
    bins: int,
    bin_width: float | None,
    value_range: tuple[float, float] | None,
    *,
    discrete: bool | None,
) -> torch.Tensor:
    t = as_tensor(x, name)
    if discrete or (discrete is None and is_integer_tensor(t)):
        return as_codes(t, name)
    try:
        return discretize(t, bins=bins, bin_width=bin_width, value_range=value_range)
    except ValueError as err:
        raise ValueError(str(err).replace("`x`", f"`{name}`")) from None


def binning_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    discrete_y: bool | None = None,
    bins: int = 30,
    bin_width: float | None = None,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Plug-in I(X;Y) in nats (0-d float64) after binning the float inputs.

    ``x`` ``(n, ...)`` and ``y`` ``(n, ...)``: float tensors are binned (each with its own
    observed range unless ``value_range`` is given), integer tensors are used as codes.
    ``discrete_y=True`` requires ``y`` to be integer class labels.
    """
    _check_binning(bins, bin_width, value_range)
    y_t = as_tensor(y, "y")
    if discrete_y:
        b = as_labels(y_t, "y")
    else:
        b = _codes(y_t, "y", bins, bin_width, value_range, discrete=resolve_discrete(y_t, None))
    a = _codes(x, "x", bins, bin_width, value_range, discrete=None)
    check_same_length(a, b, "x", "y")
    return discrete_mutual_information(a, b.to(a.device))


@register
class BinningEstimator(Estimator):
    """Equal-width binning + plug-in MI (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

    ``value_range``: ``None`` (the observed range of each call), ``(low, high)`` (fixed), or
    ``"auto"`` (calibrated: see the module docstring and ``calibration``).
    """

    name = "binning"
    treats_x_by_identity = True

    def __init__(
        self,
        bins: int = 30,
        bin_width: float | None = None,
        value_range: tuple[float, float] | str | None = None,
    ) -> None:
        _check_binning(bins, bin_width, value_range, allow_auto=True)
        self.bins, self.bin_width = bins, bin_width
        if value_range is None or isinstance(value_range, str):
            self.value_range: tuple[float, float] | str | None = value_range
        else:
            self.value_range = (value_range[0], value_range[1])

    def calibration(self, t: torch.Tensor) -> dict[str, Any]:
        """``{"value_range": (min, max)}`` of ``t`` when ``value_range="auto"``, else ``{}``."""
        if self.value_range != "auto":
            return {}
        return {"value_range": observed_range(t)}

    def _binned(self, t: torch.Tensor, name: str) -> torch.Tensor:
        """Codes of a layer's activations ``t`` (always binned; ``"auto"``: in their range)."""
        fixed = self.value_range
        value_range = observed_range(t, name) if isinstance(fixed, str) else fixed
        return _codes(t, name, self.bins, self.bin_width, value_range, discrete=False)

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        """Plug-in I(X;Y) of the binned inputs; ``value_range="auto"`` calibrates on ``x``.

        (An integer ``x`` is not binned; then a continuous ``y`` is binned in its own range.)
        """
        value_range = None if isinstance(self.value_range, str) else self.value_range
        x_t = as_tensor(x, "x")
        if isinstance(self.value_range, str) and not is_integer_tensor(x_t):
            value_range = observed_range(x_t, "x")
        return binning_mutual_information(
            x,
            y,
            discrete_y=discrete_y,
            bins=self.bins,
            bin_width=self.bin_width,
            value_range=value_range,
        )

    def input_information(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """I(X;T) with X discrete by identity (one value per distinct input row)."""
        inputs = as_codes(x, "x")
        codes = self._binned(t, "t")
        check_same_length(inputs, codes, "x", "t")
        return discrete_mutual_information(inputs.to(codes.device), codes)

    def label_information(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels = as_labels(y, "y")
        codes = self._binned(t, "t")
        check_same_length(codes, labels, "t", "y")
        return discrete_mutual_information(codes, labels.to(codes.device))

    def layer_information(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(I(X;T), I(T;Y)) binning ``t`` once."""
        codes = self._binned(t, "t")
        inputs, labels = as_codes(x, "x"), as_labels(y, "y")
        check_same_length(inputs, codes, "x", "t")
        check_same_length(codes, labels, "t", "y")
        return (
            discrete_mutual_information(inputs.to(codes.device), codes),
            discrete_mutual_information(codes, labels.to(codes.device)),
        )

    def params(self) -> dict[str, Any]:
        return {"bins": self.bins, "bin_width": self.bin_width, "value_range": self.value_range}
