import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from lit_infobottleneck.data import TishbyDataModule, load_var_u, tishby_labels, tishby_patterns
from lit_infobottleneck.estimators import plugin_entropy

# The repository sits beside ../shared (e.g. /work/main and /work/shared).
VAR_U = Path(__file__).resolve().parents[3] / "shared" / "data" / "tishby" / "var_u.mat"
needs_var_u = pytest.mark.skipif(
    not VAR_U.is_file(), reason=f"original Tishby data {VAR_U} not present (../shared/data)"
)


def test_attributes_before_setup():
    dm = TishbyDataModule()
    assert dm.num_classes == 2
    assert dm.input_shape == (12,)


def test_all_patterns_once_in_binary_order():
    x = tishby_patterns()
    assert x.shape == (4096, 12) and x.dtype == torch.uint8
    assert torch.unique(x, dim=0).shape[0] == 4096
    weights = 2 ** torch.arange(11, -1, -1)
    assert torch.equal((x.long() * weights).sum(dim=1), torch.arange(4096))  # column 0 = MSB


def test_label_statistics_and_information():
    y = tishby_labels(tishby_patterns())
    assert y.dtype == torch.int64
    assert int(y.sum()) == 2118  # 51.7 % ones
    h_y_bits = float(plugin_entropy(y)) / math.log(2)
    assert h_y_bits == pytest.approx(0.99916, abs=1e-5)  # = I(X;Y): y is a function of x


def test_labels_invariant_under_antipodal_map():
    # x -> its antipodal image is an icosahedron symmetry: the label must not change
    x = tishby_patterns()
    perm = list(range(12))
    for i, j in ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11)):
        perm[i], perm[j] = j, i
    assert torch.equal(tishby_labels(x[:, perm]), tishby_labels(x))


@needs_var_u
def test_generated_data_equals_original_file():
    f, y = load_var_u(VAR_U)
    assert torch.equal(f, tishby_patterns())  # same rows in the same order
    assert torch.equal(y, tishby_labels(tishby_patterns()))  # every one of the 4,096 labels


@needs_var_u
def test_mat_path_gives_the_same_module_data():
    generated, loaded = TishbyDataModule(seed=1), TishbyDataModule(seed=1, mat_path=str(VAR_U))
    for dm in (generated, loaded):
        dm.setup()
    for name in ("train_set", "val_set", "test_set"):
        pairs = zip(getattr(generated, name).tensors, getattr(loaded, name).tensors, strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)


def test_batches_and_split():
    dm = TishbyDataModule(batch_size=64)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 12) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    train, test = dm.split_indices["train"], dm.split_indices["test"]
    assert len(train) == 3482 and len(test) == 614
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(4096))
    assert torch.equal(dm.split_indices["val"], test)  # val = the test split
    _, y_val = next(iter(dm.val_dataloader()))
    assert torch.equal(y_val, dm.test_set.tensors[1][:64])  # unshuffled


def test_val_split_all_and_train_fraction():
    dm = TishbyDataModule(train_fraction=0.8, val_split="all")
    dm.setup()
    assert len(dm.train_set) == 3277 and len(dm.test_set) == 819
    assert len(dm.val_set) == 4096


def test_seeds_reproducible_and_distinct():
    a, b, c = (TishbyDataModule(seed=s) for s in (5, 5, 6))
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.split_indices["train"], b.split_indices["train"])
    assert not torch.equal(a.split_indices["train"], c.split_indices["train"])
    batches = [next(iter(dm.train_dataloader()))[0] for dm in (a, b)]
    assert torch.equal(batches[0], batches[1])


def test_setup_is_idempotent():
    dm = TishbyDataModule()
    dm.setup("fit")
    first = dm.train_set
    dm.setup("test")
    assert dm.train_set is first


def test_missing_mat_file(tmp_path):
    dm = TishbyDataModule(mat_path=tmp_path / "nope.mat")
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        dm.setup()


def test_malformed_mat_files(tmp_path):
    not_mat = tmp_path / "text.mat"
    not_mat.write_text("hello")
    with pytest.raises(ValueError, match="not a readable MATLAB file"):
        load_var_u(not_mat)
    no_y = tmp_path / "no_y.mat"
    savemat(no_y, {"F": np.zeros((4, 12), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"no variable\(s\) \['y'\]"):
        load_var_u(no_y)
    wrong_shape = tmp_path / "shape.mat"
    savemat(wrong_shape, {"F": np.zeros((4, 10), dtype=np.uint8), "y": np.zeros((1, 4))})
    with pytest.raises(ValueError, match=r"\(n, 12\)"):
        load_var_u(wrong_shape)
    not_binary = tmp_path / "values.mat"
    savemat(not_binary, {"F": np.full((4, 12), 2, dtype=np.uint8), "y": np.zeros((1, 4))})
    with pytest.raises(ValueError, match="only 0 and 1"):
        load_var_u(not_binary)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"train_fraction": 1.0}, "train_fraction"), ({"val_split": "train"}, "val_split")],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TishbyDataModule(**kwargs)
