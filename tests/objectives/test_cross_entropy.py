from functools import partial

import pytest
import torch
from torch.nn import functional as F

from lit_infobottleneck.objectives.cross_entropy import CrossEntropy
from tests.objectives.helpers import random_output

# Deterministic random representations (z ~ N(0, 1), mean = z[0]), K = 4, 5 classes, random labels.
_random_output = partial(random_output, k=4, c=5, stochastic=False, random_labels=True)


def test_single_sample_equals_torch_cross_entropy():
    out = _random_output(s=1)
    terms = CrossEntropy()(out)
    assert set(terms) == {"loss", "ce"}
    expected = F.cross_entropy(out.logits[0], out.y)
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert torch.equal(terms["loss"], terms["ce"])


def test_many_samples_equal_mean_of_per_sample_cross_entropies():
    out = _random_output(s=5)
    ce = float(CrossEntropy()(out)["loss"])
    per_sample = [float(F.cross_entropy(out.logits[s], out.y)) for s in range(5)]
    assert ce == pytest.approx(sum(per_sample) / 5, rel=1e-6)
    # not the CE of the averaged logits nor of the first sample
    averaged = float(F.cross_entropy(out.logits.mean(0), out.y))
    assert abs(ce - averaged) > 1e-2 and abs(ce - per_sample[0]) > 1e-2


def test_no_stochastic_requirement_and_no_weights():
    assert not CrossEntropy.requires_stochastic and tuple(CrossEntropy.weights) == ()
    assert list(CrossEntropy().parameters()) == []
