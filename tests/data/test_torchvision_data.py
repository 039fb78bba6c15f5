import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torchvision import transforms

from lit_infobottleneck.data import DATASETS, TorchvisionDataModule, read_idx

# The repository sits beside ../shared (e.g. /work/main and /work/shared).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MNIST_TEST_FILES = [
    SHARED / "MNIST" / "raw" / name
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
]
needs_mnist = pytest.mark.skipif(
    not all(path.is_file() for path in MNIST_TEST_FILES),
    reason=f"MNIST test files not present in {SHARED / 'MNIST' / 'raw'} (../shared/data)",
)


@pytest.fixture(scope="module")
def mnist() -> TorchvisionDataModule:
    dm = TorchvisionDataModule("mnist", root=SHARED, split_test_set=True, batch_size=256)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    ("name", "shape"),
    [("mnist", (1, 28, 28)), ("fashion_mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))],
)
def test_attributes_before_setup(name, shape, tmp_path):
    dm = TorchvisionDataModule(name, root=tmp_path)
    assert dm.input_shape == shape
    assert dm.num_classes == 10


@needs_mnist
def test_real_mnist_from_the_test_set(mnist):
    assert [len(mnist.split_indices[k]) for k in ("train", "val", "test")] == [8000, 1000, 1000]
    everything = torch.cat(list(mnist.split_indices.values()))
    assert torch.equal(everything.sort().values, torch.arange(10_000))
    for loader in (mnist.train_dataloader(), mnist.val_dataloader(), mnist.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (256,) and y.dtype == torch.int64
    x, y = next(iter(mnist.train_dataloader()))
    assert set(y.tolist()) == set(range(10))
    assert abs(float(x.mean())) < 0.1 and 0.9 < float(x.std()) < 1.1  # normalised
    assert float(x.min()) == pytest.approx(-0.1307 / 0.3081, abs=1e-5)


@needs_mnist
def test_same_data_and_transform_as_torchvision(mnist, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in MNIST_TEST_FILES:
        with gzip.open(path, "rb") as src, (raw / path.stem).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).touch()  # torchvision insists on the train files even for train=False
    norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    reference = torchvision.datasets.MNIST(tmp_path, train=False, transform=norm)
    assert torch.equal(read_idx(raw / "t10k-images-idx3-ubyte"), reference.data)
    assert torch.equal(read_idx(MNIST_TEST_FILES[1]).long(), reference.targets)
    for position in (0, 500):
        index = int(mnist.split_indices["test"][position])
        x, y = mnist.test_set[position]
        x_ref, y_ref = reference[index]
        assert torch.allclose(x, x_ref, atol=1e-6) and int(y) == y_ref


@needs_mnist
def test_seeds_reproducible_and_distinct():
    a, b = (TorchvisionDataModule(root=SHARED, split_test_set=True, seed=s) for s in (0, 1))
    a.setup(), b.setup()
    again = TorchvisionDataModule(root=SHARED, split_test_set=True, seed=0)
    again.setup()
    assert torch.equal(a.split_indices["train"], again.split_indices["train"])
    assert not torch.equal(a.split_indices["train"], b.split_indices["train"])
    batches = [next(iter(dm.train_dataloader()))[1] for dm in (a, again)]
    assert torch.equal(batches[0], batches[1])


@needs_mnist
def test_official_split_needs_the_train_files():
    dm = TorchvisionDataModule(root=SHARED)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz") as info:
        dm.setup()
    assert "split_test_set=True" in str(info.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_missing_idx_files_are_named(name, tmp_path):
    dm = TorchvisionDataModule(name, root=tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup()
    message = str(info.value)
    raw = tmp_path / DATASETS[name].folder / "raw"
    for file in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert str(raw / f"{file}.gz") in message
    assert "download=True" in message


def test_missing_cifar_files_are_named(tmp_path):
    dm = TorchvisionDataModule("cifar10", root=tmp_path, split_test_set=True)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup()
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in message
    assert "cifar-10-python.tar.gz" in message and "download=True" in message


def test_cifar_batches_are_read_channels_first(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(100, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(100)]
    with (folder / "test_batch").open("wb") as handle:
        pickle.dump({"data": data, "labels": labels}, handle)
    dm = TorchvisionDataModule(
        "cifar10", root=tmp_path, split_test_set=True, val_size=10, test_size=10, batch_size=5
    )
    dm.setup()
    assert len(dm.train_set) == 80
    x, y = dm.train_set[0]
    index = int(dm.split_indices["train"][0])
    image = torch.from_numpy(data[index]).view(3, 32, 32).float() / 255
    mean = torch.tensor(DATASETS["cifar10"].mean).view(3, 1, 1)
    std = torch.tensor(DATASETS["cifar10"].std).view(3, 1, 1)
    assert x.shape == (3, 32, 32) and torch.allclose(x, (image - mean) / std)
    assert int(y) == labels[index]


def test_failed_download_says_where_to_put_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    dm = TorchvisionDataModule("mnist", root=tmp_path, download=True)
    with pytest.raises(FileNotFoundError, match="could not download mnist") as info:
        dm.prepare_data()
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


def test_truncated_idx_file(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big") * 3 + b"\x00" * 7)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    broken = tmp_path / "bad-idx3-ubyte.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="download it again"):
        read_idx(broken)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10"):
        TorchvisionDataModule("svhn")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"test_size": 100}, "test_size"),
        ({"val_size": 60_000}, "val_size"),
        ({"split_test_set": True, "val_size": 5000, "test_size": 5000}, "val_size"),
        ({"val_size": 0}, "val_size"),
    ],
)
def test_bad_sizes(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TorchvisionDataModule(**kwargs)
