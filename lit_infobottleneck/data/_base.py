"""The shared skeleton of the data modules: argument checks, idempotent setup, data loaders.

A subclass sets ``num_classes`` and ``input_shape`` in ``__init__`` (LightningCLI links them
into the model before ``setup``) and implements ``SplitDataModule._build``, which returns
the three datasets and the indices that made them.
"""

from __future__ import annotations

from pathlib import PurePath

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from lit_infobottleneck._checks import check_int


class SplitDataModule(LightningDataModule):
    """Train / val / test datasets built once, served by seeded data loaders.

    ``train_dataloader`` shuffles with a ``torch.Generator`` seeded by ``seed`` (plus the
    current epoch when a trainer is attached, for ``reload_dataloaders_every_n_epochs``): the
    same batch order in every run with that seed; val and test loaders keep the dataset order.
    ``split_indices`` maps ``"train"``, ``"val"``, ``"test"`` to the int64 indices of each
    split in its source (documented by each subclass), available after ``setup``.
    """

    num_classes: int
    input_shape: tuple[int, ...]

    def __init__(self, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.num_workers = check_int(num_workers, "num_workers", 0)
        self.seed = check_int(seed, "seed", 0)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.split_indices: dict[str, torch.Tensor] = {}

    def _plain_hparams(self) -> None:
        """Store paths in ``hparams`` as strings: checkpoints then load with weights_only=True."""
        for key, value in self.hparams.items():
            if isinstance(value, PurePath):
                self.hparams[key] = str(value)

    def _build(self) -> tuple[Dataset, Dataset, Dataset, dict[str, torch.Tensor]]:
        """Return ``(train, val, test, split_indices)``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Build all three splits (once: later calls, for any stage, do nothing)."""
        if self.train_set is None:
            self.train_set, self.val_set, self.test_set, self.split_indices = self._build()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        generator = None
        if shuffle:  # seed + epoch: a loader rebuilt each epoch does not repeat its order
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            generator = torch.Generator().manual_seed(self.seed + epoch)
        return DataLoader(
            getattr(self, f"{split}_set"),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
