"""Objectives on the embedded digits data: test accuracy and information terms.

Same encoder (MLP 64-256-256 ReLU), latent size 32, linear head, Adam 1e-3, batch 128 and
epochs for every objective; digits split 1,197 / 300 / 300 (seeded), inputs standardised.
Prints a markdown table (mean and standard deviation over seeds) and saves the VIB beta
sweep as ``docs/vib_beta_sweep.png``. Results are recorded in docs/benchmarks.md.

    python benchmarks/objectives.py            # full run (~5 min on 2 cores)
    python benchmarks/objectives.py --quick    # 1 seed, few epochs: smoke test
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import matplotlib
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.estimators import kde_mutual_information
from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import (
    ClassifierHead,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    NoisyBottleneck,
)
from lit_infobottleneck.objectives.ceb import CEB
from lit_infobottleneck.objectives.cross_entropy import CrossEntropy
from lit_infobottleneck.objectives.hsic_bottleneck import HSICBottleneck
from lit_infobottleneck.objectives.info_objective import InfoObjective
from lit_infobottleneck.objectives.nonlinear_ib import NonlinearIB
from lit_infobottleneck.objectives.vib import VIB

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt

LATENT = 32
VIB_BETAS = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def digits_loaders(seed: int = 0) -> tuple[DataLoader, DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, val, test = perm[:1197], perm[1197:1497], perm[1497:]
    mean, std = x[train].mean(0), x[train].std(0).clamp(min=1e-3)
    x = (x - mean) / std
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=128, shuffle=True),
        DataLoader(TensorDataset(x[val], y[val]), batch_size=300),
        DataLoader(TensorDataset(x[test], y[test]), batch_size=300),
    )


def build(objective_name: str, weight: float | None) -> InfoBottleneckClassifier:
    bottlenecks = {
        "CrossEntropy": lambda: DeterministicBottleneck(256, LATENT),
        "VIB": lambda: GaussianBottleneck(256, LATENT),
        "CEB": lambda: GaussianBottleneck(256, LATENT),
        "InfoObjective": lambda: GaussianBottleneck(256, LATENT),
        "NonlinearIB": lambda: NoisyBottleneck(256, LATENT),
        "HSICBottleneck": lambda: DeterministicBottleneck(256, LATENT, activation="tanh"),
    }
    objectives = {
        "CrossEntropy": lambda: CrossEntropy(),
        "VIB": lambda: VIB(beta=weight),
        "CEB": lambda: CEB(beta=weight),
        "InfoObjective": lambda: InfoObjective(lambda1=weight, lambda2=weight),
        "NonlinearIB": lambda: NonlinearIB(beta=weight),
        "HSICBottleneck": lambda: HSICBottleneck(beta=weight),
    }
    return InfoBottleneckClassifier(
        encoder=MLPEncoder(64, [256, 256], activation="relu"),
        bottleneck=bottlenecks[objective_name](),
        head=ClassifierHead(LATENT, 10),
        objective=objectives[objective_name](),
        input_shape=[64],
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    )


def kde_information(model: InfoBottleneckClassifier, loader: DataLoader) -> float:
    """Common yardstick: KDE upper bound on I(X; Z_mean + noise), noise = mean var(z) (SNR 1)."""
    model.eval()
    with torch.no_grad():
        x, _ = next(iter(loader))
        z = model.forward_output(x).rep.mean.double()
    noise_var = float(z.var(0).mean())
    return float(kde_mutual_information(z, torch.arange(len(z)), noise_var=noise_var))


def run(objective_name: str, weight: float | None, seed: int, epochs: int) -> dict[str, float]:
    L.seed_everything(seed, verbose=False)
    train, val, test = digits_loaders(seed=0)
    model = build(objective_name, weight)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(model, train, val)
    seconds = time.perf_counter() - start
    metrics = trainer.test(model, test, verbose=False)[0]
    result = {k.removeprefix("test/"): float(v) for k, v in metrics.items()}
    result["kde_ixz"] = kde_information(model, test)
    result["seconds"] = seconds
    return result


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=Path("docs/vib_beta_sweep.png"))
    args = parser.parse_args()
    epochs, seeds = (3, 1) if args.quick else (args.epochs, args.seeds)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*treespec.*")

    own_term = {
        "CrossEntropy": None,
        "VIB": "kl",
        "CEB": "residual_info",
        "InfoObjective": "h_z_given_y",
        "NonlinearIB": "i_xz_upper",
        "HSICBottleneck": "nhsic_xz",
    }
    settings = [("CrossEntropy", None)]
    settings += [("VIB", beta) for beta in VIB_BETAS]
    settings += [
        ("InfoObjective", 1e-3),
        ("InfoObjective", 1e-2),
        ("NonlinearIB", 1e-2),
        ("NonlinearIB", 1e-1),
        ("CEB", 1e-2),
        ("CEB", 1e-1),
        ("HSICBottleneck", 1e-2),
        ("HSICBottleneck", 1e-1),
    ]
    print(f"digits, MLP 64-256-256 ReLU, latent {LATENT}, {epochs} epochs, {seeds} seed(s)\n")
    print(
        "| objective | weight | test acc | own information term (test, nats) | "
        "KDE I(X;Z) bound at SNR 1 (nats) | s / run |"
    )
    print("|---|---|---|---|---|---|")
    sweep: dict[float, dict[str, list[float]]] = {}
    baseline = math.nan
    for name, weight in settings:
        results = [run(name, weight, seed, epochs) for seed in range(seeds)]
        acc = [r["acc"] for r in results]
        term = own_term[name]
        term_cell = f"{term} = {summary([r[term] for r in results])}" if term else "-"
        print(
            f"| {name} | {weight if weight is not None else '-'} | {summary(acc)} | {term_cell} "
            f"| {summary([r['kde_ixz'] for r in results])} "
            f"| {statistics.mean(r['seconds'] for r in results):.1f} |"
        )
        if name == "VIB":
            sweep[weight] = {"acc": acc, "kl": [r["kl"] for r in results]}
        if name == "CrossEntropy":
            baseline = statistics.mean(acc)
    betas = sorted(sweep)
    kl_means = [statistics.mean(sweep[b]["kl"]) for b in betas]
    monotone = all(a > b for a, b in itertools.pairwise(kl_means))
    print(f"\nVIB KL (I(X;Z) bound) falls monotonically with beta: {monotone}")
    fig, ax_acc = plt.subplots(figsize=(6, 4))
    ax_kl = ax_acc.twinx()
    ax_acc.errorbar(
        betas,
        [statistics.mean(sweep[b]["acc"]) for b in betas],
        yerr=[statistics.pstdev(sweep[b]["acc"]) for b in betas],
        color="tab:blue",
        marker="o",
        label="test accuracy",
    )
    ax_kl.plot(betas, kl_means, color="tab:red", marker="s", label="KL = I(X;Z) bound")
    ax_acc.axhline(baseline, color="tab:blue", linestyle="--", label="cross-entropy accuracy")
    ax_acc.set_xscale("log")
    ax_acc.set_xlabel("beta")
    ax_acc.set_ylabel("test accuracy", color="tab:blue")
    ax_kl.set_ylabel("KL(q(z|x) || p(z)) [nats]", color="tab:red")
    ax_acc.set_title(f"VIB on digits ({epochs} epochs, {seeds} seeds)")
    fig.legend(loc="lower left", bbox_to_anchor=(0.12, 0.15), fontsize=8)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")
    if math.isnan(kl_means[0]):
        raise SystemExit("NaN in the sweep")


if __name__ == "__main__":
    main()
