"""Width reduction of captured layers, so a very wide layer cannot exhaust memory.

A capture keeps ``max_samples`` rows of every measured layer; a layer of D features costs
``4 * max_samples * D`` bytes (2,000 rows of a 100k-unit layer: 800 MB per layer). Layers
wider than ``max_features`` are reduced, per batch inside the forward hook, to
``max_features`` columns with a fixed, seeded map (the same every epoch and on every rank):

- ``"sketch"`` (default): signed feature hashing, a count sketch (Weinberger et al. 2009,
  "Feature hashing for large scale multitask learning"; Clarkson & Woodruff 2013): unit j
  is added, with a random sign, to output column h(j). A sparse Johnson-Lindenstrauss map:
  squared distances are preserved in expectation, with relative spread about
  sqrt(2 / max_features), so distance-based estimators (KDE, KSG, Renyi, HSIC) see almost
  the same geometry. Cost O(rows * D), memory O(D).
- ``"subset"``: a seeded random subset of ``max_features`` units, values unchanged (for
  binning with a fixed ``value_range``, whose bins assume the units' own range).

A deterministic map cannot create information (data processing): estimates on the reduced
layer measure a function of T, so they bound the layer's own from below.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

METHODS = ("sketch", "subset")


@dataclass(frozen=True)
class Reduction:
    """The seeded map of one layer: ``features`` -> ``kept`` columns."""

    method: str
    features: int
    kept: int
    columns: torch.Tensor  # (features,) int64: output column of each unit ("sketch") or
    #                        (kept,) int64: the units kept ("subset")
    signs: torch.Tensor | None  # (features,) float32 +-1 ("sketch")

    def apply(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` (m, features) float -> (m, kept)."""
        columns = self.columns.to(rows.device)
        if self.method == "subset":
            return rows.index_select(1, columns)
        assert self.signs is not None, "a 'sketch' reduction always has signs"
        out = rows.new_zeros(rows.shape[0], self.kept)
        return out.index_add_(1, columns, rows * self.signs.to(rows.device, rows.dtype))

    def describe(self) -> dict[str, int | str]:
        return {"method": self.method, "features": self.features, "kept": self.kept}


class FeatureReducer:
    """Reduces layers wider than ``max_features`` (``None``: never) with ``method``.

    Maps are built on first use per (layer name, width) from ``seed`` and the layer's name,
    so every rank and every epoch uses the same one; ``applied`` lists them.
    """

    def __init__(self, max_features: int | None, method: str = "sketch", seed: int = 0) -> None:
        if max_features is not None and (
            isinstance(max_features, bool) or not isinstance(max_features, int) or max_features < 1
        ):
            raise ValueError(
                f"`max_features` must be an integer >= 1 or None, got {max_features!r}"
            )
        if method not in METHODS:
            raise ValueError(f"`feature_reduction` must be one of {METHODS}, got {method!r}")
        self.max_features, self.method, self.seed = max_features, method, seed
        self.applied: dict[str, Reduction] = {}

    def __call__(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` (m, D) float -> (m, min(D, max_features))."""
        features = rows.shape[1]
        if self.max_features is None or features <= self.max_features:
            return rows
        reduction = self.applied.get(name)
        if reduction is None or reduction.features != features:
            reduction = self._build(name, features)
            self.applied[name] = reduction
        return reduction.apply(rows)

    def _build(self, name: str, features: int) -> Reduction:
        kept = self.max_features
        assert kept is not None
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(name.encode()))
        if self.method == "subset":
            columns = torch.randperm(features, generator=gen)[:kept].sort().values
            return Reduction("subset", features, kept, columns, None)
        columns = torch.randint(0, kept, (features,), generator=gen)
        signs = torch.randint(0, 2, (features,), generator=gen).float() * 2 - 1
        return Reduction("sketch", features, kept, columns, signs)
