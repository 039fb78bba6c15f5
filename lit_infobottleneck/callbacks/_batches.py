"""Inputs and class labels out of a validation batch, for InfoMetrics.

``default_batch_to_xy`` finds ``(x, y)`` in the common batch formats;
``class_labels`` turns the label part into class indices ``(n,)`` int64, converting
the unambiguous cases (integer-valued floats, one-hot rows) and refusing the rest with
the ``batch_to_xy`` to pass instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

#: (inputs, labels) key pairs of mapping batches, in the order tried; the last are Hugging
#: Face's (``input_ids``/``attention_mask``/``labels`` from a tokenizer and collator).
DICT_KEYS = (
    ("x", "y"),
    ("input", "target"),
    ("inputs", "labels"),
    ("input_ids", "labels"),
    ("input_ids", "label"),
    ("pixel_values", "labels"),
    ("pixel_values", "label"),
)


def default_batch_to_xy(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y, ...)`` tuples/lists, or mappings (dicts, Hugging Face ``BatchEncoding``) with
    one of the key pairs ``DICT_KEYS`` (``x``/``y``, ``input_ids``/``labels``, ...)."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
    elif isinstance(batch, Mapping) and any(a in batch and b in batch for a, b in DICT_KEYS):
        a, b = next((a, b) for a, b in DICT_KEYS if a in batch and b in batch)
        x, y = batch[a], batch[b]
    else:
        keys = f" with keys {sorted(map(str, batch))}" if isinstance(batch, Mapping) else ""
        raise MisconfigurationException(
            f"InfoMetrics cannot find inputs and labels in a batch of type "
            f"{type(batch).__name__}{keys}; it reads (x, y, ...) tuples and dicts with x/y, "
            "input/target, inputs/labels or input_ids/labels. Pass "
            "`batch_to_xy=lambda batch: (x, y)` to InfoMetrics."
        )
    for part, value in (("inputs", x), ("labels", y)):
        if not isinstance(value, torch.Tensor):
            raise MisconfigurationException(
                f"InfoMetrics: the batch's {part} are a {type(value).__name__}, not a tensor; "
                "pass `batch_to_xy=lambda batch: (x, y)` returning tensors to InfoMetrics."
            )
    return x, y


def class_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices ``(n,)`` int64 from labels of shape ``(n,)``, ``(n, 1)`` or one-hot
    ``(n, C)``; float labels are accepted when every value is an integer."""
    hint = "pass `batch_to_xy=lambda batch: (x, class_indices)` to InfoMetrics"
    if y.dim() == 2 and y.shape[1] > 1:
        one_hot = ((y == 0) | (y == 1)).all() and (y.sum(dim=1) == 1).all()
        if not bool(one_hot):
            raise MisconfigurationException(
                f"InfoMetrics needs class labels; the batch's labels have shape "
                f"{tuple(y.shape)} but are not one-hot rows (soft labels, multi-label "
                f"targets?); {hint}, e.g. `y.argmax(dim=1)`."
            )
        return y.argmax(dim=1)
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1:
        raise MisconfigurationException(
            f"InfoMetrics needs class labels of shape (batch,); the batch's labels have "
            f"shape {tuple(y.shape)}; {hint}."
        )
    if y.is_floating_point() or y.is_complex():
        integral = torch.isfinite(y).all() and (y == torch.round(y)).all()
        if not bool(integral):
            bad = y[~(torch.isfinite(y) & (y == torch.round(y)))][0].item()
            raise MisconfigurationException(
                f"InfoMetrics needs class labels; the batch's labels are {y.dtype} with "
                f"non-integer values (e.g. {bad}): I(T;Y) of a regression target is not "
                f"estimated here; {hint}."
            )
    return y.long()
