"""scikit-learn's bundled 8x8 handwritten digits: the offline default data set.

1,797 grey-scale images of the digits 0-9 (the UCI "optical recognition of handwritten
digits" test set), shipped inside scikit-learn, so nothing is downloaded. Pixels are
integers 0-16; every image is flattened to 64 features.

- Split: stratified by class (every split keeps the class proportions) and seeded with
  ``sklearn.model_selection.train_test_split``: first ``round(test_fraction * 1797)`` test
  images, then ``round(val_fraction * 1797)`` validation images from the rest; the defaults
  give 1,257 / 270 / 270. ``split_indices`` holds the row numbers of each split in
  ``sklearn.datasets.load_digits()``.
- Scaling: ``standardize=True`` subtracts the per-pixel mean and divides by the per-pixel
  standard deviation (population, ddof = 0, as ``StandardScaler``), both computed on the
  TRAIN split only and applied to all three; pixels constant on the train split (the image
  corners) are only centred (std 1). ``standardize=False`` gives ``pixel / 16`` in [0, 1]
  (for Bernoulli decoders).
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, TensorDataset

from lit_infobottleneck._checks import check_fraction
from lit_infobottleneck.data._base import SplitDataModule

NUM_DIGITS = 1797


class DigitsDataModule(SplitDataModule):
    """scikit-learn's 8x8 digits: ``x`` float32 ``(B, 64)``, ``y`` int64 ``(B,)`` in 0..9.

    Args:
        batch_size: samples per batch.
        val_fraction: fraction of all 1,797 images held out for validation.
        test_fraction: fraction of all 1,797 images held out for testing.
        standardize: standardise pixels with train-split statistics (else ``pixel / 16``).
        seed: seeds the stratified split and the training shuffle.
        num_workers: data-loader worker processes.

    After ``setup``, ``feature_mean`` and ``feature_std`` ``(64,)`` hold the train-split
    statistics used to standardise (``None`` when ``standardize=False``).
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_fraction(val_fraction, "val_fraction")
        check_fraction(test_fraction, "test_fraction")
        n_val, n_test = round(val_fraction * NUM_DIGITS), round(test_fraction * NUM_DIGITS)
        if min(n_val, n_test) < 10 or NUM_DIGITS - n_val - n_test < 10:
            raise ValueError(
                f"`val_fraction` {val_fraction} and `test_fraction` {test_fraction} give "
                f"{NUM_DIGITS - n_val - n_test} / {n_val} / {n_test} train / val / test images; "
                "a stratified split needs at least 10 (one per class) in each: choose fractions "
                "of at least 0.006 that sum to less than 0.99."
            )
        self.save_hyperparameters()
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.standardize = bool(standardize)
        self.num_classes = 10
        self.input_shape = (64,)
        self.feature_mean: torch.Tensor | None = None
        self.feature_std: torch.Tensor | None = None
        self._sizes = (n_val, n_test)

    def _build(self) -> tuple[Dataset, Dataset, Dataset, dict[str, torch.Tensor]]:
        digits = load_digits()
        x = torch.as_tensor(digits.data, dtype=torch.float32)
        y = torch.as_tensor(digits.target, dtype=torch.int64)
        n_val, n_test = self._sizes
        rest, test = train_test_split(
            range(NUM_DIGITS), test_size=n_test, stratify=y.numpy(), random_state=self.seed
        )
        train, val = train_test_split(
            rest, test_size=n_val, stratify=y[rest].numpy(), random_state=self.seed
        )
        indices = {
            name: torch.as_tensor(sorted(part), dtype=torch.int64)
            for name, part in (("train", train), ("val", val), ("test", test))
        }
        if self.standardize:
            train_x = x[indices["train"]]
            self.feature_mean = train_x.mean(dim=0)
            std = train_x.std(dim=0, correction=0)
            self.feature_std = torch.where(std > 0, std, torch.ones_like(std))
            x = (x - self.feature_mean) / self.feature_std
        else:
            x = x / 16.0
        train_set, val_set, test_set = (
            TensorDataset(x[indices[name]], y[indices[name]]) for name in ("train", "val", "test")
        )
        return train_set, val_set, test_set, indices
