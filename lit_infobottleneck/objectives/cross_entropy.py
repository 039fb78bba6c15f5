"""Cross-entropy: the baseline objective, no information term."""

from __future__ import annotations

import torch

from lit_infobottleneck.objectives.base import ModelOutput, Objective, cross_entropy


class CrossEntropy(Objective):
    """``loss = ce = E[-log p(y|z)]`` (nats per example), averaged over samples of z."""

    def forward(self, out: ModelOutput) -> dict[str, torch.Tensor]:
        ce = cross_entropy(out.logits, out.y)
        return {"loss": ce, "ce": ce}
