"""Memory soak: resident memory over many measured epochs with every estimator on.

Trains a small tanh MLP on scikit-learn's digits with InfoMetrics measuring two layers with
every registered estimator (the neural ones with few steps) every epoch, TensorBoard logging
and information-plane figures on, and records after each validation epoch:

- the process's resident memory (VmRSS from /proc/self/status, after ``gc.collect()``),
- the largest number of rows / columns any capture buffer held during the epoch.

A leak grows RSS epoch over epoch; the check is RSS after epoch ``--early`` vs after the
last epoch (the issue's target: less than 5 % apart).

    python benchmarks/memory_soak.py                  # 50 epochs, prints a table
    python benchmarks/memory_soak.py --epochs 12 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.estimators import available_estimators

NEURAL = {"infonce", "mine", "nwj", "smile"}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class SoakMLP(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class MemoryProbe(Callback):
    """RSS after each validation epoch; largest capture buffer within it."""

    def __init__(self, info: InfoMetrics) -> None:
        self.info = info
        self.rows: list[dict] = []
        self._max_rows = self._max_cols = 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        capture = self.info._capture
        if capture is None:
            return
        for parts in capture.buffers.values():
            self._max_rows = max(self._max_rows, sum(p.shape[0] for p in parts))
            self._max_cols = max([self._max_cols] + [p.shape[1] for p in parts])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        gc.collect()
        self.rows.append(
            {
                "epoch": trainer.current_epoch,
                "rss_mib": rss_mib(),
                "buffer_rows": self._max_rows,
                "buffer_cols": self._max_cols,
            }
        )
        self._max_rows = self._max_cols = 0


def soak(epochs: int, max_samples: int, neural_steps: int, root: Path, names: list[str]) -> dict:
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=100, shuffle=True)
    val = DataLoader(TensorDataset(x[1200:], y[1200:]), batch_size=100)
    estimators = [
        {"name": name, "max_steps": neural_steps, "eval_every": 10, "hidden_dim": 32}
        if name in NEURAL
        else {"name": name}
        for name in names
    ]
    info = InfoMetrics(layers=["net.1", "net.3"], estimators=estimators, max_samples=max_samples)
    probe = MemoryProbe(info)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(root, name="soak"),
        callbacks=[info, probe],  # probe after InfoMetrics: it sees the epoch's estimates done
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=5,
    )
    start = time.perf_counter()
    trainer.fit(SoakMLP(), train, val)
    return {
        "epochs": epochs,
        "max_samples": max_samples,
        "estimators": [e["name"] for e in estimators],
        "seconds": time.perf_counter() - start,
        "records": len(info.history),
        "rows": probe.rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--early", type=int, default=5, help="epoch compared with the last")
    parser.add_argument("--max-samples", type=int, default=400)
    parser.add_argument("--neural-steps", type=int, default=30)
    parser.add_argument("--estimators", nargs="+", default=available_estimators())
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        result = soak(args.epochs, args.max_samples, args.neural_steps, Path(root), args.estimators)
    rows = result["rows"]
    early, last = rows[args.early]["rss_mib"], rows[-1]["rss_mib"]
    result["rss_early_mib"], result["rss_last_mib"] = early, last
    result["rss_change"] = (last - early) / early
    print(f"{len(rows)} measured epochs, {result['records']} estimates, {result['seconds']:.0f} s")
    print("| epoch | RSS (MiB) | largest buffer (rows x cols) |")
    print("|---|---|---|")
    for row in rows:
        if row["epoch"] in (0, 1, args.early) or row["epoch"] % 10 == 9:
            shape = f"{row['buffer_rows']} x {row['buffer_cols']}"
            print(f"| {row['epoch']} | {row['rss_mib']:.1f} | {shape} |")
    print(
        f"RSS after epoch {args.early}: {early:.1f} MiB; after epoch {rows[-1]['epoch']}: "
        f"{last:.1f} MiB; change {100 * result['rss_change']:+.2f} %"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
