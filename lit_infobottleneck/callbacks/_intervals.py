"""Intervals for InfoMetrics' estimates by half-sampling: random halves, no duplicates.

Target: the spread of the estimator over independent datasets of the measured size ``n``.
An interval ``estimate ± z sd`` with ``sd`` that spread says how far the number would move on
another validation set of the same size; it is a confidence interval for the estimator's
expectation at size ``n`` (bias included), not for the true mutual information.

Method (half-sampling, the delete-d jackknife with d = n/2 of Shao & Wu 1989): draw
``resamples`` random halves of ``m = n // 2`` rows *without replacement*, estimate on each,
and take the standard deviation ``sd`` of those estimates. For a smooth statistic, the
variance of a half-sample estimate around the full-sample one is ``sigma^2 (1/m - 1/n) =
sigma^2 / n``: exactly the variance of the full-size estimate over independent datasets. The
interval is centred on the full-sample estimate (half-samples of estimators whose value
depends on n, such as binning and KDE with their log n ceiling, are shifted; only their
spread is used) and is ``estimate ± 1.96 sd``: a normal interval, since with 20 resamples the
2.5 % and 97.5 % percentiles would be the extremes of the draws. Bounds of information are
clipped to what the quantity can be: at 0 below, at H(Y) above for I(T;Y), at log n above for
I(X;T) of estimators that treat X by identity.

Why not the bootstrap: resampling *with* replacement duplicates inputs, which estimators that
treat X by identity (binning, KDE) read as fewer distinct inputs, and which k-NN estimators
read as zero distances (their bootstrap spread of I(X;T) was 1.8x the true one on a Gaussian
task). Measured coverage is in ``tests/callbacks/test_intervals.py`` and docs/benchmarks.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lit_infobottleneck.estimators import Estimator

#: z of a two-sided 95 % normal interval.
Z_95 = 1.959963984540054
#: Every interval is described by this in the JSON meta (``"interval"``).
METHOD = "half-sampling"


def half_samples(n: int, resamples: int, seed: int) -> list[torch.Tensor]:
    """``resamples`` random subsets of ``n // 2`` distinct row indices (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=gen)[: n // 2] for _ in range(resamples)]


def half_sample_bounds(
    estimator: Estimator,
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    estimate: tuple[float, float],
    resamples: int,
    seed: int,
    scale: float,
    *,
    ceilings: tuple[float | None, float | None] | None = (None, None),
) -> dict[str, float]:
    """95 % bounds ``I_XT_low``, ``I_XT_high``, ``I_TY_low``, ``I_TY_high`` of ``estimate``
    (``(I(X;T), I(T;Y))`` in the estimator's unit) from ``resamples >= 2`` half-samples.

    Values are multiplied by ``scale`` (nats to bits). ``ceilings``: for information, the
    largest possible ``(I(X;T), I(T;Y))`` in the estimator's unit (``None`` entries: no
    ceiling); the bounds are clipped to ``[0, ceiling]``. ``ceilings=None``: a score that is
    not information (HSIC), no clipping. Shapes: ``x`` ``(n, d_x)``, ``t`` ``(n, d_t)``,
    ``y`` ``(n,)``.
    """
    if resamples < 2:
        raise ValueError(f"half-sampling needs at least 2 resamples, got {resamples}.")
    ixt, ity = [], []
    for idx in half_samples(x.shape[0], resamples, seed):
        idx = idx.to(x.device)
        ixt.append(float(estimator.input_information(x[idx], t[idx])))
        ity.append(float(estimator.label_information(t[idx], y[idx])))
    bounds = {}
    limits = ceilings if ceilings is not None else (None, None)
    quantities = zip(("I_XT", "I_TY"), estimate, (ixt, ity), limits, strict=True)
    for key, value, samples, ceiling in quantities:
        spread = float(np.std(samples, ddof=1))
        if not math.isfinite(spread):
            raise FloatingPointError(f"the half-sample estimates of {key} are not finite")
        low, high = value - Z_95 * spread, value + Z_95 * spread
        if ceilings is not None:
            low = max(low, 0.0)
            high = high if ceiling is None else min(high, ceiling)
        bounds[f"{key}_low"] = low * scale
        bounds[f"{key}_high"] = high * scale
    return bounds
