import pytest
import torch
from torch.nn import functional as F

from lit_infobottleneck.nets import Representation
from lit_infobottleneck.objectives.base import ModelOutput
from lit_infobottleneck.objectives.cross_entropy import CrossEntropy


def _output(s, b=16, k=4, c=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(s, b, k, generator=gen)
    logits = 3 * torch.randn(s, b, c, generator=gen)
    y = torch.randint(0, c, (b,), generator=gen)
    rep = Representation(z=z, mean=z[0])
    return ModelOutput(x=torch.zeros(b, 1), y=y, rep=rep, logits=logits)


def test_single_sample_equals_torch_cross_entropy():
    out = _output(s=1)
    terms = CrossEntropy()(out)
    assert set(terms) == {"loss", "ce"}
    expected = F.cross_entropy(out.logits[0], out.y)
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert torch.equal(terms["loss"], terms["ce"])


def test_many_samples_equal_mean_of_per_sample_cross_entropies():
    out = _output(s=5)
    ce = float(CrossEntropy()(out)["loss"])
    per_sample = [float(F.cross_entropy(out.logits[s], out.y)) for s in range(5)]
    assert ce == pytest.approx(sum(per_sample) / 5, rel=1e-6)
    # not the CE of the averaged logits nor of the first sample
    averaged = float(F.cross_entropy(out.logits.mean(0), out.y))
    assert abs(ce - averaged) > 1e-2 and abs(ce - per_sample[0]) > 1e-2


def test_no_stochastic_requirement_and_no_weights():
    assert not CrossEntropy.requires_stochastic and tuple(CrossEntropy.weights) == ()
    assert list(CrossEntropy().parameters()) == []
