"""Variational lower bounds on mutual information with a trained neural critic.

A critic ``f(x, y)`` scores every pair of a batch of ``k`` paired samples; the ``(k, k)``
score matrix ``S[i, j] = f(x_i, y_j)`` has samples of the joint on its diagonal and samples
of the product of marginals off it. The bounds, all in nats:

- ``"infonce"`` (van den Oord, Li & Vinyals 2018, "Representation learning with contrastive
  predictive coding"): ``log k + mean_i (S_ii - logsumexp_j S_ij)``. Low variance, but never
  above ``log k``: it cannot report more than ``log(batch_size)`` nats.
- ``"mine"`` (Belghazi et al. 2018, "Mutual information neural estimation"): the
  Donsker-Varadhan bound ``mean_i S_ii - log mean_{i != j} exp S_ij``. Its gradient is
  biased on minibatches; as in the paper, the denominator ``mean exp S_ij`` of the gradient
  is replaced by an exponential moving average (rate 0.01 per step).
- ``"nwj"`` (Nguyen, Wainwright & Jordan 2010): the f-divergence bound
  ``mean_i S_ii - e^{-1} mean_{i != j} exp S_ij``. Unbiased on minibatches, high variance
  when the MI is large.
- ``"smile"`` (Song & Ermon 2020, "Understanding the limitations of variational mutual
  information estimators"): ``mean_i S_ii - log mean_{i != j} clip(exp S_ij, e^-tau, e^tau)``,
  i.e. the DV bound with the partition term's scores clipped to ``[-tau, tau]``. As in the
  authors' code, the critic is trained with the Jensen-Shannon (f-GAN) objective and the
  clipped DV form is what is reported. With clipping it is no longer a strict lower bound;
  it trades a little bias for much lower variance.

Protocol: the columns of ``x`` and continuous ``y`` are standardised (train-split mean and
std; a column constant on the train split is zeroed); discrete ``y`` is one-hot encoded. A
seeded permutation splits the samples into a train split and a held-out split
(``val_fraction``). The critic is trained with Adam on random train batches of
``batch_size`` for at most ``max_steps`` steps; every ``eval_every`` steps the bound is
evaluated on the held-out split, in consecutive blocks of
``batch_size`` samples (the last block is aligned with the end of the split and overlaps its
neighbour, so every block has the same size) and averaged over blocks. Training stops after
``patience`` evaluations without improvement; the estimate is the best held-out value, i.e.
the held-out bound of the best critic. Taking the best of several noisy evaluations biases
the estimate slightly upward, by about the noise of one evaluation.

Critics: ``"separable"`` (default) is ``g(x) . h(y)`` with two MLPs of output size
``embed_dim``: ~2 ms per step at the defaults on a 2-core CPU, seconds per estimate.
``"concat"`` is an MLP on the concatenation ``[x, y]``, evaluated on all ``k^2`` pairs of a
batch: ``k^2 x hidden_dim`` activations per layer, ~0.2 s per step at k = 256 and 2 x 128
on the same CPU (minutes per estimate; fine on a GPU). It is the more flexible critic.

Free parameters (they set what is measured, for a deterministic network too, where the
true I(X;T) is infinite): the bound, ``tau`` (SMILE, default 5) and the fields of
``CriticSettings``: critic type and size (``critic``, ``hidden_dim``, ``num_layers``,
``activation``, ``embed_dim``), ``max_steps``, ``eval_every``, ``patience``, ``lr``,
``batch_size`` (InfoNCE's ceiling ``log batch_size``), ``val_fraction`` and ``seed``. Each
neural estimator is a frozen ``CriticSettings`` with its bound (and SMILE's ``tau``).
Everything random draws from a local ``torch.Generator`` seeded with ``seed``; the global
RNG is not touched.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from lit_infobottleneck.estimators._validation import (
    as_labels,
    as_samples,
    as_tensor,
    check_int_at_least,
    check_positive,
    check_same_length,
    resolve_discrete,
)
from lit_infobottleneck.estimators.base import Estimator
from lit_infobottleneck.estimators.registry import register

_log = logging.getLogger(__name__)

BOUNDS = ("infonce", "mine", "nwj", "smile")
CRITICS = ("concat", "separable")
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}
#: Minimum number of samples in each of the train and held-out splits.
MIN_SPLIT_SAMPLES = 4
#: Rate of MINE's moving average of the partition term: ema <- 0.99 ema + 0.01 batch value.
MINE_EMA_RATE = 0.01


@dataclass(frozen=True)
class NeuralTrace:
    """Training record of ``neural_mutual_information``, one entry per evaluation.

    ``train_bound`` is the mean minibatch bound (nats) over the steps since the previous
    evaluation, ``held_out_bound`` the bound on the held-out split (nats) at ``steps``;
    ``best_step`` is the step of the best held-out value, which is the returned estimate.
    """

    steps: list[int]
    train_bound: list[float]
    held_out_bound: list[float]
    best_step: int


def _check_bound(bound: str) -> None:
    if bound not in BOUNDS:
        raise ValueError(f"unknown `bound` {bound!r}; choose one of: {', '.join(BOUNDS)}.")


@dataclass(frozen=True, kw_only=True)
class CriticSettings:
    """Critic and training settings shared by every neural bound (see the module docstring).

    ``critic`` (``"separable"`` or ``"concat"``) with ``num_layers`` hidden layers of width
    ``hidden_dim`` and ``activation`` (``embed_dim``: output size of the separable critic's
    two MLPs); Adam with learning rate ``lr`` on random train batches of ``batch_size`` for
    at most ``max_steps`` steps, evaluated on the held-out share ``val_fraction`` every
    ``eval_every`` steps, stopped after ``patience`` evaluations without improvement; every
    random draw from a ``torch.Generator`` seeded with ``seed``. Validated on construction.
    """

    critic: str = "separable"
    hidden_dim: int = 128
    num_layers: int = 2
    activation: str = "relu"
    embed_dim: int = 32
    max_steps: int = 2000
    eval_every: int = 50
    patience: int = 10
    lr: float = 1e-3
    batch_size: int = 256
    val_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(
                f"unknown `critic` {self.critic!r}; choose one of: {', '.join(CRITICS)}."
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown `activation` {self.activation!r}; choose one of: "
                f"{', '.join(_ACTIVATIONS)}."
            )
        for name in (
            "hidden_dim",
            "num_layers",
            "embed_dim",
            "max_steps",
            "eval_every",
            "patience",
        ):
            check_int_at_least(getattr(self, name), name, 1)
        check_int_at_least(self.batch_size, "batch_size", 2)
        check_int_at_least(self.seed, "seed", 0)
        check_positive(self.lr, "lr")
        fraction = self.val_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, numbers.Real)
            or not 0 < fraction < 1
        ):
            raise ValueError(
                "`val_fraction` must be a number in (0, 1) (the held-out share of the "
                f"samples), got {fraction!r}."
            )

    def build_critic(
        self, dx: int, dy: int, generator: torch.Generator, device: torch.device
    ) -> nn.Module:
        """A freshly initialised critic for ``dx``- and ``dy``-dimensional inputs."""
        if self.critic == "concat":
            return _ConcatCritic(
                dx, dy, self.hidden_dim, self.num_layers, self.activation, generator, device
            )
        return _SeparableCritic(
            dx,
            dy,
            self.hidden_dim,
            self.num_layers,
            self.activation,
            self.embed_dim,
            generator,
            device,
        )


def _split_sizes(n: int, val_fraction: float) -> tuple[int, int]:
    """(n_train, n_held_out) for ``n`` samples; held-out is ``val_fraction * n``, rounded."""
    n_val = math.floor(val_fraction * n + 0.5)
    return n - n_val, n_val


def _check_split(n: int, val_fraction: float) -> int:
    """Held-out size for ``n`` samples; raises if either split is below the minimum."""
    n_train, n_val = _split_sizes(n, val_fraction)
    if min(n_train, n_val) >= MIN_SPLIT_SAMPLES:
        return n_val
    n_min = 2 * MIN_SPLIT_SAMPLES
    while min(_split_sizes(n_min, val_fraction)) < MIN_SPLIT_SAMPLES:
        n_min += 1
    raise ValueError(
        f"`x` has {n} samples, too few for the train/held-out split (val_fraction="
        f"{val_fraction}): each split needs at least {MIN_SPLIT_SAMPLES} samples, so pass at "
        f"least {n_min} samples."
    )


def _standardize(train: torch.Tensor, held_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Standardise both splits with the train split's column mean and std.

    A column constant on the train split is set to 0 in both splits: the critic cannot learn
    anything from it, and its held-out values would otherwise reach the critic on their own
    scale (a dead ReLU unit that fires at 1e6 on held-out samples only), giving scores of
    ~1e4 and bounds of +-1e4 nats or -inf.
    """
    mean = train.mean(dim=0)
    std = train.std(dim=0)
    live = std > 0
    std = torch.where(live, std, torch.ones_like(std))
    return (train - mean) / std * live, (held_out - mean) / std * live


def _linear(
    n_in: int, n_out: int, fan_in: int, generator: torch.Generator, device: torch.device
) -> nn.Linear:
    """``nn.Linear`` with PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) init drawn
    from ``generator`` (built on the meta device first, so the global RNG is not used)."""
    layer = nn.Linear(n_in, n_out, device="meta").to_empty(device=device)
    limit = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.empty(p.shape).uniform_(-limit, limit, generator=generator))
    return layer


def _mlp(
    n_in: int,
    fan_in: int,
    hidden_dim: int,
    num_layers: int,
    n_out: int,
    activation: str,
    generator: torch.Generator,
    device: torch.device,
) -> nn.Sequential:
    """``num_layers`` hidden layers of width ``hidden_dim``, each followed by ``activation``,
    then a linear output of size ``n_out``; the first layer's init uses ``fan_in``."""
    layers: list[nn.Module] = []
    for i in range(num_layers):
        width_in = n_in if i == 0 else hidden_dim
        layers += [
            _linear(width_in, hidden_dim, fan_in if i == 0 else hidden_dim, generator, device),
            _ACTIVATIONS[activation](),
        ]
    layers.append(_linear(hidden_dim, n_out, hidden_dim, generator, device))
    return nn.Sequential(*layers)


class _ConcatCritic(nn.Module):
    """``f(x, y) = MLP([x, y])`` on all pairs. The first layer ``W [x; y] + b`` is computed as
    ``W_x x + b`` plus ``W_y y``, so the ``(k, k, dx + dy)`` concatenation is never built."""

    def __init__(
        self,
        dx: int,
        dy: int,
        hidden_dim: int,
        num_layers: int,
        activation: str,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        super().__init__()
        mlp = _mlp(dx + dy, dx + dy, hidden_dim, num_layers, 1, activation, generator, device)
        first = mlp[0]
        assert isinstance(first, nn.Linear)  # _mlp starts with the input layer
        self.dx = dx
        self.first = first
        self.rest = mlp[1:]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores ``(k, k)``: entry ``[i, j]`` is ``f(x_i, y_j)``."""
        w, b = self.first.weight, self.first.bias
        hidden = (x @ w[:, : self.dx].T + b)[:, None, :] + (y @ w[:, self.dx :].T)[None, :, :]
        return self.rest(hidden).squeeze(-1)


class _SeparableCritic(nn.Module):
    """``f(x, y) = g(x) . h(y)`` with two MLPs of output size ``embed_dim``."""

    def __init__(
        self,
        dx: int,
        dy: int,
        hidden_dim: int,
        num_layers: int,
        activation: str,
        embed_dim: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.g = _mlp(dx, dx, hidden_dim, num_layers, embed_dim, activation, generator, device)
        self.h = _mlp(dy, dy, hidden_dim, num_layers, embed_dim, activation, generator, device)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores ``(k, k)``: entry ``[i, j]`` is ``f(x_i, y_j)``."""
        return self.g(x) @ self.h(y).T


def _off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    """The ``k (k - 1)`` off-diagonal entries of a ``(k, k)`` matrix (product-of-marginals
    samples), flattened."""
    k = scores.shape[0]
    return scores.flatten()[1:].view(k - 1, k + 1)[:, :-1].flatten()


def _log_mean_exp(values: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(values, dim=0) - math.log(values.numel())


def bound_value(scores: torch.Tensor, bound: str, *, tau: float = 5.0) -> torch.Tensor:
    """The MI bound (nats, 0-d float64) of a ``(k, k)`` score matrix ``S[i, j] = f(x_i, y_j)``
    with the joint samples on the diagonal (formulas in the module docstring); ``k >= 2``."""
    _check_bound(bound)
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(
            f"`scores` must be a square (k, k) matrix with k >= 2, got shape {tuple(scores.shape)}."
        )
    s = scores.to(torch.float64)
    joint = s.diagonal().mean()
    if bound == "infonce":
        return joint - torch.logsumexp(s, dim=1).mean() + math.log(s.shape[0])
    marginal = _off_diagonal(s)
    if bound == "nwj":
        return joint - torch.exp(_log_mean_exp(marginal) - 1.0)
    if bound == "mine":
        return joint - _log_mean_exp(marginal)
    return joint - _log_mean_exp(marginal.clamp(-tau, tau))


class _Objective:
    """What training maximises for one bound; keeps MINE's moving average between steps."""

    def __init__(self, bound: str, tau: float) -> None:
        self.bound = bound
        self.tau = tau
        self.log_ema: torch.Tensor | None = None

    def __call__(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(surrogate to maximise, bound value) on a train batch."""
        value = bound_value(scores, self.bound, tau=self.tau)
        if self.bound in ("infonce", "nwj"):
            return value, value
        s = scores.to(torch.float64)
        if self.bound == "mine":
            # Gradient E_P[grad f] - E_Q[e^f grad f] / ema(E_Q[e^f]) (Belghazi et al. 2018, 3.2).
            log_partition = _log_mean_exp(_off_diagonal(s))
            current = log_partition.detach()
            if self.log_ema is None:
                self.log_ema = current
            else:
                self.log_ema = torch.logaddexp(
                    self.log_ema + math.log1p(-MINE_EMA_RATE), current + math.log(MINE_EMA_RATE)
                )
            surrogate = s.diagonal().mean() - torch.exp(log_partition - self.log_ema)
            return surrogate, value
        # SMILE: Jensen-Shannon f-GAN objective (Poole et al. 2019), as in Song & Ermon's code.
        surrogate = (
            -nn.functional.softplus(-s.diagonal()).mean()
            - nn.functional.softplus(_off_diagonal(s)).mean()
        )
        return surrogate, value


@torch.no_grad()
def _held_out_bound(
    critic: nn.Module, x: torch.Tensor, y: torch.Tensor, block: int, bound: str, tau: float
) -> float:
    """Mean bound over blocks of ``block`` consecutive held-out samples (last block aligned
    with the end, so all blocks have the same size and InfoNCE stays below log(block))."""
    n = x.shape[0]
    starts = list(range(0, n - block + 1, block))
    if starts[-1] + block < n:
        starts.append(n - block)
    values = [
        bound_value(critic(x[s : s + block], y[s : s + block]), bound, tau=tau) for s in starts
    ]
    return float(torch.stack(values).mean())


def _fit(
    net: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    *,
    bound: str,
    tau: float,
    settings: CriticSettings,
    generator: torch.Generator,
) -> tuple[float, NeuralTrace]:
    """Train the critic with Adam and early stopping; (best held-out bound, trace)."""
    (x_train, y_train), (x_val, y_val) = train, held_out
    n_train = x_train.shape[0]
    batch_size, max_steps = settings.batch_size, settings.max_steps
    k_train, k_val = min(batch_size, n_train), min(batch_size, x_val.shape[0])
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    objective = _Objective(bound, tau)
    steps: list[int] = []
    train_values: list[float] = []
    held_out_values: list[float] = []
    best_value, best_step, stale = -math.inf, 0, 0
    running = torch.zeros((), dtype=torch.float64, device=x_train.device)
    since_eval = 0
    for step in range(1, max_steps + 1):
        idx = torch.randperm(n_train, generator=generator)[:k_train].to(x_train.device)
        surrogate, value = objective(net(x_train[idx], y_train[idx]))
        optimizer.zero_grad(set_to_none=True)
        (-surrogate).backward()
        optimizer.step()
        running += value.detach()
        since_eval += 1
        if step % settings.eval_every and step != max_steps:
            continue
        value_held_out = _held_out_bound(net, x_val, y_val, k_val, bound, tau)
        steps.append(step)
        train_values.append(float(running) / since_eval)
        held_out_values.append(value_held_out)
        running.zero_()
        since_eval = 0
        if value_held_out > best_value:
            best_value, best_step, stale = value_held_out, step, 0
        else:
            stale += 1
            if stale >= settings.patience:
                break
    return best_value, NeuralTrace(steps, train_values, held_out_values, best_step)


def _outside_inference_mode(value: Any) -> Any:
    """A normal copy of an inference-mode tensor (those cannot enter autograd)."""
    if isinstance(value, torch.Tensor) and value.is_inference():
        return value.clone()
    return value


def _with_autograd(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function(x, y, ...)`` with autograd on: training a critic needs gradients, also
    when called from a validation loop, which Lightning runs in inference mode (there the
    captured ``x``, ``y`` are inference tensors, copied here)."""

    @functools.wraps(function)
    def wrapped(x: Any, y: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            return function(_outside_inference_mode(x), _outside_inference_mode(y), **kwargs)

    return wrapped


def neural_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bound: str = "infonce",
    discrete_y: bool | None = None,
    tau: float = 5.0,
    return_trace: bool = False,
    **settings: Any,
) -> torch.Tensor | tuple[torch.Tensor, NeuralTrace]:
    """Variational lower bound on I(X;Y) in nats (0-d float64 on ``x``'s device).

    ``x`` ``(n, ...)`` and ``y`` ``(n, ...)`` are paired samples; an integer/bool ``y`` (or
    ``discrete_y=True``) is read as class labels and one-hot encoded. ``bound`` is one of
    ``"infonce"``, ``"mine"``, ``"nwj"``, ``"smile"`` (``tau``: SMILE's clipping). The
    keyword ``settings`` are the fields of ``CriticSettings`` (``critic``,
    ``hidden_dim``, ``num_layers``, ``activation``, ``embed_dim``, ``max_steps``,
    ``eval_every``, ``patience``, ``lr``, ``batch_size``, ``val_fraction``, ``seed``), with
    its defaults. InfoNCE cannot exceed ``log min(batch_size, n_held_out)``. With
    ``return_trace=True`` also returns a ``NeuralTrace``. See the module docstring for
    the bounds and protocol.
    """
    _check_bound(bound)
    critic_settings = CriticSettings(**settings)
    check_positive(tau, "tau")
    return _estimate(
        x,
        y,
        bound=bound,
        discrete_y=discrete_y,
        tau=tau,
        settings=critic_settings,
        return_trace=return_trace,
    )


@_with_autograd
def _estimate(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bound: str,
    discrete_y: bool | None,
    tau: float,
    settings: CriticSettings,
    return_trace: bool,
) -> torch.Tensor | tuple[torch.Tensor, NeuralTrace]:
    """``neural_mutual_information`` with validated parameters."""
    x = as_samples(x, "x").detach()
    device = x.device
    discrete = resolve_discrete(as_tensor(y, "y"), discrete_y)
    if discrete:
        labels = as_labels(y, "y").to(device)
        check_same_length(x, labels, "x", "y")
        y = nn.functional.one_hot(labels).to(torch.float64)
    else:
        y = as_samples(y, "y").detach().to(device)
        check_same_length(x, y, "x", "y")
    n_val = _check_split(x.shape[0], settings.val_fraction)

    generator = torch.Generator().manual_seed(settings.seed)
    perm = torch.randperm(x.shape[0], generator=generator).to(device)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    x_train, x_val = _standardize(x[train_idx], x[val_idx])
    if discrete:
        y_train, y_val = y[train_idx], y[val_idx]
    else:
        y_train, y_val = _standardize(y[train_idx], y[val_idx])
    x_train, x_val, y_train, y_val = (t.float() for t in (x_train, x_val, y_train, y_val))

    net = settings.build_critic(x.shape[1], y.shape[1], generator, device)
    best_value, trace = _fit(
        net,
        (x_train, y_train),
        (x_val, y_val),
        bound=bound,
        tau=tau,
        settings=settings,
        generator=generator,
    )
    _log.debug(
        "%s bound %.4f nats (best held-out value, step %d of %d; %s)",
        bound,
        best_value,
        trace.best_step,
        trace.steps[-1],
        settings,
    )
    estimate = torch.tensor(best_value, dtype=torch.float64, device=device)
    return (estimate, trace) if return_trace else estimate


@dataclass(frozen=True, kw_only=True, repr=False)
class _NeuralEstimator(Estimator, CriticSettings):
    """A neural bound with its ``CriticSettings`` (the constructor's keywords, all of
    them returned by ``params``); subclasses fix ``bound``."""

    bound: ClassVar[str]

    def _tau(self) -> float:
        """SMILE's clipping; the other bounds ignore it."""
        return 5.0

    def mutual_information(
        self, x: torch.Tensor, y: torch.Tensor, *, discrete_y: bool | None = None
    ) -> torch.Tensor:
        return _estimate(
            x,
            y,
            bound=self.bound,
            discrete_y=discrete_y,
            tau=self._tau(),
            settings=self,
            return_trace=False,
        )

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@register
@dataclass(frozen=True, kw_only=True, repr=False)
class InfoNCEEstimator(_NeuralEstimator):
    """InfoNCE bound (van den Oord et al. 2018) with a trained critic; at most log(batch_size)."""

    name = "infonce"
    bound = "infonce"


@register
@dataclass(frozen=True, kw_only=True, repr=False)
class MINEEstimator(_NeuralEstimator):
    """MINE: Donsker-Varadhan bound with moving-average gradient (Belghazi et al. 2018)."""

    name = "mine"
    bound = "mine"


@register
@dataclass(frozen=True, kw_only=True, repr=False)
class NWJEstimator(_NeuralEstimator):
    """NWJ f-divergence bound (Nguyen, Wainwright & Jordan 2010) with a trained critic."""

    name = "nwj"
    bound = "nwj"


@register
@dataclass(frozen=True, kw_only=True, repr=False)
class SMILEEstimator(_NeuralEstimator):
    """SMILE: DV bound with the partition term clipped to [e^-tau, e^tau] (Song & Ermon 2020)."""

    name = "smile"
    bound = "smile"

    tau: float = 5.0

    def _tau(self) -> float:
        return self.tau

    def __post_init__(self) -> None:
        check_positive(self.tau, "tau")
        super().__post_init__()
