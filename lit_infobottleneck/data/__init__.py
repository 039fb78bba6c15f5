"""LightningDataModules: 8x8 digits (offline default), Tishby's 12-bit task, torchvision sets.

Every module yields ``(x float32, y int64)`` batches and exposes ``num_classes`` and
``input_shape`` right after ``__init__`` (LightningCLI links them into the model).
"""

from lit_infobottleneck.data.digits import DigitsDataModule
from lit_infobottleneck.data.tishby import (
    TishbyDataModule,
    load_var_u,
    tishby_labels,
    tishby_patterns,
)
from lit_infobottleneck.data.torchvision_data import DATASETS, TorchvisionDataModule, read_idx

__all__ = [
    "DATASETS",
    "DigitsDataModule",
    "TishbyDataModule",
    "TorchvisionDataModule",
    "load_var_u",
    "read_idx",
    "tishby_labels",
    "tishby_patterns",
]
