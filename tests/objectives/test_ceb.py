import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lit_infobottleneck.nets import Representation
from lit_infobottleneck.objectives.base import ModelOutput
from lit_infobottleneck.objectives.ceb import CEB
from lit_infobottleneck.objectives.cross_entropy import CrossEntropy
from tests.objectives.helpers import (
    fit_tiny_batch,
    forward,
    gaussian_model,
    random_output,
    toy_batch,
)


def _bound_ceb(k, c, beta=0.1, seed=1, dtype=torch.float32):
    ceb = CEB(beta=beta)
    ceb.bind(latent_dim=k, input_shape=None, num_classes=c)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        ceb.mu.copy_(torch.randn(c, k, generator=gen, dtype=dtype))
    return ceb.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_residual_matches_log_densities_on_fixed_samples(dtype):
    out = random_output(dtype=dtype)
    ceb = _bound_ceb(6, 4, dtype=dtype)
    with torch.no_grad():
        terms = ceb(out)
    z, rep = out.rep.z.double(), out.rep
    log_e = Normal(rep.mean.double(), rep.std.double()).log_prob(z).sum(-1)  # (S, B)
    log_b = Normal(ceb.mu.detach().double()[out.y], 1.0).log_prob(z).sum(-1)
    expected = (log_e - log_b).mean()
    assert abs(float(expected)) > 1  # far from zero: a wrong term would show
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert float(terms["residual_info"]) == pytest.approx(float(expected), rel=tol, abs=tol)


def test_residual_monte_carlo_approaches_closed_form_kl():
    # S = 20000 samples of e(z|x) for B = 4 fixed inputs: the standard error of the estimate
    # is 0.011 nats here (measured), the tolerance 0.05 nats ~ 4.5 standard errors; dropping
    # the log-std term would shift the estimate by 1.28 nats.
    torch.manual_seed(0)
    b, k, c, s = 4, 3, 2, 20_000
    mean = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.3], [0.0, 0.2, 0.4]])
    std = torch.tensor([[0.3, 1.5, 0.8], [0.5, 0.2, 2.0], [1.0, 0.7, 0.4], [2.5, 0.1, 1.2]])
    y = torch.tensor([0, 1, 1, 0])
    ceb = _bound_ceb(k, c, dtype=torch.float64)
    mean, std = mean.double(), std.double()
    z = mean + std * torch.randn(s, b, k, dtype=torch.float64)
    out = ModelOutput(
        x=torch.zeros(b, 1),
        y=y,
        rep=Representation(z=z, mean=mean, std=std),
        logits=torch.zeros(s, b, c),
    )
    with torch.no_grad():
        got = float(ceb(out)["residual_info"])
    expected = float(
        kl_divergence(Normal(mean, std), Normal(ceb.mu.detach()[y], 1.0)).sum(-1).mean()
    )
    assert expected > 1
    assert got == pytest.approx(expected, abs=0.05)


def test_loss_is_ce_plus_beta_residual_and_terms():
    out = random_output()
    with torch.no_grad():
        terms = _bound_ceb(6, 4, beta=0.37)(out)
    assert set(terms) == {"loss", "ce", "residual_info"}
    assert all(t.dim() == 0 for t in terms.values())
    expected = terms["ce"] + 0.37 * terms["residual_info"]
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-7)
    assert float(terms["ce"]) == pytest.approx(float(CrossEntropy()(out)["ce"]), rel=1e-7)


def test_beta_zero_equals_cross_entropy_exactly():
    out = random_output()
    assert torch.equal(_bound_ceb(6, 4, beta=0.0)(out)["loss"], CrossEntropy()(out)["loss"])


def test_residual_in_float32_under_bf16():
    out = random_output()
    rep = out.rep
    rep.z, rep.mean, rep.std = rep.z.bfloat16(), rep.mean.bfloat16(), rep.std.bfloat16()
    ceb = _bound_ceb(6, 4)
    with torch.no_grad():
        residual = ceb(out)["residual_info"]
    assert residual.dtype == torch.float32
    z = rep.z.double()
    log_e = Normal(rep.mean.double(), rep.std.double()).log_prob(z).sum(-1)
    log_b = Normal(ceb.mu.detach().double()[out.y], 1.0).log_prob(z).sum(-1)
    assert float(residual) == pytest.approx(float((log_e - log_b).mean()), rel=1e-5)


def test_bind_creates_zero_class_means_once():
    ceb = CEB()
    assert ceb.mu is None and list(ceb.parameters()) == []
    ceb.bind(latent_dim=5, input_shape=(1, 28, 28), num_classes=3)
    assert isinstance(ceb.mu, torch.nn.Parameter) and ceb.mu.shape == (3, 5)
    assert torch.equal(ceb.mu, torch.zeros(3, 5))
    assert [n for n, _ in ceb.named_parameters()] == ["mu"]
    with torch.no_grad():
        ceb.mu.fill_(1.0)
    ceb.bind(latent_dim=5, input_shape=None, num_classes=3)  # same sizes: kept
    assert float(ceb.mu.detach().sum()) == 15.0
    ceb.bind(latent_dim=2, input_shape=None, num_classes=3)  # new sizes: recreated
    assert ceb.mu.shape == (3, 2)


def test_forward_before_bind_raises():
    with pytest.raises(RuntimeError, match="call `bind"):
        CEB()(random_output())


def test_latent_dim_mismatch_raises():
    with pytest.raises(ValueError, match="latent_dim"):
        _bound_ceb(5, 4)(random_output(k=6))


@pytest.mark.parametrize("beta", [-1e-3, float("nan"), float("inf"), -float("inf"), None])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="`beta`"):
        CEB(beta=beta)


def test_deterministic_representation_raises():
    out = random_output()
    out.rep.std = None
    with pytest.raises(ValueError, match=r"stochastic bottleneck such as .*GaussianBottleneck"):
        _bound_ceb(6, 4)(out)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder, bn, head = gaussian_model()
    objective = CEB(beta=1.0)
    objective.bind(latent_dim=8, input_shape=(8,), num_classes=4)
    x, y = toy_batch()
    objective(forward(encoder, bn, head, x, y))["loss"].backward()
    params = {
        f"{owner}.{name}": p
        for owner, module in (("encoder", encoder), ("bn", bn), ("head", head), ("obj", objective))
        for name, p in module.named_parameters()
    }
    assert len(params) == 9 and "obj.mu" in params
    for name, p in params.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert (p.grad.abs().sum(-1) > 0).all(), name  # every class mean too


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    encoder, bn, head = gaussian_model()
    objective = CEB(beta=1e-2)
    objective.bind(latent_dim=8, input_shape=(8,), num_classes=4)
    x, y = toy_batch()
    first, last, _ = fit_tiny_batch(objective, encoder, bn, head, x, y)
    loss0, loss_end = float(first["loss"]), float(last["loss"])
    with torch.no_grad():
        out = forward(encoder, bn, head, x, y)
    assert out.logits.shape[0] == 1  # eval: the mean of e(z|x)
    assert (out.logits[0].argmax(-1) == y).all()
    assert loss0 == pytest.approx(math.log(4), abs=0.5)
    assert loss_end < loss0 / 10
    assert float(objective.mu.detach().abs().max()) > 0.1  # the backward encoder learned
