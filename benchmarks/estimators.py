"""Estimator accuracy and speed, ours next to references run in the same process.

Prints four tables (markdown), recorded in docs/benchmarks.md:

1. accuracy: error (nats) against the analytic MI of correlated Gaussians,
   I = -d/2 log(1 - rho^2), d in {1, 2, 5}, rho in {0.5, 0.9}, n = 5,000, for every
   registered estimator that estimates Shannon MI of continuous pairs, next to scikit-learn's
   ``mutual_info_regression`` (d = 1);
2. KSG targets: max-norm KSG (k = 3) vs a straightforward scipy cKDTree KSG (NPEET-style,
   one worker) on the same standardised, jittered input: estimate difference and time ratio
   at n = 16,384 with 5 + 5 dims and n = 4,096 with 128 + 128 dims; Ross KSG on 4,096 x 256
   activations vs 10 labels;
3. wall time of I(T;Y) (activations vs 10 labels) per estimator at n = 1k, 4k, 16k with
   d = 10 and d = 256;
4. peak extra resident memory (MiB) of KSG / Ross / KDE at n = 16,384, each measured in a
   fresh subprocess.

    python benchmarks/estimators.py            # full run (~10 min on 2 cores)
    python benchmarks/estimators.py --quick    # smaller n, for a smoke test
"""

from __future__ import annotations

import argparse
import math
import platform
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma
from sklearn.feature_selection import mutual_info_regression

from lit_infobottleneck.estimators import available_estimators, get_estimator
from lit_infobottleneck.estimators.knn import ksg_mutual_information, prepare_samples

SHANNON_CONTINUOUS = ["ksg", "gaussian", "infonce", "mine", "nwj", "smile"]
NOT_COMPARABLE = {
    "binning": "plug-in over 30^d cells: saturates at log n once rows are unique",
    "kde": "needs a discrete partner (labels or inputs by identity)",
    "renyi": "Renyi alpha-order functional, not Shannon MI",
    "hsic": "dependence score in [0, 1], not nats",
}


def gaussian_pair(n: int, d: int, rho: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    noise = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * noise


def ksg_ckdtree_reference(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """Straightforward KSG algorithm 1 with scipy's cKDTree, one worker (as NPEET)."""
    n = len(x)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    radius = np.nextafter(eps, 0)
    nx = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[object, float]:
    """Best wall time of ``repeat`` calls, seconds, with the last result."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def accuracy_table(n: int) -> None:
    names = [s for s in SHANNON_CONTINUOUS if s in available_estimators()]
    print(f"\n### Accuracy: error (estimate - truth, nats) on correlated Gaussians, n = {n}\n")
    print("| d | rho | truth | " + " | ".join(names) + " | sklearn (d=1) |")
    print("|---" * (len(names) + 4) + "|")
    for d in (1, 2, 5):
        for rho in (0.5, 0.9):
            x, y = gaussian_pair(n, d, rho, seed=d * 10 + int(rho * 10))
            truth = -0.5 * d * math.log(1 - rho**2)
            cells = []
            for name in names:
                est = float(get_estimator(name).mutual_information(x, y))
                cells.append(f"{est - truth:+.3f}")
            ref = "n/a"
            if d == 1:
                value = mutual_info_regression(
                    x.numpy(), y[:, 0].numpy(), n_neighbors=3, random_state=0
                )[0]
                ref = f"{value - truth:+.3f}"
            print(f"| {d} | {rho} | {truth:.3f} | " + " | ".join(cells) + f" | {ref} |")
    print()
    for name, why in NOT_COMPARABLE.items():
        if name in available_estimators():
            print(f"- `{name}` not in this table: {why}.")


def ksg_target_table(quick: bool) -> None:
    print("\n### KSG (max-norm, k = 3) vs a cKDTree KSG reference, same input\n")
    print("| case | ours backend | ours (s) | reference (s) | speed-up | abs. difference |")
    print("|---|---|---|---|---|---|")
    cases = [(4096 if quick else 16_384, 5, 0.8), (1024 if quick else 4096, 128, 0.5)]
    for n, d, rho in cases:
        x, y = gaussian_pair(n, d, rho, seed=1)
        xs = prepare_samples(x, standardize=True, jitter=1e-10, seed=0)
        ys = prepare_samples(y, standardize=True, jitter=1e-10, seed=1)
        ref, t_ref = timed(lambda xs=xs, ys=ys: ksg_ckdtree_reference(xs.numpy(), ys.numpy()))
        backends = ["auto", "brute"] if d <= 8 else ["auto"]
        for backend in backends:
            ours, t_ours = timed(
                lambda x=x, y=y, b=backend: float(ksg_mutual_information(x, y, backend=b)),
                repeat=2,
            )
            print(
                f"| n={n}, {d}+{d} dims | {backend} | {t_ours:.3f} | {t_ref:.3f} "
                f"| {t_ref / t_ours:.1f}x | {abs(ours - ref):.1e} |"
            )
    n = 1024 if quick else 4096
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 10, (n,), generator=gen)
    t = torch.relu(torch.randn(n, 256, generator=gen) + labels[:, None] * 0.05)
    _, t_ross = timed(lambda: ksg_mutual_information(t, labels), repeat=2)
    print(f"| Ross, n={n}, 256 dims vs 10 labels | brute (euclidean) | {t_ross:.3f} | - | - | - |")


def timing_table(sizes: list[int]) -> None:
    names = [n for n in available_estimators() if n not in ("renyi",)]
    print("\n### Wall time (s) of I(T;Y), activations vs 10 labels\n")
    print("| estimator | " + " | ".join(f"n={n}, d={d}" for d in (10, 256) for n in sizes) + " |")
    print("|---" * (1 + 2 * len(sizes)) + "|")
    for name in [*names, "renyi"]:
        if name not in available_estimators():
            continue
        est = get_estimator(name)
        cells = []
        for d in (10, 256):
            for n in sizes:
                if name == "renyi" and n > 4096:
                    cells.append("skip (O(n^3))")
                    continue
                gen = torch.Generator().manual_seed(n + d)
                labels = torch.randint(0, 10, (n,), generator=gen)
                t = torch.tanh(torch.randn(n, d, generator=gen) + 0.3 * labels[:, None])
                _, seconds = timed(lambda est=est, t=t, y=labels: est.label_information(t, y))
                cells.append(f"{seconds:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


_MEMORY_PROBE = """
import os, threading, time, torch
from lit_infobottleneck.estimators import ksg_mutual_information, kde_mutual_information
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
n, d, kind = {n}, {d}, {kind!r}
gen = torch.Generator().manual_seed(0)
x = torch.randn(n, d, generator=gen, dtype=torch.float64)
y = x + torch.randn(n, d, generator=gen, dtype=torch.float64)
labels = torch.randint(0, 10, (n,), generator=gen)
ksg_mutual_information(x[:64], y[:64], backend="brute")  # warm up allocator and kernels
baseline, peak, done = rss(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
thread = threading.Thread(target=sample)
thread.start()
if kind == "ksg":
    ksg_mutual_information(x, y, backend="brute")
elif kind == "ross":
    ksg_mutual_information(x, labels)
else:
    kde_mutual_information(x, labels, discrete_groups=True)
done.set()
thread.join()
print(max(peak[0] - baseline, 0) / 2**20)
"""


def memory_table(n: int) -> None:
    print(f"\n### Peak extra resident memory (MiB) at n = {n}, d = 10, fresh process each\n")
    print("| computation | peak extra MiB | dense (n, n) float64 matrix would be |")
    print("|---|---|---|")
    for kind in ("ksg", "ross", "kde"):
        code = _MEMORY_PROBE.format(n=n, d=10, kind=kind)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        print(f"| {kind} (brute) | {float(out.strip()):.0f} | {n * n * 8 / 2**20:.0f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, smoke test")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    accuracy_table(1000 if args.quick else 5000)
    ksg_target_table(args.quick)
    timing_table([256, 1024] if args.quick else [1024, 4096, 16_384])
    memory_table(2048 if args.quick else 16_384)


if __name__ == "__main__":
    main()
