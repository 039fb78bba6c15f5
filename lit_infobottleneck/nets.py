"""Building blocks of an information-bottleneck classifier: encoders, bottlenecks, heads.

A classifier is ``encoder -> bottleneck -> head``. Every block states its sizes
(``in_features`` / ``out_features``) so that wrong wiring fails at construction, and every
layer is a named submodule (``encoder.layers.1``) so that callbacks can hook it by name.

Bottlenecks return a ``Representation``: ``z`` ``(S, B, K)`` (S samples per input),
and for stochastic ones the Gaussian parameters ``mean`` and ``std`` ``(B, K)`` of q(z|x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lit_infobottleneck._checks import check_choice, check_int, check_positive

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def make_activation(name: str, field: str = "activation") -> nn.Module:
    """An activation module by name; unknown names raise a ``ValueError`` listing the choices."""
    return ACTIVATIONS[check_choice(name, field, ACTIVATIONS)]()


def _check_features(x: torch.Tensor, expected: int, owner: str) -> torch.Tensor:
    """Flatten ``x`` ``(B, ...)`` per sample and check it has ``expected`` features."""
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != expected:
        raise ValueError(
            f"{owner} expects inputs of {expected} features per sample (`in_features`), got "
            f"shape {tuple(x.shape[1:])} = {flat.shape[1]} features; set `in_features` to "
            f"{flat.shape[1]} or fix the data."
        )
    return flat


class MLPEncoder(nn.Module):
    """Fully connected encoder: ``(B, ...)`` inputs flattened to ``in_features``.

    ``layers`` is a ``nn.Sequential`` of ``Linear, activation`` pairs; the activations are
    the representations an information-plane callback hooks (``encoder.layers.1``, ...).
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        if isinstance(hidden_sizes, int) or len(hidden_sizes) == 0:
            raise ValueError("`hidden_sizes` must list at least one layer width.")
        hidden_sizes = [check_int(w, f"hidden_sizes[{i}]", 1) for i, w in enumerate(hidden_sizes)]
        self.in_features = in_features
        self.out_features = hidden_sizes[-1]
        layers: list[nn.Module] = []
        previous = in_features
        for width in hidden_sizes:
            layers += [nn.Linear(previous, width), make_activation(activation)]
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(_check_features(x, self.in_features, type(self).__name__))


class CNNEncoder(nn.Module):
    """Small convolutional encoder for ``(B, C, H, W)`` images.

    ``channels`` conv blocks (conv 3x3, activation, 2x2 max-pool), then a linear layer to
    ``out_features``. ``image_size`` is ``(H, W)`` (or one int), needed to size that layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        channels: Sequence[int] = (32, 64),
        out_features: int = 128,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", 1)
        out_features = check_int(out_features, "out_features", 1)
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        blocks: list[nn.Module] = []
        previous = in_channels
        for i, c in enumerate(channels):
            c = check_int(c, f"channels[{i}]", 1)
            blocks += [
                nn.Conv2d(previous, c, kernel_size=3, padding=1),
                make_activation(activation),
                nn.MaxPool2d(2),
            ]
            previous = c
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"`image_size` {image_size!r} is too small for {len(channels)} pooling blocks; "
                "use fewer `channels` or larger images."
            )
        self.in_channels = in_channels
        self.image_size = (
            (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        )
        self.out_features = out_features
        self.conv = nn.Sequential(*blocks)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous * height * width, out_features),
            make_activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.image_size:
            raise ValueError(
                f"CNNEncoder expects images of shape (B, {self.in_channels}, "
                f"{self.image_size[0]}, {self.image_size[1]}) (`in_channels`, `image_size`), "
                f"got {tuple(x.shape)}."
            )
        return self.fc(self.conv(x))


@dataclass
class Representation:
    """What a bottleneck returns.

    ``z``: ``(S, B, K)`` samples (S = 1 for deterministic bottlenecks and in eval mode);
    ``mean``, ``std``: ``(B, K)`` parameters of the Gaussian q(z|x) (``std`` is ``None``
    for a deterministic bottleneck).
    """

    z: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor | None = None


class DeterministicBottleneck(nn.Module):
    """``z = activation(W h + b)``: a plain layer, for cross-entropy and HSIC baselines."""

    stochastic = False

    def __init__(self, in_features: int, latent_dim: int, activation: str = "identity") -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        latent_dim = check_int(latent_dim, "latent_dim", 1)
        self.in_features, self.latent_dim = in_features, latent_dim
        self.linear = nn.Linear(in_features, latent_dim)
        self.activation = make_activation(activation)

    def forward(self, h: torch.Tensor) -> Representation:
        z = self.activation(self.linear(h))
        return Representation(z=z.unsqueeze(0), mean=z)


class GaussianBottleneck(nn.Module):
    """Stochastic encoder q(z|x) = N(mean(h), diag(std(h)^2)), reparameterised (Alemi 2017).

    ``std = softplus(s(h) - 5) + min_std`` as in Alemi et al. (the -5 starts training with
    small noise). Draws ``num_samples`` samples in training; in eval mode returns the mean
    (one "sample") unless ``eval_num_samples`` > 0, then that many samples (Alemi: 12).
    """

    stochastic = True

    def __init__(
        self,
        in_features: int,
        latent_dim: int = 256,
        num_samples: int = 1,
        eval_num_samples: int = 0,
        min_std: float = 1e-4,
    ) -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        latent_dim = check_int(latent_dim, "latent_dim", 1)
        num_samples = check_int(num_samples, "num_samples", 1)
        eval_num_samples = check_int(eval_num_samples, "eval_num_samples", 0)
        min_std = check_positive(min_std, "min_std")
        self.in_features, self.latent_dim = in_features, latent_dim
        self.num_samples, self.eval_num_samples = num_samples, eval_num_samples
        self.min_std = min_std
        self.mean_head = nn.Linear(in_features, latent_dim)
        self.std_head = nn.Linear(in_features, latent_dim)

    def forward(self, h: torch.Tensor) -> Representation:
        mean = self.mean_head(h)
        std = nn.functional.softplus(self.std_head(h) - 5.0) + self.min_std
        samples = self.num_samples if self.training else self.eval_num_samples
        if samples == 0:
            return Representation(z=mean.unsqueeze(0), mean=mean, std=std)
        eps = torch.randn((samples, *mean.shape), dtype=mean.dtype, device=mean.device)
        return Representation(z=mean + std * eps, mean=mean, std=std)


class NoisyBottleneck(nn.Module):
    """``z = W h + b + N(0, noise_var I)`` with one learnable noise variance.

    The bottleneck of the nonlinear information bottleneck (Kolchinsky, Tracey & Wolpert
    2019): ``noise_var = exp(log_noise_var)`` is trained with the network. Noise is added in
    training, and in eval mode too when ``noisy_eval`` (the information is that of the noisy
    representation). ``std`` is the same for every unit and sample.
    """

    stochastic = True

    def __init__(
        self,
        in_features: int,
        latent_dim: int,
        init_noise_var: float = 1.0,
        learn_noise: bool = True,
        noisy_eval: bool = False,
    ) -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        latent_dim = check_int(latent_dim, "latent_dim", 1)
        check_positive(init_noise_var, "init_noise_var")
        self.in_features, self.latent_dim = in_features, latent_dim
        self.noisy_eval = noisy_eval
        self.linear = nn.Linear(in_features, latent_dim)
        log_var = torch.tensor(math.log(init_noise_var))
        if learn_noise:
            self.log_noise_var = nn.Parameter(log_var)
        else:  # a buffer: unfreeze() cannot make it trainable by accident
            self.register_buffer("log_noise_var", log_var)

    @property
    def noise_var(self) -> torch.Tensor:
        """The current noise variance (0-d tensor, units of z squared)."""
        return self.log_noise_var.exp()

    def forward(self, h: torch.Tensor) -> Representation:
        mean = self.linear(h)
        std = (0.5 * self.log_noise_var).exp().expand_as(mean)  # float32 under autocast too
        if not (self.training or self.noisy_eval):
            return Representation(z=mean.unsqueeze(0), mean=mean, std=std)
        z = mean + std * torch.randn_like(mean)
        return Representation(z=z.unsqueeze(0), mean=mean, std=std)


class ClassifierHead(nn.Module):
    """Linear classifier ``(..., K) -> (..., num_classes)`` logits."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        num_classes = check_int(num_classes, "num_classes", 2)
        self.in_features, self.num_classes = in_features, num_classes
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)


class Decoder(nn.Module):
    """MLP decoder ``(..., K) -> (..., out_features)``: the parameters of q(x|z).

    ``likelihood="gaussian"``: the output is the mean of N(x_hat, I) (use on standardised
    inputs); ``"bernoulli"``: the output is the logits of independent Bernoulli pixels (inputs
    in [0, 1]). ``negative_log_likelihood`` returns ``-log q(x|z)`` per sample, in nats.
    """

    LIKELIHOODS = ("gaussian", "bernoulli")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: Sequence[int] = (256,),
        activation: str = "relu",
        likelihood: str = "gaussian",
    ) -> None:
        super().__init__()
        in_features = check_int(in_features, "in_features", 1)
        out_features = check_int(out_features, "out_features", 1)
        check_choice(likelihood, "likelihood", self.LIKELIHOODS)
        self.in_features, self.out_features, self.likelihood = in_features, out_features, likelihood
        layers: list[nn.Module] = []
        previous = in_features
        for i, width in enumerate(hidden_sizes):
            width = check_int(width, f"hidden_sizes[{i}]", 1)
            layers += [nn.Linear(previous, width), make_activation(activation)]
            previous = width
        layers.append(nn.Linear(previous, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)

    def negative_log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``-log q(x|z)`` in nats, shape ``z.shape[:-1]``; ``x`` ``(B, ...)`` broadcasts over S."""
        target = x.reshape(x.shape[0], -1)
        if target.shape[1] != self.out_features:
            raise ValueError(
                f"Decoder `out_features` is {self.out_features} but the input has "
                f"{target.shape[1]} features per sample."
            )
        out = self(z).float()
        target = target.float().expand_as(out)
        if self.likelihood == "bernoulli":
            low, high = float(target.min()), float(target.max())
            if low < 0.0 or high > 1.0:  # the loss would have no lower bound: -> -inf
                raise ValueError(
                    f"Decoder `likelihood='bernoulli'` needs inputs in [0, 1], got values in "
                    f"[{low:.3g}, {high:.3g}] (standardised pixels?); use likelihood="
                    "'gaussian' for standardised inputs."
                )
            return nn.functional.binary_cross_entropy_with_logits(
                out, target, reduction="none"
            ).sum(-1)
        return 0.5 * ((out - target) ** 2).sum(-1) + 0.5 * self.out_features * math.log(2 * math.pi)
