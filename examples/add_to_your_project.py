"""An ordinary Lightning project that gains information curves with three lines.

Everything here is plain PyTorch Lightning: a small tanh MLP as a LightningModule, and
DataLoaders over scikit-learn's bundled 8x8 digits. The three lines marked
``# <-- lit-infobottleneck`` (the import, constructing the callback, passing it to the
Trainer) add the InfoMetrics callback: on every validation epoch it estimates, for both hidden
layers, I(X;T) and I(T;Y) in bits (30-bin binning and KDE with noise variance 0.1), logs them
as ``info/<estimator>/I_XT/<layer>`` and ``info/<estimator>/I_TY/<layer>``, draws the
information plane into TensorBoard and writes ``info_metrics.csv`` / ``info_metrics.json``
to the log dir. The LightningModule itself does not change.

    python examples/add_to_your_project.py                  # ~20 s on 2 CPU cores
    python examples/add_to_your_project.py --max_epochs 3 --out /tmp/runs
    tensorboard --logdir runs/add_to_your_project
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics  # <-- lit-infobottleneck

log = logging.getLogger("add_to_your_project")


class DigitsClassifier(L.LightningModule):
    """64 pixels -> 32 tanh -> 16 tanh -> 10 logits, cross-entropy, Adam."""

    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, 32),
            nn.Tanh(),
            nn.Linear(32, 16),
            nn.Tanh(),
            nn.Linear(16, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def digits_loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """80 % / 20 % stratified split of the 1,797 digits, pixels scaled to [0, 1]."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    train, val = train_test_split(
        range(len(y)), test_size=0.2, stratify=digits.target, random_state=seed
    )
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(x[val], y[val]), batch_size=256),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("runs/add_to_your_project"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(1)  # a tiny network: one thread is fastest on CPU
    L.seed_everything(0, verbose=False)
    train_loader, val_loader = digits_loaders()
    model = DigitsClassifier()

    info = InfoMetrics(layers=["net.1", "net.3"])  # <-- lit-infobottleneck: the tanh layers
    trainer = L.Trainer(
        max_epochs=args.max_epochs,
        logger=TensorBoardLogger(args.out, name="digits"),
        callbacks=[info],  # <-- lit-infobottleneck
        enable_progress_bar=False,
        log_every_n_steps=10,
    )
    trainer.fit(model, train_loader, val_loader)

    log.info("validation accuracy %.3f", float(trainer.callback_metrics["val_acc"]))
    for name, value in sorted(trainer.callback_metrics.items()):
        if name.startswith("info/") and "/I_" in name:
            log.info("%-32s %6.3f bits", name, float(value))
    log.info("history: %s", InfoMetrics.log_dir(trainer) / "info_metrics.csv")
    log.info("curves and information planes: tensorboard --logdir %s", args.out)


if __name__ == "__main__":
    main()
