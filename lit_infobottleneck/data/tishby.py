"""The 12-bit binary task of Shwartz-Ziv & Tishby (2017), as used by Saxe et al. (2018).

Data: all 2^12 = 4,096 binary patterns, once each, as rows in binary order (row i is the
binary expansion of i, column 0 the most significant bit): exactly the rows of the original
``var_u.mat``. Inputs are float32 0/1, as Saxe et al. fed them (``input_shape`` ``(12,)``).

Labels (generated in code, ``tishby_labels``): the 12 bits sit on the vertices of an
icosahedron (``EDGES``, its 30 nearest-neighbour edges; ``ANTIPODES``, its 6 pairs of
opposite vertices). With N the number of ones, A the number of edges with both ends on, C the
number of antipodal pairs with both on and B = N(N-1)/2 - A - C the remaining pairs of ones,
the label is 1 iff ``41.2 N + 0.8 A - 8.8 B - 13.6 C - 171.8 > 0``, evaluated exactly in
integers as ``206 N + 4 A - 44 B - 68 C - 859 > 0`` (the same rule times 5). The rule is
invariant under the icosahedron's symmetries (the paper's "spherically symmetric function"
with a threshold) and reproduces all 4,096 labels of ``var_u.mat``: 2,118 ones (51.7 %).
Since y is a function of x, I(X;Y) = H(Y) = 0.99916 bits. ``mat_path=`` loads the original
file instead (``F`` (4096, 12) uint8 and ``y`` (1, 4096) uint8, read with ``scipy.io``).

Split: a seeded random permutation; the first ``round(train_fraction * 4096)`` patterns train,
the rest test (defaults: 3,482 / 614). 85 % is the largest training set of Shwartz-Ziv &
Tishby (2017); the code released with Saxe et al. (2018) (``artemyk/ibsgd``,
``utils.create_IB_data``) trains on a random 80 %: pass ``train_fraction=0.8`` for it.
Validation: ``val_split="test"`` (default) validates on the test split (there is no third
split: the task is noise-free and a separate split would shrink the training set);
``val_split="all"`` validates on all 4,096 patterns, the set on which both papers estimate
the information plane (their I(X;T) and I(T;Y) use every input). ``split_indices`` holds the
row numbers of each split (row i is the pattern i written in binary).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from lit_infobottleneck._checks import check_choice, check_fraction
from lit_infobottleneck.data._base import SplitDataModule

NUM_BITS = 12
NUM_PATTERNS = 2**NUM_BITS

#: Nearest-neighbour edges of the icosahedron whose 12 vertices carry the 12 bits.
EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 3), (0, 5), (0, 10), (0, 11), (1, 2), (1, 3), (1, 4), (1, 11), (2, 3),
    (2, 4), (2, 8), (2, 9), (3, 8), (3, 10), (4, 6), (4, 9), (4, 11), (5, 6), (5, 7),
    (5, 10), (5, 11), (6, 7), (6, 9), (6, 11), (7, 8), (7, 9), (7, 10), (8, 9), (8, 10),
)  # fmt: skip
#: Pairs of opposite vertices of that icosahedron.
ANTIPODES: tuple[tuple[int, int], ...] = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))

VAL_SPLITS = ("test", "all")


def tishby_patterns() -> torch.Tensor:
    """All 4,096 12-bit patterns, uint8 ``(4096, 12)``; row i is i in binary, column 0 the MSB."""
    rows = torch.arange(NUM_PATTERNS).unsqueeze(1)
    shifts = torch.arange(NUM_BITS - 1, -1, -1)
    return ((rows >> shifts) & 1).to(torch.uint8)


def _pairs_on(bits: torch.Tensor, pairs: tuple[tuple[int, int], ...]) -> torch.Tensor:
    i, j = (torch.tensor(side) for side in zip(*pairs, strict=True))
    return (bits[:, i] * bits[:, j]).sum(dim=1)


def tishby_labels(patterns: torch.Tensor) -> torch.Tensor:
    """Labels of 0/1 patterns ``(n, 12)`` by the icosahedron rule above, int64 ``(n,)``."""
    if patterns.dim() != 2 or patterns.shape[1] != NUM_BITS:
        raise ValueError(
            f"`patterns` must have shape (n, {NUM_BITS}), got {tuple(patterns.shape)}."
        )
    bits = patterns.to(torch.int64)
    if bool(((bits != 0) & (bits != 1)).any()):
        raise ValueError("`patterns` must contain only 0 and 1.")
    n_on = bits.sum(dim=1)
    a = _pairs_on(bits, EDGES)
    c = _pairs_on(bits, ANTIPODES)
    b = n_on * (n_on - 1) // 2 - a - c
    return (206 * n_on + 4 * a - 44 * b - 68 * c - 859 > 0).to(torch.int64)


def load_var_u(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the original ``var_u.mat``: patterns uint8 ``(n, 12)`` and labels int64 ``(n,)``.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` if it is not a MAT
    file with a 0/1 matrix ``F`` of 12 columns and 0/1 labels ``y`` with one entry per row.
    """
    from scipy.io import loadmat

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"`mat_path` {str(path)!r} does not exist; pass the path of the original "
            "var_u.mat of Shwartz-Ziv & Tishby (2017), or mat_path=None to generate the data."
        )
    try:
        content = loadmat(path)
    except Exception as err:  # scipy raises several types for non-MAT input
        raise ValueError(
            f"`mat_path` {str(path)!r} is not a readable MATLAB file ({err}); pass var_u.mat."
        ) from err
    missing = [key for key in ("F", "y") if key not in content]
    if missing:
        found = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(
            f"`mat_path` {str(path)!r} has no variable(s) {missing} (found {found}); var_u.mat "
            "holds the patterns in `F` (4096, 12) and the labels in `y` (1, 4096)."
        )
    f, y = np.asarray(content["F"]), np.asarray(content["y"]).reshape(-1)
    if f.ndim != 2 or f.shape[1] != NUM_BITS or y.shape[0] != f.shape[0]:
        raise ValueError(
            f"`mat_path` {str(path)!r}: expected `F` of shape (n, {NUM_BITS}) and `y` with n "
            f"entries, got F {f.shape} and y {np.asarray(content['y']).shape}."
        )
    if not (np.isin(f, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise ValueError(f"`mat_path` {str(path)!r}: `F` and `y` must contain only 0 and 1.")
    return torch.as_tensor(f.astype(np.uint8)), torch.as_tensor(y.astype(np.int64))


class TishbyDataModule(SplitDataModule):
    """The 12-bit task: ``x`` float32 0/1 ``(B, 12)``, ``y`` int64 ``(B,)`` in {0, 1}.

    Args:
        batch_size: samples per batch (Saxe et al.: 256).
        train_fraction: fraction of the 4,096 patterns used for training (the rest test).
        seed: seeds the train/test permutation and the training shuffle.
        mat_path: path of the original ``var_u.mat`` to load instead of generating the data.
        num_workers: data-loader worker processes.
        val_split: ``"test"`` validates on the test split, ``"all"`` on all 4,096 patterns.
    """

    def __init__(
        self,
        batch_size: int = 256,
        train_fraction: float = 0.85,
        seed: int = 0,
        mat_path: str | Path | None = None,
        num_workers: int = 0,
        val_split: str = "test",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_fraction(train_fraction, "train_fraction")
        check_choice(val_split, "val_split", VAL_SPLITS)
        self.save_hyperparameters()
        self._plain_hparams()
        self.train_fraction = float(train_fraction)
        self.mat_path = None if mat_path is None else Path(mat_path)
        self.val_split = val_split
        self.num_classes = 2
        self.input_shape = (NUM_BITS,)

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All patterns uint8 ``(n, 12)`` and labels int64 ``(n,)``: generated or from the file."""
        if self.mat_path is not None:
            return load_var_u(self.mat_path)
        patterns = tishby_patterns()
        return patterns, tishby_labels(patterns)

    def _build(self) -> tuple[Dataset, Dataset, Dataset, dict[str, torch.Tensor]]:
        patterns, labels = self.load()
        n = patterns.shape[0]
        n_train = round(self.train_fraction * n)
        if not 0 < n_train < n:
            raise ValueError(
                f"`train_fraction` {self.train_fraction} leaves an empty split of {n} patterns."
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        train, test = order[:n_train].sort().values, order[n_train:].sort().values
        x = patterns.to(torch.float32)
        val = test if self.val_split == "test" else torch.arange(n)
        indices = {"train": train, "val": val, "test": test}
        train_set, val_set, test_set = (
            TensorDataset(x[indices[name]], labels[indices[name]])
            for name in ("train", "val", "test")
        )
        return train_set, val_set, test_set, indices
