"""Per-sample reduction of token-sequence outputs ``(batch, tokens, features)``, for InfoMetrics.

Flattening a sequence layer gives ``tokens * features`` coordinates per sample (16 tokens of
32 features: 512), where every estimate sits at log n; the information plane of a
transformer is read off one vector per sample (Voita et al. 2019, "The bottom-up evolution
of representations in the transformer"). ``token_reduction``:

- ``"mean"``: the mean over tokens, weighted by the batch's attention mask when it carries
  one (a mapping batch with key ``attention_mask``, shape ``(batch, tokens)``, 1 = a real
  token) and the mask matches the layer's tokens; padding otherwise counts as tokens.
  A nested-tensor output (``nn.TransformerEncoder``'s fast path) is averaged over each
  sample's own tokens.
- ``"cls"``: the first token (BERT's ``[CLS]``).
- ``"last"``: the last real token by the attention mask (else the last token): what a causal
  model's sequence classifier reads (GPT-2's ``score`` logits).
- ``"flatten"``: every coordinate (the behaviour for all other shapes).
- ``"auto"`` (default): ``"mean"`` in a model with attention modules (``nn.MultiheadAttention``
  or a class whose name contains ``Attention``), else ``"flatten"``: in a 1-d CNN the second
  dimension is channels, not tokens.

Outputs of ``nn.TransformerEncoderLayer``/``DecoderLayer`` with ``batch_first=False`` are
``(tokens, batch, features)`` and are transposed first. Outputs of 1-d convolution, pooling
and normalisation modules (``CHANNELS_FIRST``: ``(batch, channels, length)``) are always
flattened. The reductions are deterministic
functions of T, so by data processing they bound the layer's own information from below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

TOKEN_REDUCTIONS = ("auto", "mean", "cls", "last", "flatten")
MASK_KEY = "attention_mask"
TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
CHANNELS_FIRST: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
)


def is_sequence_model(root: nn.Module) -> bool:
    """Whether ``root`` holds attention modules (so its 3-d outputs are token sequences)."""
    return any(
        isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__
        for m in root.modules()
    )


def resolve_token_reduction(method: str, root: nn.Module) -> str:
    """``"auto"`` -> ``"mean"`` or ``"flatten"`` for ``root``; other methods unchanged."""
    if method != "auto":
        return method
    return "mean" if is_sequence_model(root) else "flatten"


def attention_mask(batch: Any, batch_size: int) -> torch.Tensor | None:
    """The batch's ``attention_mask`` as bool ``(batch, tokens)``, or None if it has none."""
    if not isinstance(batch, Mapping):
        return None
    mask = batch.get(MASK_KEY)
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] != batch_size:
        return None
    return mask.detach() != 0


def batch_first(module: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """``output`` with the batch first: transposes a ``batch_first=False`` transformer layer's."""
    if isinstance(module, TRANSFORMER_LAYERS) and not module.self_attn.batch_first:
        if not output.is_nested and output.dim() == 3:
            return output.transpose(0, 1)
    return output


def unnest(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A nested-tensor output as padded ``(batch, tokens, features)`` with the bool mask of
    each sample's real tokens; any other tensor unchanged, with None."""
    if not output.is_nested:
        return output, None
    lengths = torch.tensor([t.shape[0] for t in output.unbind()], device=output.device)
    padded = output.to_padded_tensor(0.0)
    return padded, torch.arange(padded.shape[1], device=padded.device)[None, :] < lengths[:, None]


def reduce_tokens(
    rows: torch.Tensor, method: str, mask: torch.Tensor | None
) -> tuple[torch.Tensor, str]:
    """``rows`` ``(m, tokens, features)`` -> ``(m, features)`` (``(m, tokens * features)``
    for ``"flatten"``), and how it was reduced, in words.

    ``mask``: bool ``(m, tokens)`` of the real tokens (the attention mask), or None.
    """
    if method == "cls":
        return rows[:, 0], "the first token"
    if method == "last":
        if mask is None or mask.shape != rows.shape[:2]:
            return rows[:, -1], "the last token"
        positions = torch.arange(rows.shape[1], device=rows.device).expand_as(mask)
        last = torch.where(mask, positions, 0).amax(dim=1)
        return rows[torch.arange(rows.shape[0], device=rows.device), last], (
            "the last real token (mask)"
        )
    if method == "flatten":
        return rows.reshape(rows.shape[0], -1), "flattened"
    if mask is None or mask.shape != rows.shape[:2]:
        return rows.mean(dim=1), "mean over all tokens"
    weights = mask.to(rows.dtype).unsqueeze(-1)
    total = (rows * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0), "mean over the real tokens (mask)"
