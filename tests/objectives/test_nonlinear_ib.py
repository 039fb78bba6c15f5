import math

import pytest
import torch

from lit_infobottleneck.estimators.kde import kde_mutual_information
from lit_infobottleneck.nets import (
    ClassifierHead,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    NoisyBottleneck,
    Representation,
)
from lit_infobottleneck.objectives.base import ModelOutput
from lit_infobottleneck.objectives.nonlinear_ib import NonlinearIB
from tests.objectives.helpers import fit_tiny_batch, forward, toy_batch


def _model(d=8, k=4, classes=4, init_noise_var=0.5):
    encoder = MLPEncoder(d, (32,), activation="tanh")
    bn = NoisyBottleneck(32, k, init_noise_var=init_noise_var)
    return encoder, bn, ClassifierHead(k, classes)


def test_terms_equal_kde_estimator_and_loss_composition():
    torch.manual_seed(0)
    x, y = toy_batch()
    encoder, bn, head = _model(init_noise_var=0.3)
    with torch.no_grad():
        out = forward(encoder, bn, head, x, y)
        terms = NonlinearIB(beta=0.2)(out)
        sq_terms = NonlinearIB(beta=0.2, squared=True)(out)
    assert set(terms) == {"loss", "ce", "i_xz_upper", "noise_var"}
    noise_var = out.rep.std[0, 0] ** 2  # 0.3 in float32
    direct = kde_mutual_information(
        out.rep.mean, torch.arange(32), noise_var=noise_var, bound="upper", discrete_groups=True
    )
    # Written out: -1/B sum_i log 1/B sum_j exp(-||m_i - m_j||^2 / (2 * 0.3)).
    sq = torch.cdist(out.rep.mean.double(), out.rep.mean.double()) ** 2
    by_hand = -(torch.logsumexp(-sq / (2 * float(noise_var)), dim=1) - math.log(32)).mean()
    i_up = float(terms["i_xz_upper"])
    assert i_up == pytest.approx(float(direct), abs=1e-9)
    assert i_up == pytest.approx(float(by_hand), abs=1e-5)
    assert 0.0 <= i_up <= math.log(32)
    assert float(terms["noise_var"]) == pytest.approx(0.3, rel=1e-6)
    ce = float(terms["ce"])
    assert float(terms["loss"]) == pytest.approx(ce + 0.2 * i_up, rel=1e-9)
    assert float(sq_terms["loss"]) == pytest.approx(ce + 0.2 * i_up**2, rel=1e-9)
    assert float(sq_terms["i_xz_upper"]) == pytest.approx(i_up, rel=1e-12)


def test_upper_bound_limits():
    x, y = toy_batch()
    mean = 100.0 * torch.randn(32, 4, generator=torch.Generator().manual_seed(3))
    for noise_var, expected in [(1e-3, math.log(32)), (1e12, 0.0)]:
        std = torch.tensor(math.sqrt(noise_var)).expand(32, 4)
        rep = Representation(z=mean[None], mean=mean, std=std)
        out = ModelOutput(x=x, y=y, rep=rep, logits=torch.zeros(1, 32, 4))
        i_up = float(NonlinearIB()(out)["i_xz_upper"])
        assert i_up == pytest.approx(expected, abs=1e-6)


def test_gradient_reaches_noise_and_every_parameter():
    torch.manual_seed(0)
    x, y = toy_batch()
    encoder, bn, head = _model()
    terms = NonlinearIB(beta=0.5)(forward(encoder, bn, head, x, y))
    terms["loss"].backward()
    for module in (encoder, bn, head):
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, f"{name} has a zero grad"
    # The compression term alone pushes the noise variance up (less information).
    encoder.zero_grad()
    bn.zero_grad()
    NonlinearIB()(forward(encoder, bn, head, x, y))["i_xz_upper"].backward()
    assert float(bn.log_noise_var.grad) < 0
    assert encoder.layers[0].weight.grad.abs().sum() > 0


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = toy_batch(permute_labels=True)  # random labels: pure memorisation
    encoder, bn, head = _model(init_noise_var=0.1)
    obj = NonlinearIB(beta=1e-2)
    _, _, acc = fit_tiny_batch(obj, encoder, bn, head, x, y)
    assert acc == 1.0


def test_bad_config_and_wrong_bottleneck():
    with pytest.raises(ValueError, match="beta"):
        NonlinearIB(beta=-0.1)
    with pytest.raises(ValueError, match="beta"):
        NonlinearIB(beta=float("inf"))
    assert NonlinearIB.requires_stochastic and NonlinearIB.weights == ("beta",)
    x, y = toy_batch()
    encoder = MLPEncoder(8, (32,))
    for bn, match in [
        (GaussianBottleneck(32, 4), "per-unit std.*NoisyBottleneck|NoisyBottleneck.*per-unit"),
        (DeterministicBottleneck(32, 4), "NoisyBottleneck"),
    ]:
        with pytest.raises(ValueError, match=match):
            NonlinearIB()(forward(encoder, bn, ClassifierHead(4, 4), x, y))
