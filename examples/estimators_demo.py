"""Information plane of a small tanh network on scikit-learn's digits, before and after training.

Runs offline in about ten seconds on a laptop CPU: trains a 64-32-16-10 tanh MLP with plain
torch for a few hundred steps and prints I(X;T) and I(T;Y) (bits) of every hidden layer with
three estimators. The later `lit-ib` CLI does the same inside a Lightning Trainer.

    python examples/estimators_demo.py
"""

from __future__ import annotations

import logging
import math

import torch
from sklearn.datasets import load_digits

from lit_infobottleneck.estimators import get_estimator, plugin_entropy

log = logging.getLogger("estimators_demo")


def _layers(net: torch.nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out, h = {}, x
    for i, module in enumerate(net):
        h = module(h)
        if isinstance(module, torch.nn.Tanh):
            out[f"tanh{i}"] = h.detach()
    return out


def _report(title: str, net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> None:
    estimators = {
        "binning(30)": get_estimator("binning", bins=30),
        "kde(0.1)": get_estimator("kde", noise_var=0.1),
        "ksg(3)": get_estimator("ksg", k=3),
    }
    log.info("%s", title)
    log.info("%-8s %-12s %9s %9s", "layer", "estimator", "I(X;T)", "I(T;Y)")
    for layer, t in _layers(net, x).items():
        for name, est in estimators.items():
            ixt = float(est.input_information(x, t)) / math.log(2)
            ity = float(est.label_information(t, y)) / math.log(2)
            log.info("%-8s %-12s %9.3f %9.3f", layer, name, ixt, ity)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 10),
    )
    h_y = float(plugin_entropy(y)) / math.log(2)
    log.info("H(X) = %.2f bits (1,797 distinct images), H(Y) = %.2f bits", math.log2(len(y)), h_y)
    _report("-- at initialisation", net, x, y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    accuracy = float((net(x).argmax(1) == y).float().mean())
    _report(f"-- after 300 full-batch Adam steps (train accuracy {accuracy:.3f})", net, x, y)


if __name__ == "__main__":
    main()
