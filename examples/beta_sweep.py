"""The information-bottleneck trade-off of VIB on scikit-learn's digits, one run per beta.

VIB (Alemi et al. 2017) minimises ``ce + beta * kl``, where ``kl`` = KL(q(z|x) || N(0, I))
is an upper bound on I(X;Z) in nats. A larger beta squeezes more information out of the
representation z; test accuracy first holds (or improves: the bottleneck regularises) and
then drops once z keeps too little about the label. This script trains
:class:`~lit_infobottleneck.module.InfoBottleneckClassifier` (MLP 64-256-256 ReLU encoder,
Gaussian bottleneck of 32 units, linear head, Adam 1e-3, batch 128) on
:class:`~lit_infobottleneck.data.DigitsDataModule` (1,257 / 270 / 270 images) for each beta,
prints a table of test accuracy, cross-entropy and KL, and saves ``beta_sweep.png``
(accuracy and KL against beta) to ``--out``. One seed per beta: on 270 test images one image
is 0.4 % of accuracy, so differences under about 1 % are noise (``--seed`` to check).

    python examples/beta_sweep.py                  # 9 betas (1e-4 ... 1) x 50 epochs, ~25 s
    python examples/beta_sweep.py --quick          # 3 betas x 3 epochs, smoke test
    python examples/beta_sweep.py --betas 1e-3 1e-1 --max_epochs 50 --out /tmp/sweep
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import matplotlib
import torch

from lit_infobottleneck.data import DigitsDataModule
from lit_infobottleneck.module import InfoBottleneckClassifier
from lit_infobottleneck.nets import ClassifierHead, GaussianBottleneck, MLPEncoder
from lit_infobottleneck.objectives import VIB

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger("beta_sweep")

BETAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
LATENT = 32


def run(beta: float, max_epochs: int, seed: int) -> dict[str, float]:
    """Train one VIB model; return its test metrics (``acc``, ``ce``, ``kl``, ``loss``)."""
    L.seed_everything(seed, verbose=False)
    data = DigitsDataModule(batch_size=128, seed=seed)
    model = InfoBottleneckClassifier(
        encoder=MLPEncoder(64, [256, 256], activation="relu"),
        bottleneck=GaussianBottleneck(256, latent_dim=LATENT),
        head=ClassifierHead(LATENT, num_classes=10),
        objective=VIB(beta=beta),
        input_shape=[64],
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-3),
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    return {key.removeprefix("test/"): float(value) for key, value in metrics.items()}


def plot(betas: list[float], results: list[dict[str, float]], path: Path, epochs: int) -> None:
    """Test accuracy (left axis) and KL (right axis, log scale) against beta (log scale)."""
    fig, ax_acc = plt.subplots(figsize=(6.0, 4.0))
    ax_kl = ax_acc.twinx()
    ax_acc.plot(betas, [r["acc"] for r in results], color="tab:blue", marker="o")
    ax_kl.plot(betas, [r["kl"] for r in results], color="tab:red", marker="s")
    ax_acc.set_xscale("log")
    ax_kl.set_yscale("log")
    ax_acc.set_xlabel("beta")
    ax_acc.set_ylabel("test accuracy", color="tab:blue")
    ax_kl.set_ylabel("test KL(q(z|x) || N(0, I)) >= I(X;Z) [nats]", color="tab:red")
    ax_acc.set_title(f"VIB on digits: one run per beta, {epochs} epochs")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", type=float, nargs="+", default=list(BETAS))
    parser.add_argument("--max_epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/beta_sweep"))
    parser.add_argument("--quick", action="store_true", help="3 betas, 3 epochs: smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(1)  # a small MLP: a thread pool only adds overhead on CPU
    betas = [1e-4, 1e-2, 1e-1] if args.quick else sorted(args.betas)
    epochs = 3 if args.quick else args.max_epochs

    start = time.perf_counter()
    results = []
    for beta in betas:
        results.append(run(beta, epochs, args.seed))
        log.info("beta %g done (%.0f s so far)", beta, time.perf_counter() - start)
    print(f"\nVIB on digits, {epochs} epochs, seed {args.seed}: test split (270 images)\n")
    print("| beta | test acc | test ce (nats) | test kl (nats) |")
    print("|---|---|---|---|")
    for beta, result in zip(betas, results, strict=True):
        print(f"| {beta:g} | {result['acc']:.3f} | {result['ce']:.3f} | {result['kl']:.2f} |")
    path = args.out / "beta_sweep.png"
    plot(betas, results, path, epochs)
    log.info("\nsaved %s (%.0f s in all)", path, time.perf_counter() - start)


if __name__ == "__main__":
    main()
