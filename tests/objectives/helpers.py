"""Helpers shared by the objective tests: toy data, a forward pass and a tiny-batch fit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_infobottleneck.nets import ClassifierHead, GaussianBottleneck, MLPEncoder, Representation
from lit_infobottleneck.objectives.base import ModelOutput, Objective


def toy_batch(
    n: int = 32,
    d: int | Sequence[int] = 8,
    classes: int = 4,
    seed: int = 0,
    permute_labels: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(n, d)`` (or ``(n, *d)``) standard normal from ``seed``, ``y = arange(n) % classes``.

    ``permute_labels`` shuffles ``y`` with ``torch.randperm`` from the *global* RNG (random
    labels, for memorisation tests): seed it before the call, and call before building the model.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = (d,) if isinstance(d, int) else tuple(d)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.arange(n) % classes
    if permute_labels:
        y = y[torch.randperm(n)]
    return x, y


def gaussian_model(
    d: int = 8, k: int = 8, classes: int = 4, num_samples: int = 4
) -> tuple[MLPEncoder, GaussianBottleneck, ClassifierHead]:
    """``MLPEncoder(d, (64,), tanh) -> GaussianBottleneck(64, k) -> ClassifierHead(k, classes)``."""
    encoder = MLPEncoder(d, (64,), activation="tanh")
    return encoder, GaussianBottleneck(64, k, num_samples=num_samples), ClassifierHead(k, classes)


def forward(
    encoder: nn.Module, bottleneck: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> ModelOutput:
    """The :class:`ModelOutput` of ``encoder -> bottleneck -> head`` on ``(x, y)``."""
    rep = bottleneck(encoder(x))
    return ModelOutput(x=x, y=y, rep=rep, logits=head(rep.z))


def random_output(
    s: int = 3,
    b: int = 16,
    k: int = 6,
    c: int = 4,
    *,
    stochastic: bool = True,
    random_labels: bool = False,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> ModelOutput:
    """A ModelOutput with random representation samples and logits (no network).

    Everything is drawn from one generator seeded with ``seed``, in this order:

    * ``stochastic``: ``mean = 2 N(0, 1)``, ``std = exp(0.7 N(0, 1))`` ``(b, k)``, then
      ``z = mean + std * N(0, 1)`` ``(s, b, k)``; otherwise ``z = N(0, 1)`` ``(s, b, k)``,
      ``mean = z[0]`` and no ``std`` (a deterministic representation);
    * ``logits = 3 N(0, 1)`` ``(s, b, c)``;
    * ``y = randint(0, c)`` if ``random_labels``, else ``arange(b) % c`` (no draw).

    ``x`` is ``zeros(b, 1)``.
    """
    gen = torch.Generator().manual_seed(seed)
    if stochastic:
        mean = 2 * torch.randn(b, k, generator=gen, dtype=dtype)
        std = (0.7 * torch.randn(b, k, generator=gen, dtype=dtype)).exp()
        z = mean + std * torch.randn(s, b, k, generator=gen, dtype=dtype)
    else:
        z = torch.randn(s, b, k, generator=gen, dtype=dtype)
        mean, std = z[0], None
    logits = 3 * torch.randn(s, b, c, generator=gen, dtype=dtype)
    y = torch.randint(0, c, (b,), generator=gen) if random_labels else torch.arange(b) % c
    rep = Representation(z=z, mean=mean, std=std)
    return ModelOutput(x=torch.zeros(b, 1, dtype=dtype), y=y, rep=rep, logits=logits)


def fit_tiny_batch(
    objective: Objective,
    encoder: nn.Module,
    bottleneck: nn.Module,
    head: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = 300,
    lr: float = 1e-2,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """Fit ``(x, y)`` with Adam, then put every module in eval mode.

    Adam trains the encoder, bottleneck and head and the objective's own parameters, if it
    has any (CEB's class means, InfoObjective's decoder). Returns the terms of the first and
    of the last step (detached; computed before that step's update) and the eval-mode
    accuracy of the first (in eval mode usually the only) sample of logits.
    """
    modules = (encoder, bottleneck, head, objective)
    opt = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=lr)
    first_terms: dict[str, torch.Tensor] = {}
    last_terms: dict[str, torch.Tensor] = {}
    for step in range(steps):
        opt.zero_grad()
        terms = objective(forward(encoder, bottleneck, head, x, y))
        terms["loss"].backward()
        opt.step()
        last_terms = {name: value.detach() for name, value in terms.items()}
        if step == 0:
            first_terms = last_terms
    for module in modules:
        module.eval()
    with torch.no_grad():
        logits = forward(encoder, bottleneck, head, x, y).logits
    return first_terms, last_terms, float((logits[0].argmax(-1) == y).float().mean())
