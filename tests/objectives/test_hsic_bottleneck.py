from functools import partial

import pytest
import torch

from lit_infobottleneck.estimators.hsic import normalized_hsic
from lit_infobottleneck.nets import (
    ClassifierHead,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    Representation,
)
from lit_infobottleneck.objectives.base import ModelOutput
from lit_infobottleneck.objectives.hsic_bottleneck import HSICBottleneck
from tests.objectives.helpers import fit_tiny_batch, forward, toy_batch

# Inputs x of shape (32, 2, 4): the encoder and nHSIC(X; Z) see them flattened to 8 features.
_toy_batch = partial(toy_batch, d=(2, 4))


def _model(d=8, k=4, classes=4, stochastic=False):
    encoder = MLPEncoder(d, (32,), activation="tanh")
    bn = GaussianBottleneck(32, k, num_samples=2) if stochastic else DeterministicBottleneck(32, k)
    return encoder, bn, ClassifierHead(k, classes)


@pytest.mark.parametrize("sigma", ["median", 1.5])
@pytest.mark.parametrize("stochastic", [False, True])
def test_terms_equal_normalized_hsic_and_loss_composition(sigma, stochastic):
    torch.manual_seed(0)
    x, y = _toy_batch()
    encoder, bn, head = _model(stochastic=stochastic)
    with torch.no_grad():
        out = forward(encoder, bn, head, x, y)
        terms = HSICBottleneck(beta=0.3, lambda_y=2.0, sigma=sigma)(out)
    assert set(terms) == {"loss", "ce", "nhsic_xz", "nhsic_yz"}
    z = out.rep.mean  # the mean, not the samples, for a stochastic bottleneck
    xz = normalized_hsic(x.reshape(32, -1), z, sigma_x=sigma, sigma_y=sigma)
    yz = normalized_hsic(z, y, sigma_x=sigma, discrete_y=True)
    assert float(terms["nhsic_xz"]) == pytest.approx(float(xz), abs=1e-12)
    assert float(terms["nhsic_yz"]) == pytest.approx(float(yz), abs=1e-12)
    assert 0.0 < float(xz) <= 1.0 and 0.0 <= float(yz) <= 1.0
    expected = float(terms["ce"]) + 0.3 * (float(xz) - 2.0 * float(yz))
    assert float(terms["loss"]) == pytest.approx(expected, rel=1e-9)


def test_nhsic_yz_sees_the_labels():
    x, y = _toy_batch()
    z_informative = torch.nn.functional.one_hot(y, 4).double() * 3.0
    z_noise = torch.randn(32, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    obj = HSICBottleneck()
    vals = []
    for z in (z_informative, z_noise):
        out = ModelOutput(
            x=x, y=y, rep=Representation(z=z[None], mean=z), logits=torch.zeros(1, 32, 4)
        )
        vals.append(float(obj(out)["nhsic_yz"]))
    assert vals[0] == pytest.approx(1.0, abs=1e-9)  # Z is a relabelling of Y
    assert vals[1] < 0.3


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    x, y = _toy_batch()
    for stochastic in (False, True):
        encoder, bn, head = _model(stochastic=stochastic)
        HSICBottleneck(beta=1.0)(forward(encoder, bn, head, x, y))["loss"].backward()
        for module in (encoder, bn, head):
            for name, p in module.named_parameters():
                assert p.grad is not None, name
                assert torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, f"{name} has a zero grad"
    # The regulariser alone also reaches the encoder (through nHSIC, no CE).
    encoder, bn, head = _model()
    terms = HSICBottleneck()(forward(encoder, bn, head, x, y))
    (terms["nhsic_xz"] - terms["nhsic_yz"]).backward()
    assert encoder.layers[0].weight.grad.abs().sum() > 0


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = _toy_batch(permute_labels=True)  # random labels: pure memorisation
    encoder, bn, head = _model()
    obj = HSICBottleneck(beta=0.1)
    _, _, acc = fit_tiny_batch(obj, encoder, bn, head, x, y)
    assert acc == 1.0


def test_bad_config():
    with pytest.raises(ValueError, match="beta"):
        HSICBottleneck(beta=-1.0)
    with pytest.raises(ValueError, match="lambda_y"):
        HSICBottleneck(lambda_y=-0.5)
    with pytest.raises(ValueError, match="sigma"):
        HSICBottleneck(sigma="silverman")
    with pytest.raises(ValueError, match="sigma"):
        HSICBottleneck(sigma=0.0)
    assert HSICBottleneck.weights == ("beta", "lambda_y")
    assert not HSICBottleneck.requires_stochastic
