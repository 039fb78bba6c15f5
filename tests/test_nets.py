import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal

from lit_infobottleneck.nets import (
    ACTIVATIONS,
    ClassifierHead,
    CNNEncoder,
    Decoder,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    NoisyBottleneck,
    Representation,
    make_activation,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- activations ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_make_activation_builds_every_choice(name):
    act = make_activation(name)
    assert isinstance(act, ACTIVATIONS[name])
    assert act(torch.zeros(2, 3)).shape == (2, 3)


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="`activation` 'swish'") as info:
        make_activation("swish")
    for name in ACTIVATIONS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="`act_fn`"):
        make_activation("swish", field="act_fn")
    with pytest.raises(ValueError, match="choose one of: relu"):
        MLPEncoder(4, [8], activation="swish")


# --- MLPEncoder -----------------------------------------------------------------------------


def test_mlp_encoder_shapes_and_named_layers():
    enc = MLPEncoder(16, [32, 8], activation="tanh")
    assert (enc.in_features, enc.out_features) == (16, 8)
    assert enc(torch.randn(5, 16)).shape == (5, 8)
    assert enc(torch.randn(5, 1, 4, 4)).shape == (5, 8)  # images are flattened per sample

    modules = dict(enc.named_modules())
    assert isinstance(modules["layers.0"], nn.Linear)
    assert isinstance(modules["layers.1"], nn.Tanh)
    assert isinstance(modules["layers.2"], nn.Linear)
    assert isinstance(modules["layers.3"], nn.Tanh)
    assert len(enc.layers) == 4
    assert modules["layers.2"].in_features == 32 and modules["layers.2"].out_features == 8

    captured = []
    enc.layers[1].register_forward_hook(lambda m, i, o: captured.append(o))
    enc(torch.randn(3, 16))
    assert captured[0].shape == (3, 32)


def test_mlp_encoder_wrong_input_size():
    enc = MLPEncoder(16, [8])
    with pytest.raises(ValueError, match="`in_features`") as info:
        enc(torch.randn(4, 15))
    assert "16" in str(info.value) and "15" in str(info.value)
    with pytest.raises(ValueError, match="`in_features`"):
        enc(torch.randn(4, 1, 3, 3))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, [8]), "in_features"),
        ((True, [8]), "in_features"),
        ((4.0, [8]), "in_features"),
        ((4, []), "hidden_sizes"),
        ((4, [8, 0]), r"hidden_sizes\[1\]"),
    ],
)
def test_mlp_encoder_invalid_sizes(args, field):
    with pytest.raises(ValueError, match=field):
        MLPEncoder(*args)


# --- CNNEncoder -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_channels", "image_size"), [(1, 28), (3, 32), (3, (32, 32)), (1, (16, 8))]
)
def test_cnn_encoder_shapes(in_channels, image_size):
    enc = CNNEncoder(in_channels, image_size, channels=(4, 8), out_features=10)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    out = enc(torch.randn(2, in_channels, h, w))
    assert out.shape == (2, 10)
    assert enc.out_features == 10
    assert isinstance(dict(enc.named_modules())["conv.1"], nn.ReLU)


def test_cnn_encoder_too_small_image():
    with pytest.raises(ValueError, match="`image_size`"):
        CNNEncoder(1, 3, channels=(4, 8))
    with pytest.raises(ValueError, match="`image_size`"):
        CNNEncoder(1, (8, 1), channels=(4,))
    CNNEncoder(1, 4, channels=(4, 8))  # 4 -> 2 -> 1 is still fine


def test_cnn_encoder_wrong_input_shape():
    enc = CNNEncoder(1, 28, channels=(4,), out_features=6)
    for bad in (torch.randn(2, 3, 28, 28), torch.randn(2, 1, 32, 32), torch.randn(2, 784)):
        with pytest.raises(ValueError, match="`in_channels`, `image_size`"):
            enc(bad)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"out_features": 0}, "out_features"),
        ({"channels": (4, -1)}, r"channels\[1\]"),
    ],
)
def test_cnn_encoder_invalid_sizes(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CNNEncoder(**kwargs)


# --- DeterministicBottleneck ----------------------------------------------------------------


def test_deterministic_bottleneck():
    bn = DeterministicBottleneck(8, 3, activation="tanh")
    assert bn.stochastic is False
    h = torch.randn(5, 8)
    rep = bn(h)
    assert isinstance(rep, Representation)
    assert rep.z.shape == (1, 5, 3) and rep.mean.shape == (5, 3)
    assert rep.std is None
    torch.testing.assert_close(rep.z[0], rep.mean)
    torch.testing.assert_close(rep.mean, torch.tanh(bn.linear(h)))
    bn.eval()
    torch.testing.assert_close(bn(h).z, rep.z)
    with pytest.raises(ValueError, match="latent_dim"):
        DeterministicBottleneck(8, 0)


# --- GaussianBottleneck ---------------------------------------------------------------------


def test_gaussian_bottleneck_shapes_train_and_eval():
    bn = GaussianBottleneck(8, 4, num_samples=5, eval_num_samples=0)
    assert bn.stochastic is True
    h = torch.randn(3, 8)
    rep = bn.train()(h)
    assert rep.z.shape == (5, 3, 4)
    assert rep.mean.shape == rep.std.shape == (3, 4)
    assert not torch.equal(rep.z[0], rep.z[1])

    rep = bn.eval()(h)
    assert rep.z.shape == (1, 3, 4)
    torch.testing.assert_close(rep.z[0], rep.mean)
    torch.testing.assert_close(rep.mean, bn.mean_head(h))

    bn.eval_num_samples = 12
    rep = bn(h)
    assert rep.z.shape == (12, 3, 4)
    assert not torch.allclose(rep.z[0], rep.mean)


def test_gaussian_bottleneck_std_positive_and_floored():
    bn = GaussianBottleneck(8, 4, min_std=1e-3)
    std = bn(torch.randn(64, 8)).std
    assert (std > 0).all() and (std >= 1e-3).all()
    # softplus(s - 5) with the documented offset
    h = torch.randn(2, 8)
    expected = nn.functional.softplus(bn.std_head(h) - 5.0) + 1e-3
    torch.testing.assert_close(bn(h).std, expected)
    # far negative pre-activations hit the floor exactly
    with torch.no_grad():
        bn.std_head.weight.zero_()
        bn.std_head.bias.fill_(-200.0)
    torch.testing.assert_close(bn(h).std, torch.full((2, 4), 1e-3))


def test_gaussian_bottleneck_reparameterisation_statistics():
    num_samples = 20_000
    bn = GaussianBottleneck(6, 3, num_samples=num_samples)
    with torch.no_grad():  # std of order one (softplus(+-0.5) = 0.47 .. 0.97), different per unit
        bn.std_head.weight.mul_(0.1)
        bn.std_head.bias.copy_(5.0 + torch.linspace(-0.5, 0.5, 3))
    rep = bn(torch.randn(4, 6))
    mean, std = rep.mean.detach(), rep.std.detach()
    z = rep.z.detach()
    assert z.shape == (num_samples, 4, 3)
    assert (std > 0.3).all()
    tol = 5 * std / math.sqrt(num_samples)  # 5 standard errors of the mean
    assert ((z.mean(0) - mean).abs() < tol).all()
    torch.testing.assert_close(z.std(0), std, rtol=0.03, atol=0.0)
    # standardised samples are uncorrelated across units
    eps = ((z - mean) / std).reshape(num_samples, -1)
    corr = torch.corrcoef(eps.T) - torch.eye(eps.shape[1])
    assert corr.abs().max() < 0.05


def test_gaussian_bottleneck_gradients_reach_both_heads():
    bn = GaussianBottleneck(6, 3, num_samples=4)
    rep = bn(torch.randn(5, 6))
    (rep.z**2).sum().backward()
    for head in (bn.mean_head, bn.std_head):
        for p in head.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"num_samples": 0}, "num_samples"),
        ({"eval_num_samples": -1}, "eval_num_samples"),
        ({"eval_num_samples": True}, "eval_num_samples"),
        ({"min_std": -1e-3}, "min_std"),
        ({"min_std": float("nan")}, "min_std"),
    ],
)
def test_gaussian_bottleneck_invalid(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        GaussianBottleneck(8, **{"latent_dim": 4, **kwargs})


# --- NoisyBottleneck ------------------------------------------------------------------------


def test_noisy_bottleneck_noise_variance():
    bn = NoisyBottleneck(6, 4, init_noise_var=0.3)
    assert bn.stochastic is True
    torch.testing.assert_close(bn.noise_var, bn.log_noise_var.exp())
    torch.testing.assert_close(bn.noise_var, torch.tensor(0.3))
    with torch.no_grad():
        bn.log_noise_var.fill_(math.log(0.7))
    torch.testing.assert_close(bn.noise_var, torch.tensor(0.7))

    rep = bn(torch.randn(10_000, 6))
    assert rep.z.shape == (1, 10_000, 4)
    torch.testing.assert_close(rep.std, torch.full((10_000, 4), math.sqrt(0.7)))
    noise = (rep.z[0] - rep.mean).detach()
    n = noise.numel()
    # variance of a sample variance: 2 sigma^4 / n; allow 5 standard errors
    assert abs(noise.var().item() - 0.7) < 5 * 0.7 * math.sqrt(2 / n)
    assert abs(noise.mean().item()) < 5 * math.sqrt(0.7 / n)


def test_noisy_bottleneck_eval_mode():
    bn = NoisyBottleneck(6, 4).eval()
    h = torch.randn(3, 6)
    a, b = bn(h), bn(h)
    torch.testing.assert_close(a.z[0], a.mean)
    torch.testing.assert_close(a.z, b.z)

    noisy = NoisyBottleneck(6, 4, noisy_eval=True).eval()
    a, b = noisy(h), noisy(h)
    assert a.z.shape == (1, 3, 4)
    assert not torch.allclose(a.z, b.z)
    assert not torch.allclose(a.z[0], a.mean)


def test_noisy_bottleneck_learned_or_frozen_noise():
    h = torch.randn(8, 6)
    learned = NoisyBottleneck(6, 4, learn_noise=True)
    (learned(h).z ** 2).sum().backward()
    assert learned.log_noise_var.grad is not None and learned.log_noise_var.grad != 0

    frozen = NoisyBottleneck(6, 4, init_noise_var=0.5, learn_noise=False)
    assert not frozen.log_noise_var.requires_grad
    opt = torch.optim.SGD(frozen.parameters(), lr=0.1)
    (frozen(h).z ** 2).sum().backward()
    opt.step()
    assert frozen.log_noise_var.grad is None
    torch.testing.assert_close(frozen.noise_var, torch.tensor(0.5))
    assert frozen.linear.weight.grad is not None
    frozen.requires_grad_(True)  # what LightningModule.unfreeze() does
    assert "log_noise_var" not in dict(frozen.named_parameters())


@pytest.mark.parametrize("bad", [0.0, -1.0, "1.0"])
def test_noisy_bottleneck_invalid_noise(bad):
    with pytest.raises(ValueError, match="`init_noise_var`"):
        NoisyBottleneck(6, 4, init_noise_var=bad)


# --- ClassifierHead -------------------------------------------------------------------------


def test_classifier_head():
    head = ClassifierHead(4, 3)
    assert head(torch.randn(2, 5, 4)).shape == (2, 5, 3)
    assert head(torch.randn(5, 4)).shape == (5, 3)


@pytest.mark.parametrize("bad", [1, 0, True, 2.0])
def test_classifier_head_invalid_num_classes(bad):
    with pytest.raises(ValueError, match="`num_classes`"):
        ClassifierHead(4, bad)


# --- Decoder --------------------------------------------------------------------------------


def test_decoder_gaussian_nll():
    dec = Decoder(3, 6, hidden_sizes=(8,), likelihood="gaussian")
    z = torch.randn(4, 5, 3)  # (S, B, K)
    x = torch.randn(5, 1, 2, 3)  # (B, ...) flattened to 6 features
    nll = dec.negative_log_likelihood(z, x)
    assert nll.shape == (4, 5)
    expected = -Normal(dec(z), 1.0).log_prob(x.reshape(5, 6)).sum(-1)
    torch.testing.assert_close(nll, expected, rtol=1e-5, atol=1e-5)


def test_decoder_bernoulli_nll():
    dec = Decoder(3, 6, likelihood="bernoulli")
    z = torch.randn(2, 5, 3)
    x = torch.randint(0, 2, (5, 6)).float()
    nll = dec.negative_log_likelihood(z, x)
    assert nll.shape == (2, 5)
    expected = -Bernoulli(logits=dec(z)).log_prob(x).sum(-1)
    torch.testing.assert_close(nll, expected, rtol=1e-5, atol=1e-5)


def test_decoder_without_sample_dimension_and_linear():
    dec = Decoder(3, 4, hidden_sizes=())
    assert len(dec.layers) == 1
    z, x = torch.randn(5, 3), torch.randn(5, 4)
    expected = -Normal(dec(z), 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(dec.negative_log_likelihood(z, x), expected)


def test_decoder_invalid():
    dec = Decoder(3, 6)
    with pytest.raises(ValueError, match="`out_features` is 6") as info:
        dec.negative_log_likelihood(torch.randn(1, 5, 3), torch.randn(5, 7))
    assert "7" in str(info.value)
    with pytest.raises(ValueError, match="choose one of: gaussian, bernoulli"):
        Decoder(3, 6, likelihood="laplace")
    with pytest.raises(ValueError, match=r"hidden_sizes\[0\]"):
        Decoder(3, 6, hidden_sizes=(0,))


def test_decoder_bernoulli_refuses_inputs_outside_the_unit_interval():
    """Regression: standardised pixels (up to 2.8 on MNIST) made the Bernoulli loss unbounded
    below, so training ran it towards -inf without a word."""
    dec = Decoder(3, 6, likelihood="bernoulli")
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"needs inputs in \[0, 1\].*likelihood='gaussian'"):
        dec.negative_log_likelihood(z, torch.full((4, 6), 2.8))
    assert torch.isfinite(dec.negative_log_likelihood(z, torch.rand(4, 6))).all()
