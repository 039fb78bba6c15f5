import math

import pytest
import torch

from lit_infobottleneck.nets import (
    ClassifierHead,
    DeterministicBottleneck,
    GaussianBottleneck,
    MLPEncoder,
    Representation,
)
from lit_infobottleneck.objectives.base import ModelOutput
from lit_infobottleneck.objectives.info_objective import (
    InfoObjective,
    gaussian_class_conditional_entropy,
)
from tests.objectives.helpers import fit_tiny_batch, forward, toy_batch

LOG_2PIE = math.log(2 * math.pi * math.e)


def _model(d=8, k=4, classes=4, bottleneck="gaussian", num_samples=3):
    encoder = MLPEncoder(d, (32,), activation="tanh")
    if bottleneck == "gaussian":
        bn = GaussianBottleneck(32, k, num_samples=num_samples)
    else:
        bn = DeterministicBottleneck(32, k)
    return encoder, bn, ClassifierHead(k, classes)


def test_h_z_given_y_matches_gaussian_closed_form():
    gen = torch.Generator().manual_seed(0)
    k = 3
    sizes, scales = [60_000, 90_000, 150_000], [0.2, 1.0, 5.0]
    zs, ys, per_class = [], [], []
    for c, (n_c, scale) in enumerate(zip(sizes, scales, strict=True)):
        a = torch.randn(k, k, generator=gen, dtype=torch.float64)
        cov = scale * (a @ a.T + 0.1 * torch.eye(k, dtype=torch.float64))
        mu = 5 * torch.randn(k, generator=gen, dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)
        zs.append(mu + torch.randn(n_c, k, generator=gen, dtype=torch.float64) @ chol.T)
        ys.append(torch.full((n_c,), c))
        per_class.append(0.5 * (k * LOG_2PIE + float(torch.logdet(cov))))
    expected = sum(n_c / sum(sizes) * h for n_c, h in zip(sizes, per_class, strict=True))
    perm = torch.randperm(sum(sizes), generator=gen)
    z, y = torch.cat(zs)[perm], torch.cat(ys)[perm]
    got = float(gaussian_class_conditional_entropy(z, y, eps=1e-12))
    assert got == pytest.approx(expected, abs=1e-2)
    # The tolerance separates the right formula from plausible wrong ones: uniform class
    # weights, or the covariance of z ignoring the labels (the bound on H(Z) instead).
    assert abs(sum(per_class) / 3 - expected) > 0.2
    marginal = float(gaussian_class_conditional_entropy(z, torch.zeros_like(y), eps=1e-12))
    assert marginal - expected > 1.0


def test_h_z_given_y_exact_and_skips_singleton_class():
    gen = torch.Generator().manual_seed(1)
    k, eps = 5, 1e-3
    z = torch.randn(23, k, generator=gen, dtype=torch.float64) * torch.arange(1, k + 1)
    y = torch.tensor([0] * 7 + [1] * 12 + [2] * 3 + [3])  # class 3: a single vector, skipped
    expected, total = 0.0, 7 + 12 + 3
    for c, n_c in [(0, 7), (1, 12), (2, 3)]:
        cov = torch.cov(z[y == c].T) + eps * torch.eye(k, dtype=torch.float64)
        expected += n_c / total * 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))
    got = gaussian_class_conditional_entropy(z, y, eps=eps)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # Moving the singleton vector does not change anything.
    z2 = z.clone()
    z2[-1] += 100.0
    assert float(gaussian_class_conditional_entropy(z2, y, eps=eps)) == pytest.approx(
        expected, abs=1e-9
    )
    # Only singletons: nothing to estimate, 0.
    assert float(gaussian_class_conditional_entropy(z[:3], torch.tensor([0, 1, 2]))) == 0.0


def test_h_z_given_y_eps_floor_for_collapsed_classes():
    z = torch.zeros(10, 4)
    y = torch.tensor([0] * 5 + [1] * 5)
    eps = 1e-2
    assert float(gaussian_class_conditional_entropy(z, y, eps=eps)) == pytest.approx(
        0.5 * 4 * math.log(2 * math.pi * math.e * eps), abs=1e-9
    )


def test_objective_uses_all_samples_of_z_and_composes_loss():
    torch.manual_seed(0)
    x, y = toy_batch()
    encoder, bn, head = _model(num_samples=3)
    obj = InfoObjective(lambda1=0.3, lambda2=0.7, decoder_hidden=(16,), eps=1e-3)
    obj.bind(latent_dim=4, input_shape=(8,), num_classes=4)
    with torch.no_grad():
        out = forward(encoder, bn, head, x, y)
        terms = obj(out)
    assert set(terms) == {"loss", "ce", "recon_nll", "h_z_given_y"}
    s = out.rep.z.shape[0]
    assert s == 3
    h = gaussian_class_conditional_entropy(out.rep.z.reshape(-1, 4), y.repeat(s), 1e-3)
    assert float(terms["h_z_given_y"]) == pytest.approx(float(h), abs=1e-9)
    # Same thing written per class from the (S, B, K) tensor: all S samples of class c.
    manual = 0.0
    for c in range(4):
        zc = out.rep.z[:, y == c].reshape(-1, 4).double()
        cov = torch.cov(zc.T) + 1e-3 * torch.eye(4, dtype=torch.float64)
        manual += 0.25 * 0.5 * (4 * LOG_2PIE + float(torch.logdet(cov)))
    assert float(terms["h_z_given_y"]) == pytest.approx(manual, abs=1e-6)
    with torch.no_grad():
        recon = obj.decoder.negative_log_likelihood(out.rep.z, x).mean()
    assert float(terms["recon_nll"]) == pytest.approx(float(recon), rel=1e-6)
    ce = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 4), y.repeat(s))
    assert float(terms["ce"]) == pytest.approx(float(ce), rel=1e-6)
    expected = terms["ce"] + 0.3 * terms["recon_nll"] + 0.7 * terms["h_z_given_y"]
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize(
    ("likelihood", "per_dim"), [("gaussian", 0.5 * math.log(2 * math.pi)), ("bernoulli", None)]
)
def test_recon_nll_closed_form(likelihood, per_dim):
    d = 6
    obj = InfoObjective(likelihood=likelihood, decoder_hidden=())
    obj.bind(latent_dim=d, input_shape=(2, 3), num_classes=2)
    lin = obj.decoder.layers[0]
    x = torch.rand(5, 2, 3)
    with torch.no_grad():
        if likelihood == "gaussian":  # decoder output == x: NLL = d/2 log(2 pi) exactly
            lin.weight.copy_(torch.eye(d))
        else:  # logits 0: every pixel has probability 1/2, NLL = d log 2 whatever x
            lin.weight.zero_()
        lin.bias.zero_()
    z = x.reshape(1, 5, d)
    out = ModelOutput(
        x=x,
        y=torch.tensor([0, 1, 0, 1, 0]),
        rep=Representation(z=z, mean=z[0]),
        logits=torch.zeros(1, 5, 2),
    )
    with torch.no_grad():
        terms = obj(out)
    expected = d * (per_dim if per_dim is not None else math.log(2))
    assert float(terms["recon_nll"]) == pytest.approx(expected, abs=1e-6)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    x, y = toy_batch()
    for kind in ("gaussian", "deterministic"):
        encoder, bn, head = _model(bottleneck=kind)
        obj = InfoObjective(lambda1=0.1, lambda2=0.1, decoder_hidden=(16,))
        obj.bind(latent_dim=4, input_shape=(8,), num_classes=4)
        obj(forward(encoder, bn, head, x, y))["loss"].backward()
        for module in (encoder, bn, head, obj):
            for name, p in module.named_parameters():
                assert p.grad is not None, f"{kind}: {name} has no grad"
                assert torch.isfinite(p.grad).all(), f"{kind}: {name}"
                assert p.grad.abs().sum() > 0, f"{kind}: {name} has a zero grad"


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    x, y = toy_batch(permute_labels=True)  # random labels: pure memorisation
    encoder, bn, head = _model(bottleneck="gaussian", num_samples=1)
    obj = InfoObjective(lambda1=1e-2, lambda2=1e-2, decoder_hidden=(16,))
    obj.bind(latent_dim=4, input_shape=(8,), num_classes=4)
    _, terms, acc = fit_tiny_batch(obj, encoder, bn, head, x, y)  # terms: the last step's
    assert acc == 1.0
    assert all(torch.isfinite(v) for v in terms.values())


def test_bad_config():
    with pytest.raises(ValueError, match="lambda1"):
        InfoObjective(lambda1=-1.0)
    with pytest.raises(ValueError, match="lambda2"):
        InfoObjective(lambda2=float("nan"))
    with pytest.raises(ValueError, match="likelihood"):
        InfoObjective(likelihood="poisson")
    with pytest.raises(ValueError, match="eps"):
        InfoObjective(eps=0.0)
    with pytest.raises(ValueError, match="input_shape"):
        InfoObjective().bind(latent_dim=4, input_shape=None, num_classes=2)
    assert InfoObjective.weights == ("lambda1", "lambda2")
    with pytest.raises(RuntimeError, match="bind"):
        x, y = toy_batch()
        InfoObjective()(forward(*_model(), x, y))
