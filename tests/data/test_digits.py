import pytest
import torch
from sklearn.datasets import load_digits

from lit_infobottleneck.data import DigitsDataModule


def _ready(**kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_attributes_before_setup():
    dm = DigitsDataModule()
    assert dm.num_classes == 10
    assert dm.input_shape == (64,)
    assert dm.train_set is None


def test_batches_shapes_and_dtypes():
    dm = _ready(batch_size=32)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (32, 64) and x.dtype == torch.float32
        assert y.shape == (32,) and y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) <= 9


def test_splits_disjoint_covering_and_stratified():
    dm = _ready()
    parts = dm.split_indices
    assert [len(parts[k]) for k in ("train", "val", "test")] == [1257, 270, 270]
    assert len(dm.train_set) == 1257 and len(dm.val_set) == 270 and len(dm.test_set) == 270
    everything = torch.cat([parts["train"], parts["val"], parts["test"]])
    assert torch.equal(everything.sort().values, torch.arange(1797))
    labels = torch.as_tensor(load_digits().target)
    overall = torch.bincount(labels, minlength=10) / 1797
    for name in ("val", "test"):
        share = torch.bincount(labels[parts[name]], minlength=10) / len(parts[name])
        assert torch.allclose(share, overall, atol=0.01)


def test_standardised_with_train_statistics():
    dm = _ready()
    raw = torch.as_tensor(load_digits().data, dtype=torch.float32)
    train_raw = raw[dm.split_indices["train"]]
    x_train = dm.train_set.tensors[0]
    varying = train_raw.std(dim=0) > 0
    assert not bool(varying.all())  # corner pixels are constant: std 1, only centred
    assert torch.allclose(x_train.mean(dim=0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(x_train.std(dim=0, correction=0)[varying], torch.ones(1), atol=1e-5)
    assert torch.equal(dm.feature_std[~varying], torch.ones(int((~varying).sum())))
    # val/test use the TRAIN statistics, not their own
    x_test = dm.test_set.tensors[0]
    expected = (raw[dm.split_indices["test"]] - dm.feature_mean) / dm.feature_std
    assert torch.allclose(x_test, expected)
    assert not torch.allclose(x_test.mean(dim=0), torch.zeros(64), atol=1e-3)


def test_unstandardised_is_unit_interval():
    dm = _ready(standardize=False)
    x = dm.train_set.tensors[0]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert dm.feature_mean is None


def test_seeds_reproducible_and_distinct():
    a, b, c = _ready(seed=3), _ready(seed=3), _ready(seed=4)
    for name in ("train", "val", "test"):
        assert torch.equal(a.split_indices[name], b.split_indices[name])
    assert not torch.equal(a.split_indices["test"], c.split_indices["test"])
    first = [next(iter(dm.train_dataloader()))[1] for dm in (a, b, c)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])


def test_val_and_test_loaders_do_not_shuffle():
    dm = _ready(batch_size=1000)
    y_val = next(iter(dm.val_dataloader()))[1]
    assert torch.equal(y_val, dm.val_set.tensors[1])


def test_setup_is_idempotent():
    dm = _ready()
    train_set = dm.train_set
    dm.setup("validate")
    dm.setup("test")
    assert dm.train_set is train_set


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
    ],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DigitsDataModule(**kwargs)
