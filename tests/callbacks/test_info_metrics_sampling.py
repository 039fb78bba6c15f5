"""Which samples InfoMetrics measures, and when: the same seeded subset every epoch,
drawn from what ``limit_val_batches`` leaves, and every ``trainer.validate()`` measured."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.callbacks._sampling import subset_mask
from tests.callbacks.test_info_metrics import UserModel, _data, _loaders, _trainer


class IndexedModel(L.LightningModule):
    """Inputs are (dataset index, 8 features); the network sees the features only."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.body(x[:, 1:]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class MeasuredIds(InfoMetrics):
    """Remembers which dataset indices each measured epoch estimated from."""

    def __init__(self, **kwargs):
        super().__init__(layers=["body.1"], estimators=["binning"], **kwargs)
        self.ids: dict[int, list[int]] = {}

    def _estimate(self, data, names, epoch, step):
        self.ids[epoch] = sorted(int(i) for i in data["x"][:, 0])
        return super()._estimate(data, names, epoch, step)


def _indexed_loaders(n_val: int = 200, shuffle_val: bool = False):
    x, y = _data(n_val + 100)
    x = torch.cat([torch.arange(x.shape[0], dtype=torch.float32)[:, None], x], dim=1)
    train = DataLoader(TensorDataset(x[:100], y[:100]), batch_size=50)
    val_x, val_y = x[100:], y[100:]
    val_x[:, 0] -= 100  # the index within the validation set
    return train, DataLoader(TensorDataset(val_x, val_y), batch_size=20, shuffle=shuffle_val)


def test_the_same_seeded_samples_are_measured_every_epoch(tmp_path):
    callback = MeasuredIds(max_samples=37, seed=5)
    _trainer(tmp_path, callbacks=[callback], max_epochs=3).fit(IndexedModel(), *_indexed_loaders())
    expected = torch.nonzero(subset_mask(200, 37, 5)).flatten().tolist()
    assert callback.ids == {0: expected, 1: expected, 2: expected}


def test_limit_val_batches_leaves_max_samples_of_the_batches_it_runs(tmp_path):
    # 4 of the 10 validation batches run (80 samples): the subset of 60 is drawn from them,
    # instead of from all 200, of which only about 40 % would ever be seen.
    callback = MeasuredIds(max_samples=60)
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=2, limit_val_batches=4)
    trainer.fit(IndexedModel(), *_indexed_loaders())
    assert [len(ids) for ids in callback.ids.values()] == [60, 60]
    assert max(callback.ids[0]) < 80 and callback.ids[0] == callback.ids[1]


def test_a_shuffled_validation_loader_is_warned_about(tmp_path):
    callback = MeasuredIds(max_samples=37)
    with pytest.warns(UserWarning, match="validation loader shuffles.*shuffle=False"):
        _trainer(tmp_path, callbacks=[callback], max_epochs=2).fit(
            IndexedModel(), *_indexed_loaders(shuffle_val=True)
        )


@pytest.mark.parametrize(
    "schedule", [{"schedule": "log", "log_points": 3}, {"every_n_epochs": 2}], ids=str
)
def test_validate_after_fit_is_measured_whatever_the_schedule(tmp_path, schedule):
    callback = InfoMetrics(layers=["net.1"], estimators=["binning"], **schedule)
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=5)
    model = UserModel()
    train, val = _loaders()
    trainer.fit(model, train, val)
    fitted = {r["epoch"] for r in callback.history}
    assert 5 not in fitted
    trainer.validate(model, val, verbose=False)
    assert {r["epoch"] for r in callback.history} == fitted | {5}


def test_limit_val_batches_with_a_batch_sampler_loader(tmp_path):
    from torch.utils.data import BatchSampler, SequentialSampler

    train, val = _indexed_loaders()
    sampler = BatchSampler(SequentialSampler(val.dataset), batch_size=20, drop_last=False)
    val = DataLoader(val.dataset, batch_sampler=sampler)  # loader.batch_size is None
    callback = MeasuredIds(max_samples=60)
    trainer = _trainer(tmp_path, callbacks=[callback], max_epochs=1, limit_val_batches=4)
    trainer.fit(IndexedModel(), train, val)
    assert len(callback.ids[0]) == 60 and max(callback.ids[0]) < 80


class Stream(torch.utils.data.IterableDataset):
    """200 (index, features) samples in batches of 20; ``len`` counts the batches."""

    def __init__(self, data):
        self.x, self.y = data

    def __iter__(self):
        for start in range(0, 200, 20):
            yield self.x[start : start + 20], self.y[start : start + 20]

    def __len__(self):
        return 10


def test_an_iterable_dataset_measures_its_first_max_samples(tmp_path):
    train, val = _indexed_loaders()
    stream = DataLoader(Stream(val.dataset.tensors), batch_size=None)
    callback = MeasuredIds(max_samples=60)
    _trainer(tmp_path, callbacks=[callback], max_epochs=1).fit(IndexedModel(), train, stream)
    assert callback.ids[0] == list(range(60))
