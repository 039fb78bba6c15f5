"""The information plane of a ResNet-18's stages on MNIST, with ``InfoMetrics`` chosen by
``layers="auto:stages"`` and no other change to the model.

torchvision's ``resnet18(num_classes=10)``, adapted to 28x28 grey images the usual way (a 3x3
stride-1 first convolution on one channel; the 3x3 max-pool kept, so the stages run at 14, 7,
4 and 2 pixels), is trained from scratch in a plain LightningModule with SGD (momentum 0.9,
lr 0.05, batch 128). ``InfoMetrics(layers="auto:stages")`` measures the output of each of the
four stages, the pooled features and the head (the names are logged once) on the 1,000
validation images, every epoch, with the calibrated KDE upper bound and the noisy-network
estimate of I(X; T+Z) (noise variance 0.1 x the median squared distance between each
layer's samples, chosen at the first epoch and frozen; Goldfeld et al. 2019), plus each
layer's geometry (within-class scatter ratio, effective dimension). The stages are wider
than ``max_features`` (layer1: 64 x 14 x 14 = 12,544 units), so they are measured through a
4,096-column count sketch (warned once; distances preserved in expectation).

Data: the 10,000 official MNIST test images in ``<root>/MNIST/raw/`` (``--root``, default
``../shared/data``), split 8,000 / 1,000 / 1,000 by ``TorchvisionDataModule(
split_test_set=True)``. Saves ``--out`` (default ``docs/resnet_information_plane.png``): the
two information planes and the two geometry curves of the stages, and prints the last
epoch's values and flags. About 4 min on 2 shared CPU cores (3 epochs).

    python examples/resnet_information_plane.py              # 3 epochs
    python examples/resnet_information_plane.py --quick      # 1 epoch, 1,000 training images
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import matplotlib
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.models import resnet18

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.data import TorchvisionDataModule
from lit_infobottleneck.plot_geometry import geometry_curves
from lit_infobottleneck.plotting import information_plane

matplotlib.use("Agg")

log = logging.getLogger("resnet_information_plane")

ESTIMATORS = [{"name": "kde", "noise_var": "auto"}, {"name": "noisy", "noise_var": "auto"}]


def resnet18_for_mnist() -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem on one channel (28x28 inputs), 10 classes."""
    net = resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return net


class ResNetClassifier(L.LightningModule):
    """A plain LightningModule: nothing in it knows about InfoMetrics."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.net = resnet18_for_mnist()
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", nn.functional.cross_entropy(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def save_figure(info: InfoMetrics, path: Path) -> None:
    """The KDE and noisy planes side by side, the geometry curves below, in one PNG."""
    fig = Figure(figsize=(12.0, 8.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25, 1.0])
    for sub, label in zip(top.subfigures(1, 2), ("kde", "noisy"), strict=True):
        plane = information_plane(
            info.history, label, h_x=info.meta.get("h_x"), h_y=info.meta.get("h_y")
        )
        _copy_into(sub, plane)
    _copy_into(bottom, geometry_curves(info.geometry_history, layers=info.meta["layers"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def _copy_into(target, figure: Figure) -> None:
    """Draw ``figure`` (a library figure) as an image into the subfigure ``target``."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    ax = target.subplots()
    ax.imshow(np.asarray(canvas.buffer_rgba()))
    ax.set_axis_off()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="../shared/data", help="holds MNIST/raw/")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 1,000 images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/resnet_information_plane.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    torch.set_num_threads(2)
    L.seed_everything(args.seed)
    data = TorchvisionDataModule(
        "mnist", root=args.root, batch_size=128, seed=args.seed, split_test_set=True
    )
    data.setup("fit")
    train = data.train_dataloader()
    if args.quick:
        train = DataLoader(Subset(train.dataset, range(1000)), batch_size=128, shuffle=True)
    epochs = 1 if args.quick else args.epochs
    info = InfoMetrics(layers="auto:stages", estimators=ESTIMATORS, max_samples=1000)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        logger=CSVLogger(args.logdir, name="resnet_mnist"),
        callbacks=[info],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    start = time.perf_counter()
    trainer.fit(ResNetClassifier(), train, data.val_dataloader())
    seconds = time.perf_counter() - start
    last = max(r["epoch"] for r in info.history)
    print(f"\nResNet-18 on MNIST, {epochs} epochs, {seconds:.0f} s; layers: {info.meta['layers']}")
    print(f"val/acc {float(trainer.callback_metrics['val/acc']):.3f}; last epoch {last}:")
    print(f"{'estimator':<9} {'layer':<14} {'I(X;T) bits':>11} {'I(T;Y) bits':>11}  flags")
    for record in (r for r in info.history if r["epoch"] == last):
        flags = ",".join(record.get("flags", [])) or "-"
        print(
            f"{record['estimator']:<9} {record['layer']:<14} {record['I_XT']:>11.2f} "
            f"{record['I_TY']:>11.2f}  {flags}"
        )
    print(f"H(X) = {info.meta['h_x']:.2f} bits, H(Y) = {info.meta['h_y']:.2f} bits")
    save_figure(info, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
