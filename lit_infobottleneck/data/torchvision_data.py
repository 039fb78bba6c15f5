"""MNIST, Fashion-MNIST and CIFAR-10 in the on-disk layout of ``torchvision.datasets``.

Files: with ``download=True``, ``TorchvisionDataModule.prepare_data`` (run once per node
by Lightning) lets torchvision's ``MNIST`` / ``FashionMNIST`` / ``CIFAR10`` download and verify
them into ``root``. Reading is done here, from that same layout:

- MNIST: ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``;
- Fashion-MNIST: the same names under ``<root>/FashionMNIST/raw/``;
- CIFAR-10: ``<root>/cifar-10-batches-py/data_batch_1`` ... ``data_batch_5`` and
  ``test_batch`` (the folder inside ``cifar-10-python.tar.gz``).

Only the files of the splits in use are needed and IDX files may stay gzipped (torchvision's
own classes need every file of both splits, unpacked, even to read the test set). Missing
files raise a ``FileNotFoundError`` that lists the exact paths.

Transform: ``ToTensor`` (``uint8 / 255``, channels first) then per-channel normalisation with
the mean and std of the official training images (``DATASETS``). Splits: the official
training images, permuted with ``seed``, give ``val_size`` validation images and the rest
train; test is the official test set. ``split_test_set=True`` uses the official TEST images
only (10,000), permuted with ``seed``: ``test_size`` test, ``val_size`` validation (defaults
1,000 each) and the rest (8,000) train; a real task that needs only the two test files (e.g.
the MNIST test set in ``../shared/data/MNIST/raw/`` for offline tests and benchmarks).
``split_indices`` holds the indices of each split in the official set it comes from.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lit_infobottleneck._checks import check_choice, check_int
from lit_infobottleneck.data._base import SplitDataModule

OFFICIAL_TEST_SIZE = 10_000


@dataclass(frozen=True)
class DatasetInfo:
    """What the module needs to know about one torchvision data set."""

    torchvision_class: str
    folder: str
    input_shape: tuple[int, int, int]
    train_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


#: Supported data sets; mean and std are those of the official training images (pixel / 255).
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("MNIST", "MNIST", (1, 28, 28), 60_000, (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetInfo(
        "FashionMNIST", "FashionMNIST", (1, 28, 28), 60_000, (0.2860,), (0.3530,)
    ),
    "cifar10": DatasetInfo(
        "CIFAR10",
        "cifar-10-batches-py",
        (3, 32, 32),
        50_000,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
}


class NormalizedImages(Dataset):
    """uint8 images ``(N, C, H, W)`` and labels ``(N,)`` served as ``ToTensor`` + ``Normalize``.

    Item i is ``((images[i] / 255 - mean) / std`` float32 ``(C, H, W)``, ``label`` int64).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        self.images, self.labels = images, labels.to(torch.int64)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index].to(torch.float32).div_(255.0)
        return (x - self.mean) / self.std, self.labels[index]


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an unsigned-byte IDX file (MNIST format; ``.gz`` or not) as a uint8 tensor."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"cannot read {str(path)!r} ({err}); download it again.") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] == 0:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file (MNIST format).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    values = np.frombuffer(data, dtype=np.uint8, offset=min(header, len(data)))
    if values.size != int(np.prod(shape)):
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: the header announces shape {shape} "
            f"({int(np.prod(shape))} values) but the file holds {values.size}; download it again."
        )
    return torch.from_numpy(values.copy()).view(*shape)


class TorchvisionDataModule(SplitDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10: ``x`` float32 ``(B, C, H, W)``, ``y`` int64 ``(B,)``.

    Args:
        dataset: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: directory holding (or receiving) the torchvision layout described above.
        download: let torchvision download the files in ``prepare_data`` (needs a network).
        batch_size: samples per batch.
        val_size: validation images taken from the training images (default 5,000; 1,000
            with ``split_test_set``).
        seed: seeds the split and the training shuffle.
        num_workers: data-loader worker processes.
        split_test_set: build train / val / test from the 10,000 official test images only.
        test_size: test images with ``split_test_set`` (default 1,000); otherwise the test set
            is the official one and ``test_size`` must stay ``None``.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        root: str | Path = "data",
        download: bool = False,
        batch_size: int = 128,
        val_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        split_test_set: bool = False,
        test_size: int | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_choice(dataset, "dataset", DATASETS)
        info = DATASETS[dataset]
        if split_test_set:
            val_size = 1000 if val_size is None else val_size
            test_size = 1000 if test_size is None else test_size
            check_int(val_size, "val_size", 1)
            check_int(test_size, "test_size", 1)
            source_size = OFFICIAL_TEST_SIZE
        else:
            if test_size is not None:
                raise ValueError(
                    "`test_size` applies only with `split_test_set=True`; without it the test "
                    "set is the official one: drop `test_size` or set `split_test_set=True`."
                )
            val_size = 5000 if val_size is None else val_size
            check_int(val_size, "val_size", 1)
            source_size = info.train_size
        held_out = val_size + (test_size or 0)
        if held_out >= source_size:
            raise ValueError(
                f"`val_size` {val_size}"
                + (f" + `test_size` {test_size}" if split_test_set else "")
                + f" leaves no training images out of the {source_size} available; "
                "choose smaller sizes."
            )
        self.save_hyperparameters()
        self._plain_hparams()
        self.dataset, self.info = dataset, info
        self.root, self.download = Path(root).expanduser(), bool(download)
        self.val_size, self.test_size = int(val_size), test_size
        self.split_test_set = bool(split_test_set)
        self.num_classes = 10
        self.input_shape = info.input_shape

    def _splits_needed(self) -> tuple[bool, ...]:
        """The official splits read, as torchvision's ``train`` flag values."""
        return (False,) if self.split_test_set else (True, False)

    def prepare_data(self) -> None:
        """Download the files with torchvision when ``download=True`` (once per node)."""
        if not self.download:
            return
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, self.info.torchvision_class)
        for train in self._splits_needed():
            try:
                dataset_class(str(self.root), train=train, download=True)
            except (OSError, RuntimeError) as err:
                raise FileNotFoundError(
                    f"could not download {self.dataset} to {str(self.root)!r} ({err}); "
                    f"without a network, {self._offline_instructions()}."
                ) from err

    def _offline_instructions(self) -> str:
        if self.dataset == "cifar10":
            return (
                f"extract cifar-10-python.tar.gz into {str(self.root.absolute())!r} (it unpacks to "
                f"{self.info.folder}/data_batch_1 ... data_batch_5, test_batch)"
            )
        raw = (self.root / self.info.folder / "raw").absolute()
        return f"put the files in {str(raw)!r} (gzipped or not; the layout torchvision uses)"

    def _files(self, train: bool) -> list[Path]:
        """The files of one official split; for IDX files the first existing variant."""
        if self.dataset == "cifar10":
            names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
            return [self.root / self.info.folder / name for name in names]
        raw = self.root / self.info.folder / "raw"
        prefix = "train" if train else "t10k"
        paths = []
        for kind in ("images-idx3", "labels-idx1"):
            plain = raw / f"{prefix}-{kind}-ubyte"
            paths.append(plain if plain.is_file() else plain.with_name(plain.name + ".gz"))
        return paths

    def _check_files(self) -> None:
        needed = [path for train in self._splits_needed() for path in self._files(train)]
        missing = [path for path in needed if not path.is_file()]
        if not missing:
            return
        if self.download:
            self.prepare_data()
            return
        listing = ", ".join(str(path.absolute()) for path in missing)
        message = (
            f"{self.dataset} files not found: {listing}. Either {self._offline_instructions()}, "
            "or pass `download=True` with a network."
        )
        if not self.split_test_set and all(path.is_file() for path in self._files(False)):
            message += (
                " Only the test files are present: `split_test_set=True` builds train / val /"
                " test from them."
            )
        raise FileNotFoundError(message)

    def _read(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One official split: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``."""
        files = self._files(train)
        if self.dataset == "cifar10":
            images, labels = [], []
            for path in files:
                with path.open("rb") as handle:
                    batch = pickle.load(handle, encoding="latin1")
                images.append(np.asarray(batch["data"], dtype=np.uint8))
                labels.extend(batch["labels"])
            image_tensor = torch.from_numpy(np.concatenate(images)).view(-1, *self.input_shape)
            return image_tensor, torch.tensor(labels, dtype=torch.int64)
        idx_images, idx_labels = read_idx(files[0]), read_idx(files[1])
        if (
            idx_images.shape[0] != idx_labels.shape[0]
            or tuple(idx_images.shape[1:]) != self.input_shape[1:]
        ):
            raise ValueError(
                f"{files[0]} holds images of shape {tuple(idx_images.shape)} and {files[1]} "
                f"{idx_labels.shape[0]} labels; expected (N, 28, 28) and N labels. Download again."
            )
        return idx_images.unsqueeze(1), idx_labels.to(torch.int64)

    def _build(self) -> tuple[Dataset, Dataset, Dataset, dict[str, torch.Tensor]]:
        self._check_files()
        test_images, test_labels = self._read(False)
        if self.split_test_set:
            assert self.test_size is not None, "__init__ sets it (default 1,000)"
            images, labels = test_images, test_labels
            n_test = int(self.test_size)
        else:
            images, labels = self._read(True)
            n_test = 0
        n_held = n_test + self.val_size
        if images.shape[0] <= n_held:
            raise ValueError(
                f"{self.dataset} has {images.shape[0]} images to split but `val_size` + "
                f"`test_size` hold out {n_held}; choose smaller sizes."
            )
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(self.seed))
        indices = {"train": order[n_held:], "val": order[n_test:n_held], "test": order[:n_test]}
        if not self.split_test_set:
            indices["test"] = torch.arange(test_images.shape[0])
        indices = {name: index.sort().values for name, index in indices.items()}
        sources = {"train": (images, labels), "val": (images, labels)}
        sources["test"] = (test_images, test_labels)
        train_set, val_set, test_set = (
            NormalizedImages(
                sources[name][0][indices[name]],
                sources[name][1][indices[name]],
                self.info.mean,
                self.info.std,
            )
            for name in ("train", "val", "test")
        )
        return train_set, val_set, test_set, indices
