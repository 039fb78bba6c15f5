"""Wall-time overhead of InfoMetrics on a digits training run.

A 64-256-256-256-256-10 tanh MLP trained with Adam for ``--epochs`` epochs on scikit-learn's
digits (1,197 train / 600 validation examples, batch 32), with and without
``InfoMetrics(estimators=[binning(30), kde(0.1)], 4 layers, every epoch, max_samples=2000)``
(all 600 validation examples are measured). Runs alternate between the two settings and the
median of ``--repeats`` runs is reported, with the time the callback itself reports
(``info/seconds``). Results are recorded in docs/benchmarks.md.

    python benchmarks/callback_overhead.py
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics

LAYERS = ["net.1", "net.3", "net.5", "net.7"]


class DigitsMLP(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        widths = [64, 256, 256, 256, 256]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(256, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def loaders() -> tuple[DataLoader, DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = perm[:1197], perm[1197:]
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=32, shuffle=True),
        DataLoader(TensorDataset(x[val], y[val]), batch_size=200),
    )


def run(epochs: int, every_n_epochs: int | None) -> tuple[float, float]:
    """Wall time of one fit, and the callback's own estimation time (s)."""
    L.seed_everything(0, verbose=False)
    callbacks = []
    if every_n_epochs is not None:
        callbacks.append(
            InfoMetrics(
                layers=LAYERS,
                estimators=[{"name": "binning", "bins": 30}, {"name": "kde", "noise_var": 0.1}],
                max_samples=2000,
                every_n_epochs=every_n_epochs,
            )
        )
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=tempfile.mkdtemp(prefix="callback_overhead_"),
    )
    train, val = loaders()
    start = time.perf_counter()
    trainer.fit(DigitsMLP(), train, val)
    total = time.perf_counter() - start
    info_seconds = 0.0
    if callbacks:
        info_seconds = float(callbacks[0].meta.get("seconds_total", 0.0))
    return total, info_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    settings = {"without InfoMetrics": None, "every epoch": 1, "every 5th epoch": 5}
    wall: dict[str, list[float]] = {k: [] for k in settings}
    estimating: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(args.repeats):
        for label, every in settings.items():
            total, info = run(args.epochs, every)
            wall[label].append(total)
            estimating[label].append(info)
    base = statistics.median(wall["without InfoMetrics"])
    print(f"digits MLP, 4 measured tanh layers, {args.epochs} epochs, median of {args.repeats}\n")
    print("| run | wall time (s) | ratio | of which estimating (s) |")
    print("|---|---|---|---|")
    for label in settings:
        w = statistics.median(wall[label])
        est = statistics.median(estimating[label])
        print(f"| {label} | {w:.2f} | {w / base:.3f} | {est:.2f} |")


if __name__ == "__main__":
    main()
