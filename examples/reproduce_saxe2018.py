"""Saxe et al. (2018) against Shwartz-Ziv & Tishby (2017): is "compression" real?

Shwartz-Ziv & Tishby (2017) trained a 12-10-7-5-4-3-2 tanh network on their 12-bit task and
saw, with a binning estimate of mutual information, each layer's I(X;T) first rise and then
fall late in training: a "compression phase". Saxe et al. (2018, "On the information
bottleneck theory of deep learning") repeated the experiment with ReLU units and saw no such
fall, and traced the compression to tanh saturating into a few bins, not to learning itself.

This script trains that network on :class:`~lit_infobottleneck.data.TishbyDataModule` once
with tanh and once with ReLU, measures all six layers on all 4,096 patterns
(``val_split="all"``) with :class:`~lit_infobottleneck.callbacks.InfoMetrics` at
log-spaced epochs, and saves the four information planes side by side:

- binning, 30 equal-width bins: for tanh over the fixed range [-1, 1] (as in both papers);
  for ReLU, whose activations are unbounded, over each layer's observed range at that epoch
  (the library's default), since no fixed range fits every epoch;
- KDE upper bound with Gaussian noise of variance 0.1 (Kolchinsky & Tracey; Saxe et al.).

Reading the ReLU binning panel: the observed range grows during training (the largest
activation of the 3-unit layer grew from about 1 to about 27 in one of our runs), so the 30
bins widen and the binned I(X;T) of a ReLU layer can fall while, over one fixed range, it
would rise. The softmax layer is bounded and saturates, like tanh, in both networks.

Setup of Saxe et al.'s released code (``artemyk/ibsgd``, ``IBnet_SaveActivations``), as far as
the library allows: Adam, learning rate 4e-4, batch size 256, a random 80 % of the patterns
for training, hidden weights from a normal distribution truncated at two standard
deviations with std 1/sqrt(width of the layer), zero biases, Glorot-uniform softmax layer,
cross-entropy loss. Differences: 3,000 epochs per network by default instead of 10,000 (to
finish in about ten minutes on two CPU cores: the two networks train in parallel processes,
and the KDE estimate of six layers on 4,096 patterns takes about 10 s per measured epoch;
``--max_epochs 10000`` for the original length), and the information is measured at
``--log_points`` log-spaced epochs instead of their own schedule. ``--quick`` (30 epochs,
8 measurements of a seeded subset of 1,024 patterns) is a smoke test, not a result.

    python examples/reproduce_saxe2018.py             # ~7 min of CPU per network, 2 processes
    python examples/reproduce_saxe2018.py --quick     # ~20 s smoke test
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.data import TishbyDataModule
from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import ClassifierHead, DeterministicBottleneck, MLPEncoder

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger("reproduce_saxe2018")

HIDDEN = (10, 7, 5, 4, 3)
#: The six layers, input side first: four encoder activations, the 3-unit layer, the softmax.
LAYERS = (
    "encoder.layers.1",
    "encoder.layers.3",
    "encoder.layers.5",
    "encoder.layers.7",
    "bottleneck.activation",
    "prediction",
)
LAYER_LABELS = ("10", "7", "5", "4", "3", "2 (softmax)")
ACTIVATIONS = ("tanh", "relu")
ESTIMATOR_TITLES = {"binning": "binning, 30 bins", "kde": "KDE, noise variance 0.1"}


def estimators(activation: str) -> list[dict[str, Any]]:
    """Binning over [-1, 1] for tanh, over the observed range for ReLU; KDE for both."""
    binning: dict[str, Any] = {"name": "binning", "bins": 30}
    if activation == "tanh":
        binning["value_range"] = (-1.0, 1.0)
    return [binning, {"name": "kde", "noise_var": 0.1}]


class TishbyFullValidation(TishbyDataModule):
    """The 12-bit task, validated in one batch of all 4,096 patterns (training keeps 256)."""

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self.val_set, batch_size=len(self.val_set))


def build_model(activation: str, lr: float) -> InfoBottleneckClassifier:
    """12-10-7-5-4-3-2 with the initialisation of ``artemyk/ibsgd`` (Keras)."""
    model = InfoBottleneckClassifier(
        encoder=MLPEncoder(12, HIDDEN[:-1], activation=activation),
        bottleneck=DeterministicBottleneck(HIDDEN[-2], HIDDEN[-1], activation=activation),
        head=ClassifierHead(HIDDEN[-1], num_classes=2),
        input_shape=[12],
        optimizer=lambda params: torch.optim.Adam(params, lr=lr),
    )
    layers = (*model.encoder.layers, model.bottleneck.linear)
    hidden = [m for m in layers if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for linear in hidden:
            std = 1.0 / math.sqrt(linear.out_features)
            nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(linear.bias)
        nn.init.xavier_uniform_(model.head.linear.weight)
        nn.init.zeros_(model.head.linear.bias)
    return model


def train(
    activation: str,
    max_epochs: int,
    log_points: int,
    max_samples: int,
    lr: float,
    seed: int,
    log_dir: str,
) -> dict[str, Any]:
    """Train one network; return its information history and accuracies (plain data)."""
    torch.set_num_threads(1)  # two small networks share two cores
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # With a fixed noise variance (KDE) or per-layer bin ranges (ReLU binning), I(X;T) can
    # grow with depth where a deeper layer's activations are larger: the estimator's parameter
    # sets the numbers. InfoMetrics would warn at every measured epoch; main() counts them.
    warnings.filterwarnings("ignore", ".*grows with depth.*")
    L.seed_everything(seed, verbose=False)
    data = TishbyFullValidation(batch_size=256, train_fraction=0.8, seed=seed, val_split="all")
    model = build_model(activation, lr)
    info = InfoMetrics(
        layers=list(LAYERS),
        estimators=estimators(activation),
        max_samples=max_samples,
        schedule="log",
        log_points=log_points,
        plot=False,
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(log_dir, name=activation),
        callbacks=[info],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=13,  # 13 batches of 256 per epoch
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    train_acc = float(trainer.callback_metrics.get("train/acc", float("nan")))
    test_acc = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
    return {
        "activation": activation,
        "history": info.history,
        "meta": info.meta,
        "train_acc": train_acc,
        "test_acc": float(test_acc),
        "seconds": seconds,
        "log_dir": str(InfoMetrics.log_dir(trainer)),
    }


def compression_table(
    result: dict[str, Any], estimator: str
) -> list[tuple[str, int, float, float]]:
    """Per layer: epoch of the largest I(X;T), that largest value and the final value."""
    rows = []
    for layer, label in zip(LAYERS, LAYER_LABELS, strict=True):
        points = sorted(
            (r for r in result["history"] if r["estimator"] == estimator and r["layer"] == layer),
            key=lambda r: r["epoch"],
        )
        if not points:
            continue
        peak = max(points, key=lambda r: r["I_XT"])
        rows.append((label, peak["epoch"] + 1, peak["I_XT"], points[-1]["I_XT"]))
    return rows


def depth_increases(result: dict[str, Any], estimator: str, tolerance: float = 0.1) -> int:
    """Measured epochs at which I(X;T) grows with depth by more than ``tolerance`` bits."""
    count = 0
    for epoch in sorted({r["epoch"] for r in result["history"]}):
        at = {
            r["layer"]: r["I_XT"]
            for r in result["history"]
            if r["epoch"] == epoch and r["estimator"] == estimator
        }
        values = [at[layer] for layer in LAYERS if layer in at]
        count += any(b > a + tolerance for a, b in itertools.pairwise(values))
    return count


def plot(results: dict[str, dict[str, Any]], path: Path, max_epochs: int) -> None:
    """Information planes: columns tanh / ReLU, rows binning / KDE; colour = epoch (log)."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), sharex=True, sharey=True)
    norm = matplotlib.colors.LogNorm(vmin=1, vmax=max(max_epochs, 2))
    cmap = plt.get_cmap("viridis")
    markers = "osD^v*"
    for col, activation in enumerate(ACTIVATIONS):
        result = results[activation]
        h_x, h_y = result["meta"].get("h_x", 12.0), result["meta"].get("h_y", 1.0)
        for row, estimator in enumerate(ESTIMATOR_TITLES):
            ax = axes[row, col]
            records = [r for r in result["history"] if r["estimator"] == estimator]
            epochs = sorted({r["epoch"] for r in records})
            for epoch in epochs:  # one faint line through the layers per measured epoch
                at = {r["layer"]: r for r in records if r["epoch"] == epoch}
                pts = [at[layer] for layer in LAYERS if layer in at]
                ax.plot(
                    [p["I_XT"] for p in pts],
                    [p["I_TY"] for p in pts],
                    color=cmap(norm(epoch + 1)),
                    alpha=0.25,
                    linewidth=0.8,
                    zorder=1,
                )
            for layer, label, marker in zip(LAYERS, LAYER_LABELS, markers, strict=True):
                pts = sorted((r for r in records if r["layer"] == layer), key=lambda r: r["epoch"])
                ax.scatter(
                    [p["I_XT"] for p in pts],
                    [p["I_TY"] for p in pts],
                    c=[p["epoch"] + 1 for p in pts],
                    cmap=cmap,
                    norm=norm,
                    marker=marker,
                    s=18,
                    edgecolors="none",
                    zorder=2,
                    label=f"layer {label}",
                )
            ax.axvline(h_x, color="0.6", linestyle=":", linewidth=0.8)
            ax.axhline(h_y, color="0.6", linestyle=":", linewidth=0.8)
            ax.set_xlim(0, 1.04 * h_x)
            ax.set_ylim(0, 1.06 * h_y)
            binning_range = "[-1, 1]" if activation == "tanh" else "observed range"
            detail = f", {binning_range}" if estimator == "binning" else ""
            title = f"{activation}: {ESTIMATOR_TITLES[estimator]}{detail}"
            if row == 0:
                title += (
                    f"\ntrain accuracy {result['train_acc']:.3f}, "
                    f"test accuracy {result['test_acc']:.3f}"
                )
            ax.set_title(title, fontsize=10)
            if row == 1:
                ax.set_xlabel("I(X;T) [bits]")
            if col == 0:
                ax.set_ylabel("I(T;Y) [bits]")
    axes[0, 0].legend(fontsize=7, loc="lower right", markerscale=1.2)
    scalar = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(scalar, ax=axes, label="epoch (log scale)", shrink=0.8)
    fig.suptitle(
        "12-10-7-5-4-3-2 network on the 12-bit task of Shwartz-Ziv & Tishby (2017), "
        f"{max_epochs} epochs, Adam 4e-4, batch 256\n(Saxe et al. 2018 report compression "
        "for tanh under binning and none for ReLU)",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_epochs", type=int, default=3000, help="epochs per network")
    parser.add_argument("--log_points", type=int, default=30, help="measured epochs (log)")
    parser.add_argument("--max_samples", type=int, default=4096, help="patterns measured")
    parser.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where the PNG goes")
    parser.add_argument("--log_dir", type=Path, default=Path("runs/saxe2018"))
    parser.add_argument("--workers", type=int, default=2, help="processes (one per network)")
    parser.add_argument("--quick", action="store_true", help="30 epochs, 1,024 patterns: smoke")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    max_epochs, log_points, max_samples = (
        (30, 8, 1024) if args.quick else (args.max_epochs, args.log_points, args.max_samples)
    )

    start = time.perf_counter()
    jobs = [
        (activation, max_epochs, log_points, max_samples, args.lr, args.seed, str(args.log_dir))
        for activation in ACTIVATIONS
    ]
    log.info("training tanh and ReLU networks for %d epochs each ...", max_epochs)
    if args.workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            results = {r["activation"]: r for r in pool.map(train, *zip(*jobs, strict=True))}
    else:
        results = {job[0]: train(*job) for job in jobs}

    for activation in ACTIVATIONS:
        result = results[activation]
        log.info(
            "%s: %.0f s, train accuracy %.3f, test accuracy %.3f, history in %s",
            activation,
            result["seconds"],
            result["train_acc"],
            result["test_acc"],
            result["log_dir"],
        )
        for estimator in ESTIMATOR_TITLES:
            log.info("  %s I(X;T) [bits]: layer, epoch of its peak, peak, final", estimator)
            for label, epoch, peak, final in compression_table(result, estimator):
                log.info("    %-12s %6d %7.3f %7.3f", label, epoch, peak, final)
            log.info(
                "  %s: I(X;T) grows with depth (> 0.1 bit) at %d of %d measured epochs",
                estimator,
                depth_increases(result, estimator),
                len({r["epoch"] for r in result["history"]}),
            )
    path = args.out / "saxe2018_tanh_vs_relu.png"
    plot(results, path, max_epochs)
    log.info("saved %s (%.0f s in all)", path, time.perf_counter() - start)


if __name__ == "__main__":
    main()
