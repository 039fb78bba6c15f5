"""Coverage of InfoMetrics' intervals: half-sampling against the bootstrap it replaced.

For each estimator and sample size, ``--datasets`` independent datasets of a fixed
distribution (x ~ N(0, I_3); t = tanh(x W) + 0.3 noise, 2 units; y = [x_0 + 0.5 noise > 0])
are drawn. Each dataset gets an interval from ``--resamples`` resamples by

- half-sampling (``lit_infobottleneck.callbacks._intervals``: random halves without
  replacement, estimate +- 1.96 sd), and
- the reference, the bootstrap InfoMetrics used before: resamples of n rows *with*
  replacement, 2.5 / 97.5 % percentiles shifted by the bootstrap bias.

Printed per (estimator, n, quantity) and method: ``coverage``, the share of datasets whose
interval contains the estimator's expectation at that n (the mean of the other datasets'
estimates; nominal 0.95), and ``width``, the interval's mean half-width / 1.96 over the
standard deviation of the estimates across datasets (1 is right).

    python benchmarks/interval_coverage.py                 # n = 200 and 1,000, ~10 min
    python benchmarks/interval_coverage.py --n 200 --datasets 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lit_infobottleneck.callbacks._intervals import Z_95, half_sample_bounds
from lit_infobottleneck.estimators import Estimator, get_estimator

MIXING = torch.tensor([[1.0, 0.5], [0.3, -1.0], [0.2, 0.2]], dtype=torch.float64)
QUANTITIES = ("I_XT", "I_TY")


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    t = torch.tanh(x @ MIXING) + 0.3 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64) > 0).long()
    return x.float(), t.float(), y


def bootstrap_with_replacement(
    estimator: Estimator, x, t, y, estimate: tuple[float, float], resamples: int, seed: int
) -> dict[str, float]:
    """The reference: InfoMetrics' bootstrap before half-sampling (bias-shifted percentiles)."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(resamples):
        idx = torch.randint(0, n, (n,), generator=gen)
        samples[0].append(float(estimator.input_information(x[idx], t[idx])))
        samples[1].append(float(estimator.label_information(t[idx], y[idx])))
    bounds = {}
    for key, value, values in zip(QUANTITIES, estimate, samples, strict=True):
        shift = value - float(np.mean(values))
        bounds[f"{key}_low"] = float(np.percentile(values, 2.5)) + shift
        bounds[f"{key}_high"] = float(np.percentile(values, 97.5)) + shift
    return bounds


def measure(
    estimator: Estimator, n: int, datasets: int, resamples: int
) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {quantity: (coverage, width)}}`` over ``datasets`` independent datasets."""
    values, bounds = [], {"half-sampling": [], "bootstrap (reference)": []}
    for seed in range(datasets):
        x, t, y = dataset(n, seed)
        value = (
            float(estimator.input_information(x, t)),
            float(estimator.label_information(t, y)),
        )
        values.append(value)
        bounds["half-sampling"].append(
            half_sample_bounds(estimator, x, t, y, value, resamples, seed, 1.0)
        )
        bounds["bootstrap (reference)"].append(
            bootstrap_with_replacement(estimator, x, t, y, value, resamples, seed)
        )
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for method, rows in bounds.items():
        table[method] = {}
        for column, key in enumerate(QUANTITIES):
            estimates = np.array([v[column] for v in values])
            expectation = (estimates.sum() - estimates) / (len(estimates) - 1)  # leave one out
            low = np.array([r[f"{key}_low"] for r in rows])
            high = np.array([r[f"{key}_high"] for r in rows])
            coverage = float(np.mean((low <= expectation) & (expectation <= high)))
            width = float(np.mean((high - low) / (2 * Z_95)) / np.std(estimates, ddof=1))
            table[method][key] = (coverage, width)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    estimators = {
        "kde (noise_var 0.1)": get_estimator("kde", noise_var=0.1),
        "gaussian": get_estimator("gaussian"),
        "ksg (k 3)": get_estimator("ksg", k=3),
        "binning (10 bins)": get_estimator("binning", bins=10),
    }
    print(
        f"{args.datasets} datasets, {args.resamples} resamples, torch threads {args.threads}; "
        "coverage of the expectation (nominal 0.95) / width over the true spread (1.0)\n"
    )
    print("| estimator | n | quantity | half-sampling | bootstrap (reference) | seconds |")
    print("|---|---|---|---|---|---|")
    for name, estimator in estimators.items():
        for n in args.n:
            start = time.perf_counter()
            table = measure(estimator, n, args.datasets, args.resamples)
            seconds = time.perf_counter() - start
            for key in QUANTITIES:
                cells = [
                    f"{table[m][key][0]:.3f} / {table[m][key][1]:.2f}"
                    for m in ("half-sampling", "bootstrap (reference)")
                ]
                print(f"| {name} | {n} | {key} | {cells[0]} | {cells[1]} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
