"""Cross-entropy, VIB and the three-term InfoObjective on the same CNN, on MNIST offline.

The three-term objective ``max I(X;Y) - l1 H(X|Z) - l2 H(Z|Y)``
(:class:`~lit_infobottleneck.objectives.InfoObjective`, trained through the bounds
``ce + l1 * recon_nll + l2 * h_z_given_y``, all nats per example) is sketched for an image
classifier: convolution layers, a dense layer, the output. This script trains that classifier
(the network of ``configs/mnist_cnn_info_objective.yaml``: two conv blocks of 16 and 32
channels, conv 3x3 / ReLU / 2x2 max-pool, a 128-unit dense ReLU layer, a 16-unit
bottleneck, a linear head; Adam 1e-3, batch 250) with three objectives:

- ``ce``: cross-entropy alone, with a deterministic linear bottleneck;
- ``vib``: VIB (Alemi et al. 2017), ``ce + beta * kl`` with a Gaussian bottleneck;
- ``info``: InfoObjective with the same Gaussian bottleneck and a Gaussian decoder q(x|z)
  (the pixels are standardised, so not "bernoulli").

Data: the 10,000 official MNIST test images in ``<root>/MNIST/raw/`` (``--root``, default
``../shared/data``), split 8,000 / 1,000 / 1,000 by ``TorchvisionDataModule(
split_test_set=True)``. Seed s sets that split, the batch order and the initialisation; the
three objectives see the same split for a given seed. On 1,000 test images one image is
0.1 % of accuracy.

Weights (``--beta``, ``--lambda1``, ``--lambda2``): beta = 1e-3 (Alemi et al.); lambda1 =
1e-3 (recon_nll sums 784 pixels, about 900 nats, so its share of the loss is about 1 nat, like
ce); lambda2 = 1e-2 (at 1e-3 h_z_given_y grew from -29 to +13 nats in 8 epochs, unchecked; at
1e-2 it stays near -4 at no cost in accuracy; at 1e-1 z collapsed onto the eps floor
K/2 log(2 pi e eps) = -32.6 nats and test accuracy fell to 10 %: the bound falls with the
scale of z, which the linear head can undo). Single-seed checks, 8 epochs.

Each run is a real Lightning ``Trainer.fit``, then ``Trainer.test`` and ``Trainer.predict`` on
the test split (weights of the last epoch), with a CSVLogger (``--logdir``) and
:class:`~lit_infobottleneck.callbacks.InfoMetrics` (the config's layers and estimators:
calibrated KDE upper bound and noisy-network estimate of I(X; T+Z), on the 1,000 validation
images, every epoch). The script prints a table (test accuracy mean +- std and min-max over
the seeds, the module's macro-averaged ``test/acc``, I(X;Z) and I(Z;Y) of z at the last
epoch, seconds per run) and saves ``--out`` (default ``docs/mnist_cnn_info_objective.png``):
the three terms of InfoObjective over training and its information planes, and
``--planes_out`` (default ``docs/mnist_cnn_objectives_planes.png``): the KDE planes of the
three objectives, both for the seed ``--plot_seed``. About 6 min on 2 shared CPU cores (one
thread; 30-45 s per run).

    python examples/compare_objectives_mnist.py              # 3 objectives x 3 seeds x 8 epochs
    python examples/compare_objectives_mnist.py --quick      # 1 seed, 1 epoch: smoke test
    python examples/compare_objectives_mnist.py --epochs 20 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
import torch
from lightning.pytorch.loggers import CSVLogger
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.data import TorchvisionDataModule
from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import (
    ClassifierHead,
    CNNEncoder,
    DeterministicBottleneck,
    GaussianBottleneck,
)
from lit_infobottleneck.objectives import VIB, CrossEntropy, InfoObjective

matplotlib.use("Agg")

log = logging.getLogger("compare_objectives_mnist")

OBJECTIVES = ("ce", "vib", "info")
NAMES = {"ce": "cross-entropy", "vib": "VIB", "info": "InfoObjective"}
LAYERS = ["encoder.conv.5", "encoder.fc.2", "representation", "prediction"]
ESTIMATORS = [{"name": "kde", "noise_var": "auto"}, {"name": "noisy", "noise_var": "auto"}]
TERMS = ("ce", "recon_nll", "h_z_given_y")
CHANNELS, DENSE, LATENT = [16, 32], 128, 16
#: Divides 8,000 and 1,000: no short last batch (its few z per class would bias the
#: H(Z|Y) bound low, see ``gaussian_class_conditional_entropy``).
BATCH = 250
#: InfoObjective's ridge on the class covariances: the H(Z|Y) bound is >= K/2 log(2 pi e eps).
EPS = 1e-3
MARKERS = "osD^"


def build_model(objective: str, args: argparse.Namespace) -> InfoBottleneckClassifier:
    """The CNN of ``configs/mnist_cnn_info_objective.yaml`` with one of the three objectives."""
    if objective == "ce":
        bottleneck: torch.nn.Module = DeterministicBottleneck(DENSE, LATENT)
        loss: Any = CrossEntropy()
    else:
        bottleneck = GaussianBottleneck(DENSE, latent_dim=LATENT)
        if objective == "vib":
            loss = VIB(beta=args.beta)
        else:
            loss = InfoObjective(
                lambda1=args.lambda1, lambda2=args.lambda2, likelihood="gaussian", eps=EPS
            )
    return InfoBottleneckClassifier(
        encoder=CNNEncoder(1, 28, CHANNELS, DENSE, activation="relu"),
        bottleneck=bottleneck,
        head=ClassifierHead(LATENT, num_classes=10),
        objective=loss,
        input_shape=[1, 28, 28],
        optimizer=lambda params: torch.optim.Adam(params, lr=args.lr),
    )


def run(objective: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train and test one model; its test metrics, InfoMetrics history and logged terms."""
    start = time.perf_counter()
    L.seed_everything(seed, verbose=False)
    data = TorchvisionDataModule(
        "mnist", root=args.root, download=False, batch_size=BATCH, seed=seed, split_test_set=True
    )
    model = build_model(objective, args)
    info = InfoMetrics(layers=LAYERS, estimators=ESTIMATORS, max_samples=1000, plot=False)
    logger = CSVLogger(args.logdir, name=objective, version=f"seed_{seed}")
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=logger,
        callbacks=[info],
        log_every_n_steps=4,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    test = trainer.test(model, datamodule=data, verbose=False)[0]
    probabilities = torch.cat(trainer.predict(model, dataloaders=data.test_dataloader()))
    correct = probabilities.argmax(-1) == data.test_set.labels
    return {
        "objective": objective,
        "seed": seed,
        "acc": float(correct.double().mean()),
        "macro_acc": float(test["test/acc"]),
        "history": [dict(r) for r in info.history],
        "meta": dict(info.meta),
        "terms": read_terms(Path(logger.log_dir) / "metrics.csv"),
        "seconds": time.perf_counter() - start,
    }


def read_terms(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``{"train/ce": [(step, value), ...], "val/ce": ..., ...}`` from a CSVLogger file."""
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for term in TERMS:
                for key, name in ((f"train/{term}_step", f"train/{term}"), (f"val/{term}", None)):
                    if row.get(key):
                        series.setdefault(name or key, []).append(
                            (float(row["step"]), float(row[key]))
                        )
    return series


def last_value(history: list[dict[str, Any]], estimator: str, layer: str, key: str) -> float:
    """``key`` (``I_XT`` or ``I_TY``) of ``layer`` at the last measured epoch."""
    rows = [r for r in history if r["estimator"] == estimator and r["layer"] == layer]
    return max(rows, key=lambda r: r["epoch"])[key]


def summary_table(results: list[dict[str, Any]], epochs: int, n_train: int) -> str:
    """Markdown table: one row per objective, means over its seeds."""
    lines = [
        "| objective | test acc mean +- std | min - max | test/acc (macro) | "
        "I(X;Z) kde [bits] | I(Z;Y) kde [bits] | s / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for objective in OBJECTIVES:
        rows = [r for r in results if r["objective"] == objective]
        if not rows:
            continue
        accs = [100 * r["acc"] for r in rows]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        i_xz = statistics.mean(
            last_value(r["history"], "kde", "representation", "I_XT") for r in rows
        )
        i_zy = statistics.mean(
            last_value(r["history"], "kde", "representation", "I_TY") for r in rows
        )
        macro = statistics.mean(100 * r["macro_acc"] for r in rows)
        seconds = statistics.mean(r["seconds"] for r in rows)
        lines.append(
            f"| {NAMES[objective]} | {statistics.mean(accs):.2f} +- {std:.2f} % | "
            f"{min(accs):.1f} - {max(accs):.1f} % | {macro:.2f} % | {i_xz:.2f} | {i_zy:.2f} | "
            f"{seconds:.0f} |"
        )
    seeds = sorted({r["seed"] for r in results})
    head = (
        f"MNIST test set split {n_train} / 1000 / 1000, {epochs} epochs, seeds {seeds}: test "
        "accuracy on 1,000 images (std over seeds, n - 1); test/acc is the module's logged "
        "metric (torchmetrics MulticlassAccuracy, macro average over classes); I(X;Z), I(Z;Y) "
        "of z at the last epoch, calibrated KDE upper bound on 1,000 validation images; both "
        "means over seeds."
    )
    return head + "\n\n" + "\n".join(lines)


def draw_plane(ax: Any, fig: Any, result: dict[str, Any], estimator: str, title: str) -> None:
    """Information plane of one estimator: a line per layer, points coloured by epoch,
    flagged estimates hollow; H(X) and H(Y) dotted."""
    rows = [r for r in result["history"] if r["estimator"] == estimator]
    epochs = [r["epoch"] for r in rows]
    norm = Normalize(vmin=min(epochs), vmax=max(max(epochs), min(epochs) + 1))
    scatter = None
    for marker, layer in zip(MARKERS, LAYERS, strict=True):
        points = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
        ax.plot([r["I_XT"] for r in points], [r["I_TY"] for r in points], color="0.7", lw=0.8)
        for flagged in (False, True):
            chosen = [r for r in points if bool(r.get("flags")) == flagged]
            if not chosen:
                continue
            colours = [r["epoch"] for r in chosen]
            style = (
                {"facecolors": "none", "edgecolors": matplotlib.colormaps["viridis"](norm(colours))}
                if flagged
                else {"c": colours, "cmap": "viridis", "norm": norm}
            )
            drawn = ax.scatter(
                [r["I_XT"] for r in chosen],
                [r["I_TY"] for r in chosen],
                marker=marker,
                s=26,
                zorder=2,
                label=layer + (" (flagged)" if flagged else ""),
                **style,
            )
            scatter = drawn if not flagged else scatter
    meta = result["meta"]
    h_x, h_y = meta["h_x"], meta["h_y"]
    ax.axvline(h_x, color="0.5", linestyle=":", linewidth=0.8)
    ax.axhline(h_y, color="0.5", linestyle=":", linewidth=0.8)
    ax.text(h_x, h_y, "H(X) ", color="0.4", fontsize=7, ha="right", va="top", rotation=90)
    ax.text(0.1, h_y, "H(Y)", color="0.4", fontsize=7, va="bottom")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.08 * h_y)
    unit = rows[0]["unit"]
    ax.set_xlabel(f"I(X;T) [{unit}]")
    ax.set_ylabel(f"I(T;Y) [{unit}]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    if scatter is not None:
        colorbar = fig.colorbar(scatter, ax=ax, label="epoch")
        colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def plot(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Top: the three terms of InfoObjective over training steps (train every 4 steps, val
    at each epoch end). Bottom: its information planes (KDE, noisy)."""
    fig = Figure(figsize=(13.0, 8.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.35])
    axes = top.subplots(1, 3)
    labels = {
        "ce": "ce = E[-log p(y|z)]  (prediction term, H(Y) - I(Z;Y) + gap)",
        "recon_nll": f"recon_nll = E[-log q(x|z)] >= H(X|Z)  (x lambda1 = {args.lambda1:g})",
        "h_z_given_y": f"h_z_given_y: Gaussian bound >= H(Z|Y)  (x lambda2 = {args.lambda2:g})",
    }
    for ax, term in zip(axes, TERMS, strict=True):
        train = result["terms"].get(f"train/{term}", [])
        val = result["terms"].get(f"val/{term}", [])
        ax.plot(*zip(*train, strict=True), color="tab:blue", lw=1.0, label="train (batch)")
        ax.plot(*zip(*val, strict=True), color="tab:orange", marker="o", ms=4, label="val")
        ax.set_title(labels[term], fontsize=8.5)
        ax.set_xlabel(f"training step ({BATCH} images)")
        ax.set_ylabel("nats per image")
    floor = LATENT / 2 * math.log(2 * math.pi * math.e * EPS)
    axes[2].axhline(floor, color="0.5", linestyle="--", linewidth=0.8, label="K/2 log(2 pi e eps)")
    for ax in axes:
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    top.suptitle(
        f"InfoObjective on MNIST (CNN 16-32 conv, 128 dense, z 16), seed {result['seed']}, "
        f"{args.epochs} epochs, loss = ce + lambda1 recon_nll + lambda2 h_z_given_y",
        fontsize=10,
    )
    for ax, estimator in zip(bottom.subplots(1, 2), ("kde", "noisy"), strict=True):
        title = f"information plane, {estimator} (noise_var auto per layer, frozen at epoch 0)"
        draw_plane(ax, bottom, result, estimator, title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


def plot_planes(results: list[dict[str, Any]], path: Path, epochs: int) -> None:
    """The KDE information planes of the three objectives side by side (one seed)."""
    fig = Figure(figsize=(15.0, 4.6), layout="constrained")
    for ax, result in zip(fig.subplots(1, len(results)), results, strict=True):
        title = (
            f"{NAMES[result['objective']]}: test acc {100 * result['acc']:.1f} %, "
            f"kde (noise_var auto per layer)"
        )
        draw_plane(ax, fig, result, "kde", title)
    fig.suptitle(
        f"Information planes of the same CNN on MNIST (seed {results[0]['seed']}, {epochs} "
        "epochs, 1,000 validation images)",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES))
    parser.add_argument("--beta", type=float, default=1e-3, help="VIB weight of KL")
    parser.add_argument("--lambda1", type=float, default=1e-3, help="weight of H(X|Z)")
    parser.add_argument("--lambda2", type=float, default=1e-2, help="weight of H(Z|Y)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--plot_seed", type=int, default=0)
    parser.add_argument("--logdir", type=Path, default=Path("runs/compare_objectives_mnist"))
    parser.add_argument("--out", type=Path, default=Path("docs/mnist_cnn_info_objective.png"))
    parser.add_argument(
        "--planes_out", type=Path, default=Path("docs/mnist_cnn_objectives_planes.png")
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch: smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("lightning.pytorch", "lightning.fabric", "lit_infobottleneck"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    torch.set_num_threads(1)  # a small CNN on a shared machine: one intra-op thread
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], 1

    start = time.perf_counter()
    results = []
    for seed in args.seeds:
        for objective in args.objectives:
            result = run(objective, seed, args)
            results.append(result)
            log.info(
                "%s seed %d: test acc %.1f %% (%.0f s; %.0f s so far)",
                NAMES[objective],
                seed,
                100 * result["acc"],
                result["seconds"],
                time.perf_counter() - start,
            )
    print("\n" + summary_table(results, args.epochs, 8000) + "\n")
    flagged = sum(bool(r.get("flags")) for result in results for r in result["history"])
    total = sum(len(result["history"]) for result in results)
    print(f"InfoMetrics: {flagged} of {total} estimates flagged (saturated, clipped, ...).")
    plotted = {r["objective"]: r for r in results if r["seed"] == args.plot_seed}
    if "info" in plotted:
        plot(plotted["info"], args)
        log.info("saved %s", args.out)
    if len(plotted) > 1:
        plot_planes([plotted[o] for o in OBJECTIVES if o in plotted], args.planes_out, args.epochs)
        log.info("saved %s", args.planes_out)
    log.info("%.0f s in all", time.perf_counter() - start)


if __name__ == "__main__":
    main()
