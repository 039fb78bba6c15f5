import math
from functools import partial

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lit_infobottleneck.objectives.cross_entropy import CrossEntropy
from lit_infobottleneck.objectives.vib import VIB
from tests.objectives.helpers import (
    fit_tiny_batch,
    forward,
    gaussian_model,
    random_output,
    toy_batch,
)

# Random Gaussian parameters, samples and logits (no network), K = 8, 5 classes, random labels.
_random_output = partial(random_output, k=8, c=5, random_labels=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_matches_torch_distributions(dtype):
    out = _random_output(dtype=dtype)
    kl = VIB(beta=0.1)(out)["kl"]
    mean, std = out.rep.mean.double(), out.rep.std.double()
    expected = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).sum(-1).mean()
    assert float(expected) > 5  # several nats: a dropped term would show
    assert float(kl) == pytest.approx(float(expected), rel=1e-6, abs=1e-6)


def test_kl_is_zero_at_the_prior():
    out = _random_output()
    out.rep.mean, out.rep.std = torch.zeros(16, 8), torch.ones(16, 8)
    assert float(VIB()(out)["kl"]) == 0.0


def test_kl_in_float32_under_bf16():
    out = _random_output()
    out.rep.mean, out.rep.std = out.rep.mean.bfloat16(), out.rep.std.bfloat16()
    kl = VIB()(out)["kl"]
    assert kl.dtype == torch.float32
    expected = kl_divergence(Normal(out.rep.mean.double(), out.rep.std.double()), Normal(0.0, 1.0))
    assert float(kl) == pytest.approx(float(expected.sum(-1).mean()), rel=1e-6)


def test_beta_zero_equals_cross_entropy_exactly():
    out = _random_output()
    assert torch.equal(VIB(beta=0.0)(out)["loss"], CrossEntropy()(out)["loss"])


def test_loss_is_ce_plus_beta_kl():
    out = _random_output()
    terms = VIB(beta=0.37)(out)
    assert set(terms) == {"loss", "ce", "kl"}
    assert all(t.dim() == 0 for t in terms.values())
    expected = terms["ce"] + 0.37 * terms["kl"]
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-7)
    assert float(terms["loss"]) > float(terms["ce"]) + 1  # the KL term is really there


def test_ce_is_mean_over_samples_of_z():
    out = _random_output(s=4)
    ce = VIB()(out)["ce"]
    # by hand: -log softmax of the true class, averaged over the B examples, then the S samples
    log_p = out.logits.double().log_softmax(-1)
    per_sample = [-log_p[s, torch.arange(16), out.y].mean() for s in range(4)]
    expected = sum(per_sample) / 4
    assert float(ce) == pytest.approx(float(expected), rel=1e-6)
    # and not the CE of the sample-averaged logits or of the first sample only
    assert abs(float(ce) - float(per_sample[0])) > 1e-2


def test_beta_is_a_schedulable_weight():
    vib = VIB(beta=0.0)
    assert VIB.weights == ("beta",) and VIB.requires_stochastic
    vib.beta = 0.5
    out = _random_output()
    terms = vib(out)
    assert float(terms["loss"]) == pytest.approx(float(terms["ce"] + 0.5 * terms["kl"]))


@pytest.mark.parametrize("beta", [-1e-3, float("nan"), float("inf"), -float("inf"), "1e-3", True])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="`beta`"):
        VIB(beta=beta)


def test_deterministic_representation_raises():
    out = _random_output()
    out.rep.std = None
    with pytest.raises(ValueError, match=r"stochastic bottleneck such as .*GaussianBottleneck"):
        VIB()(out)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder, bn, head = gaussian_model()
    objective = VIB(beta=1.0)
    x, y = toy_batch()
    objective(forward(encoder, bn, head, x, y))["loss"].backward()
    params = {
        f"{owner}.{name}": p
        for owner, module in (("encoder", encoder), ("bn", bn), ("head", head), ("obj", objective))
        for name, p in module.named_parameters()
    }
    assert len(params) == 8
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    encoder, bn, head = gaussian_model()
    objective = VIB(beta=1e-3)
    x, y = toy_batch()
    first, last, _ = fit_tiny_batch(objective, encoder, bn, head, x, y)
    loss0, loss_end = float(first["loss"]), float(last["loss"])
    with torch.no_grad():
        out = forward(encoder, bn, head, x, y)
        terms = objective(out)
    assert out.logits.shape[0] == 1  # eval: the mean of q(z|x)
    assert (out.logits[0].argmax(-1) == y).all()
    assert loss0 == pytest.approx(math.log(4), abs=0.2)
    assert loss_end < loss0 / 10
    assert 0 < float(terms["kl"]) < 1e3
