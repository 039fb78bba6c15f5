"""Saxe et al. (2018) against Shwartz-Ziv & Tishby (2017): is "compression" real? Several seeds.

Shwartz-Ziv & Tishby (2017) trained a 12-10-7-5-4-3-2 tanh network on their 12-bit task and
saw, with a binning estimate of mutual information, each layer's I(X;T) first rise and then
fall late in training: a "compression phase". Saxe et al. (2018, "On the information
bottleneck theory of deep learning") repeated the experiment with ReLU units and saw no such
fall, traced the compression to tanh saturating into a few bins, and averaged their planes
over 50 networks because single runs "can vary substantially".

This script trains that network on :class:`~lit_infobottleneck.data.TishbyDataModule` with
tanh and with ReLU, ``--seeds`` times each (default 5: seed s sets the initialisation and
the 80 % training split), measures all six layers on all 4,096 patterns (``val_split="all"``)
with :class:`~lit_infobottleneck.callbacks.InfoMetrics` at log-spaced epochs, and draws

- ``docs/saxe2018_tanh_vs_relu.png``: the four information planes (tanh / ReLU x binning /
  KDE), the mean over the seeds of every layer's trajectory, ±1 standard error of the mean
  as error bars in both directions (:mod:`lit_infobottleneck.plot_runs`);
- ``docs/saxe2018_geometry.png``: the layers' within-class / total scatter ratio (class
  clustering; Goldfeld et al. 2019 showed binned compression *is* clustering) against the
  epoch, mean ± standard error, tanh beside ReLU.

Estimators: binning, 30 equal-width bins, over the fixed range [-1, 1] for tanh (as in both
papers) and over each layer's observed range at that epoch for ReLU (unbounded, so no fixed
range fits every epoch; the bins widen as the largest activations grow, which alone can
make a binned ReLU I(X;T) fall); the KDE upper bound with noise variance 0.1 (Kolchinsky &
Tracey; Saxe et al.).

Setup of Saxe et al.'s released code (``artemyk/ibsgd``, ``IBnet_SaveActivations``), as far as
the library allows: Adam, batch size 256, a random 80 % of the patterns for training, hidden
weights from a normal distribution truncated at two standard deviations with std
1/sqrt(width of the layer), zero biases, Glorot-uniform softmax layer, cross-entropy loss.
Differences, to fit 10 networks into about 21 minutes on two CPU cores: learning rate 4e-3
for 300 epochs instead of 4e-4 for 10,000 (ten times the rate shows both phases, as in
``configs/tishby_tanh.yaml``; ``--lr 4e-4 --max_epochs 10000`` for the original), 20
measured epochs on a log scale. ``--quick`` (2 seeds, 20 epochs, 5 measurements of 512
patterns) is a smoke test, not a result.

    python examples/reproduce_saxe2018.py            # 5 seeds x 2 networks, ~21 min, 2 processes
    python examples/reproduce_saxe2018.py --replot   # redraw from runs/saxe2018/results.json
    python examples/reproduce_saxe2018.py --quick    # ~1 min smoke test
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import multiprocessing
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.data import TishbyDataModule
from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import ClassifierHead, DeterministicBottleneck, MLPEncoder
from lit_infobottleneck.plot_runs import Run, aggregate, describe

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
    """Train one network (``seed``: its initialisation and training split); return its
    information and geometry histories and accuracies (plain data)."""
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
        logger=TensorBoardLogger(log_dir, name=activation, version=f"seed_{seed}"),
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
        "seed": seed,
        "history": info.history,
        "geometry": info.geometry_history,
        "meta": info.meta,
        "train_acc": train_acc,
        "test_acc": float(test_acc),
        "seconds": seconds,
        "log_dir": str(InfoMetrics.log_dir(trainer)),
    }


def compression(result: dict[str, Any], estimator: str) -> dict[str, tuple[int, float, float]]:
    """Per layer of one run: (epoch of the largest I(X;T), that largest value, final value)."""
    rows = {}
    for layer in LAYERS:
        points = sorted(
            (r for r in result["history"] if r["estimator"] == estimator and r["layer"] == layer),
            key=lambda r: r["epoch"],
        )
        if points:
            peak = max(points, key=lambda r: r["I_XT"])
            rows[layer] = (peak["epoch"] + 1, peak["I_XT"], points[-1]["I_XT"])
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


def mean_history(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds of one network averaged by :func:`lit_infobottleneck.plot_runs.aggregate`:
    mean and ±1 standard error per estimator, layer and measured epoch."""
    runs = [
        Run(Path(r["log_dir"]), {**r["meta"], "records": r["history"], "geometry": r["geometry"]})
        for r in results
    ]
    return aggregate(runs, band="se")


def plot_planes(means: dict[str, dict[str, Any]], accuracy: dict[str, str], path: Path) -> None:
    """Mean information planes: columns tanh / ReLU, rows binning / KDE; colour = epoch
    (log), ±1 standard error over the seeds as error bars."""
    fig = Figure(figsize=(11, 8.5))
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    max_epoch = max(r["epoch"] + 1 for m in means.values() for r in m["records"])
    norm = matplotlib.colors.LogNorm(vmin=1, vmax=max(max_epoch, 2))
    cmap = matplotlib.colormaps["viridis"]
    for col, activation in enumerate(ACTIVATIONS):
        mean = means[activation]
        h_x, h_y = mean.get("h_x") or 12.0, mean.get("h_y") or 1.0
        for row, estimator in enumerate(ESTIMATOR_TITLES):
            ax = axes[row, col]
            records = [r for r in mean["records"] if r["estimator"] == estimator]
            for layer, label, marker in zip(LAYERS, LAYER_LABELS, "osD^v*", strict=True):
                pts = sorted((r for r in records if r["layer"] == layer), key=lambda r: r["epoch"])
                xs, ys = [p["I_XT"] for p in pts], [p["I_TY"] for p in pts]
                ax.plot(xs, ys, color="0.75", linewidth=0.8, zorder=1)
                ax.errorbar(
                    xs,
                    ys,
                    xerr=[
                        [p["I_XT"] - p["I_XT_low"] for p in pts],
                        [p["I_XT_high"] - p["I_XT"] for p in pts],
                    ],
                    yerr=[
                        [p["I_TY"] - p["I_TY_low"] for p in pts],
                        [p["I_TY_high"] - p["I_TY"] for p in pts],
                    ],
                    fmt="none",
                    ecolor="0.55",
                    elinewidth=0.6,
                    zorder=1.5,
                )
                ax.scatter(
                    xs,
                    ys,
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
                title += f"\n{accuracy[activation]}"
            ax.set_title(title, fontsize=10)
            if row == 1:
                ax.set_xlabel("I(X;T) [bits]")
            if col == 0:
                ax.set_ylabel("I(T;Y) [bits]")
    axes[0, 0].legend(fontsize=7, loc="lower right", markerscale=1.2)
    scalar = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(scalar, ax=axes, label="epoch (log scale)", shrink=0.8)
    n_runs = means[ACTIVATIONS[0]]["n_runs"]
    fig.suptitle(
        "12-10-7-5-4-3-2 network on the 12-bit task of Shwartz-Ziv & Tishby (2017): "
        f"{describe(n_runs, 'se', 'error bars')} (seeds)\n(Saxe et al. 2018 report "
        "compression for tanh under binning and none for ReLU)",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_geometry(means: dict[str, dict[str, Any]], path: Path) -> None:
    """Within-class / total scatter of every layer against the epoch (log), mean ±1
    standard error over the seeds, tanh beside ReLU."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, activation in zip(axes, ACTIVATIONS, strict=True):
        rows = means[activation]["geometry"]
        for layer, label in zip(LAYERS, LAYER_LABELS, strict=True):
            pts = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
            pts = [p for p in pts if p["within_class_ratio"] is not None]
            epochs = [p["epoch"] + 1 for p in pts]
            (line,) = ax.plot(
                epochs, [p["within_class_ratio"] for p in pts], label=f"layer {label}"
            )
            ax.fill_between(
                epochs,
                [p["within_class_ratio_low"] for p in pts],
                [p["within_class_ratio_high"] for p in pts],
                color=line.get_color(),
                alpha=0.25,
                linewidth=0,
            )
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("epoch (log scale)")
        ax.set_title(f"{activation}: class clustering of each layer", fontsize=10)
    axes[0].set_ylabel(
        "within-class / total scatter [unitless]\n(1: no class structure, 0: collapsed)"
    )
    axes[1].legend(fontsize=7)
    n_runs = means[ACTIVATIONS[0]]["n_runs"]
    fig.suptitle(f"Geometry beside the planes: {describe(n_runs, 'se')} (seeds)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report(results: list[dict[str, Any]]) -> dict[str, str]:
    """Log per network: accuracies and, per estimator and layer, how much the seeds'
    I(X;T) fell from its peak; returns the accuracy line of each network for the figure."""
    accuracy = {}
    for activation in ACTIVATIONS:
        mine = [r for r in results if r["activation"] == activation]
        train_acc = [r["train_acc"] for r in mine]
        test_acc = [r["test_acc"] for r in mine]
        accuracy[activation] = (
            f"train accuracy {statistics.fmean(train_acc):.3f}, "
            f"test {statistics.fmean(test_acc):.3f} (mean of {len(mine)} seeds)"
        )
        log.info(
            "%s: %s, %.0f s per run",
            activation,
            accuracy[activation],
            statistics.fmean(r["seconds"] for r in mine),
        )
        for estimator in ESTIMATOR_TITLES:
            log.info(
                "  %s I(X;T) [bits] per layer: mean peak, mean final, seeds whose final "
                "is > 0.5 bit below their peak",
                estimator,
            )
            tables = [compression(r, estimator) for r in mine]
            for layer, label in zip(LAYERS, LAYER_LABELS, strict=True):
                rows = [t[layer] for t in tables if layer in t]
                if not rows:
                    continue
                fell = sum(1 for _, peak, final in rows if final < peak - 0.5)
                log.info(
                    "    %-12s %7.3f %7.3f   %d of %d",
                    label,
                    statistics.fmean(p for _, p, _ in rows),
                    statistics.fmean(f for _, _, f in rows),
                    fell,
                    len(rows),
                )
            increases = [depth_increases(r, estimator) for r in mine]
            log.info(
                "  %s: I(X;T) grows with depth (> 0.1 bit) at %s measured epochs per seed",
                estimator,
                increases,
            )
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="networks per activation")
    parser.add_argument("--max_epochs", type=int, default=300, help="epochs per network")
    parser.add_argument("--log_points", type=int, default=20, help="measured epochs (log)")
    parser.add_argument("--max_samples", type=int, default=4096, help="patterns measured")
    parser.add_argument("--lr", type=float, default=4e-3, help="Adam learning rate")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where the PNGs go")
    parser.add_argument("--log_dir", type=Path, default=Path("runs/saxe2018"))
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--replot", action="store_true", help="redraw from results.json")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 epochs: smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seeds, max_epochs, log_points, max_samples = (
        (2, 20, 5, 512)
        if args.quick
        else (args.seeds, args.max_epochs, args.log_points, args.max_samples)
    )
    results_path = args.log_dir / "results.json"
    start = time.perf_counter()
    if args.replot:
        results = json.loads(results_path.read_text())
    else:
        jobs = [
            (activation, max_epochs, log_points, max_samples, args.lr, seed, str(args.log_dir))
            for seed in range(seeds)
            for activation in ACTIVATIONS
        ]
        log.info(
            "training %d tanh and %d ReLU networks for %d epochs each ...", seeds, seeds, max_epochs
        )
        if args.workers > 1:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
                results = list(pool.map(train, *zip(*jobs, strict=True)))
        else:
            results = [train(*job) for job in jobs]
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results))
    accuracy = report(results)
    means = {a: mean_history([r for r in results if r["activation"] == a]) for a in ACTIVATIONS}
    planes, geometry = args.out / "saxe2018_tanh_vs_relu.png", args.out / "saxe2018_geometry.png"
    plot_planes(means, accuracy, planes)
    plot_geometry(means, geometry)
    log.info(
        "saved %s and %s (%.0f s in all; results in %s)",
        planes,
        geometry,
        time.perf_counter() - start,
        results_path,
    )


if __name__ == "__main__":
    main()
