"""Wall-time overhead of InfoMetrics on two training runs, against the same fit without it.

- ``digits``: a 64-256-256-256-256-10 tanh MLP trained with Adam on scikit-learn's digits
  (1,197 train / 600 validation examples, batch 32), with
  ``InfoMetrics(estimators=[binning(30), kde(0.1)], 4 layers, max_samples=2000)`` (all 600
  validation examples measured), no logger.
- ``cnn``: a small CNN (two conv blocks 3->16->32 channels with ReLU and max-pooling, a
  64-unit ReLU dense layer, a 10-way head) on CIFAR-shaped synthetic images (3x32x32, 4,000
  training and 1,000 validation images, 10 classes: a class template plus noise, batch 64),
  with ``InfoMetrics(layers=[3 ReLUs])`` and its default estimators and figures, logging to
  TensorBoard (the reference run logs to TensorBoard too).

- ``main``: the main job, ``lit-ib fit --config configs/default.yaml`` (README command 1:
  VIB on digits, 40 epochs, KDE and noisy estimators on 4 layers, TensorBoard, checkpoints)
  as a subprocess, against the same config with InfoMetrics removed; wall time of the whole
  command, start-up (about 10 s of imports) included. Settings: without, every epoch.

Runs alternate between the settings (without, every epoch, every 5th epoch), the median of
``--repeats`` runs is reported with the time the callback itself reports estimating
(``info/seconds``), one torch thread per process (``--threads``). Results are recorded in
docs/benchmarks.md.

    python benchmarks/callback_overhead.py                 # all three cases
    python benchmarks/callback_overhead.py --case cnn --epochs 10
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics


class Classifier(L.LightningModule):
    """Cross-entropy on ``self.net`` with Adam (lr 1e-3)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def digits_net() -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise([64, 256, 256, 256, 256]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def digits_case() -> dict[str, Any]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = perm[:1197], perm[1197:]
    return {
        "model": lambda: Classifier(digits_net()),  # new weights every run
        "train": DataLoader(TensorDataset(x[train], y[train]), batch_size=32, shuffle=True),
        "val": DataLoader(TensorDataset(x[val], y[val]), batch_size=200),
        "callback": {
            "layers": ["net.1", "net.3", "net.5", "net.7"],
            "estimators": [{"name": "binning", "bins": 30}, {"name": "kde", "noise_var": 0.1}],
            "max_samples": 2000,
        },
        "logger": False,
        "title": "digits MLP, 4 measured tanh layers, no logger",
    }


def cnn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),  # net.1
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),  # net.4
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64),
        nn.ReLU(),  # net.8
        nn.Linear(64, 10),
    )


def cnn_case() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    templates = torch.randn(10, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (5000,), generator=g)
    x = 0.5 * templates[y] + torch.randn(5000, 3, 32, 32, generator=g)
    return {
        "model": lambda: Classifier(cnn_net()),
        "train": DataLoader(TensorDataset(x[:4000], y[:4000]), batch_size=64, shuffle=True),
        "val": DataLoader(TensorDataset(x[4000:], y[4000:]), batch_size=250),
        "callback": {"layers": ["net.1", "net.4", "net.8"]},
        "logger": True,
        "title": "CNN on 3x32x32 images, 3 measured ReLU layers, defaults, TensorBoard",
    }


CASES = {"digits": digits_case, "cnn": cnn_case}
REPO = Path(__file__).resolve().parents[1]


def main_job_seconds(with_info_metrics: bool) -> float:
    """Wall time of ``lit-ib fit --config configs/default.yaml`` in a fresh process (s)."""
    config = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    root = tempfile.mkdtemp(prefix="main_job_")
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(Path(root) / "runs")
    config["trainer"]["default_root_dir"] = root
    if not with_info_metrics:
        config["trainer"]["callbacks"] = [
            c for c in config["trainer"]["callbacks"] if "InfoMetrics" not in c["class_path"]
        ]
    path = Path(root) / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "lit_infobottleneck", "fit", "--config", str(path)]
    start = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def measure_main_job(repeats: int) -> None:
    wall: dict[str, list[float]] = {"without InfoMetrics": [], "every epoch": []}
    for _ in range(repeats):
        wall["without InfoMetrics"].append(main_job_seconds(False))
        wall["every epoch"].append(main_job_seconds(True))
    base = statistics.median(wall["without InfoMetrics"])
    print(f"\nmain job (configs/default.yaml, 40 epochs, whole command), median of {repeats}\n")
    print("| run | wall time (s) | ratio |")
    print("|---|---|---|")
    for label, times in wall.items():
        w = statistics.median(times)
        print(f"| {label} | {w:.2f} | {w / base:.3f} |")


def run(case: dict[str, Any], epochs: int, every_n_epochs: int | None) -> tuple[float, float]:
    """Wall time of one fit, and the callback's own estimation time (s)."""
    L.seed_everything(0, verbose=False)
    callbacks = []
    if every_n_epochs is not None:
        callbacks.append(InfoMetrics(**case["callback"], every_n_epochs=every_n_epochs))
    root = tempfile.mkdtemp(prefix="callback_overhead_")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=TensorBoardLogger(root, name="") if case["logger"] else False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=root,
    )
    start = time.perf_counter()
    trainer.fit(case["model"](), case["train"], case["val"])
    total = time.perf_counter() - start
    info_seconds = 0.0
    if callbacks:
        info_seconds = float(callbacks[0].meta.get("seconds_total", 0.0))
    return total, info_seconds


def measure(name: str, epochs: int, repeats: int) -> None:
    case = CASES[name]()
    settings = {"without InfoMetrics": None, "every epoch": 1, "every 5th epoch": 5}
    wall: dict[str, list[float]] = {k: [] for k in settings}
    estimating: dict[str, list[float]] = {k: [] for k in settings}
    for _ in range(repeats):
        for label, every in settings.items():
            total, info = run(case, epochs, every)
            wall[label].append(total)
            estimating[label].append(info)
    base = statistics.median(wall["without InfoMetrics"])
    print(f"\n{case['title']}, {epochs} epochs, median of {repeats}\n")
    print("| run | wall time (s) | ratio | of which estimating (s) |")
    print("|---|---|---|---|")
    for label in settings:
        w = statistics.median(wall[label])
        est = statistics.median(estimating[label])
        print(f"| {label} | {w:.2f} | {w / base:.3f} | {est:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "main", "all"], default="all")
    parser.add_argument("--epochs", type=int, default=None, help="default: digits 20, cnn 10")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"torch threads: {torch.get_num_threads()}")
    for name in [*CASES, "main"] if args.case == "all" else [args.case]:
        if name == "main":
            measure_main_job(args.repeats)
        else:
            measure(name, args.epochs or {"digits": 20, "cnn": 10}[name], args.repeats)


if __name__ == "__main__":
    main()
