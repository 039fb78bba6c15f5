import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_infobottleneck.callbacks.beta_schedule import BetaSchedule

BATCHES_PER_EPOCH = 3


class TinyObjective(nn.Module):
    weights = ("beta", "gamma")

    def __init__(self) -> None:
        super().__init__()
        self.beta = 0.5
        self.gamma = 0.5
        self.num_samples = 3  # a number that is not a schedulable weight


class TinyModule(L.LightningModule):
    """Linear regression whose loss depends on ``objective.beta``; records what each step saw."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)
        self.objective = TinyObjective()
        self.seen: list[tuple[int, int, float]] = []
        self.val_seen: list[tuple[int, float]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append((self.current_epoch, self.global_step, self.objective.beta))
        return nn.functional.mse_loss(self.linear(x), y) * (1.0 + self.objective.beta)

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.val_seen.append((self.current_epoch, self.objective.beta))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def _loader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(4 * BATCHES_PER_EPOCH, 2, generator=gen)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()


def _fit(callbacks, max_epochs, tmp_path=None, ckpt_path=None, model=None, **kwargs):
    model = TinyModule() if model is None else model
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="logs") if tmp_path is not None else False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        log_every_n_steps=1,
        callbacks=callbacks,
        **kwargs,
    )
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer


def _logged(trainer: L.Trainer, name: str) -> list[tuple[int, int, float]]:
    """(epoch, step, value) rows of one metric from the CSVLogger's metrics.csv."""
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get(name)]
    return [(int(r["epoch"]), int(r["step"]), float(r[name])) for r in rows]


# --- the schedule as a function -------------------------------------------------------------


def test_value_function():
    lin = BetaSchedule(schedule="linear", start=0.0, end=1.0, warmup=4)
    assert [lin.value(t) for t in range(7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    down = BetaSchedule(schedule="linear", start=1.0, end=0.0, warmup=2)
    assert [down.value(t) for t in range(4)] == [1.0, 0.5, 0.0, 0.0]
    exp = BetaSchedule(schedule="exponential", start=1e-4, end=1e-2, warmup=4)
    expected = [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2, 1e-2]
    assert [exp.value(t) for t in range(6)] == pytest.approx(expected, rel=1e-12)
    const = BetaSchedule(schedule="constant", start=5.0, end=0.1, warmup=3)
    assert [const.value(t) for t in range(5)] == [0.1] * 5
    no_warmup = BetaSchedule(schedule="linear", start=0.0, end=0.3, warmup=0)
    assert [no_warmup.value(t) for t in range(3)] == [0.3] * 3


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schedule": "cosine"}, "schedule"),
        ({"interval": "batch"}, "interval"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 2.5}, "warmup"),
        ({"start": -0.1}, "start"),
        ({"end": -1.0}, "end"),
        ({"end": float("nan")}, "end"),
        ({"end": float("inf")}, "end"),
        ({"schedule": "exponential", "start": 0.0, "end": 1.0}, "start"),
        ({"schedule": "exponential", "start": 1.0, "end": 0.0}, "end"),
        ({"weight": "not a name"}, "weight"),
    ],
)
def test_invalid_parameters(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        BetaSchedule(**kwargs)


# --- real training runs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        ("linear", 0.0, 0.3, [0.0, 0.1, 0.2, 0.3, 0.3]),
        ("exponential", 1e-4, 1e-1, [1e-4, 1e-3, 1e-2, 1e-1, 1e-1]),
        ("constant", 0.0, 0.3, [0.3] * 5),
    ],
)
def test_per_epoch_values_and_logged_metric(tmp_path, schedule, start, end, expected):
    cb = BetaSchedule(schedule=schedule, start=start, end=end, warmup=3)
    model, trainer = _fit([cb], max_epochs=5, tmp_path=tmp_path)

    per_epoch: dict[int, set[float]] = {}
    for epoch, _, beta in model.seen:
        per_epoch.setdefault(epoch, set()).add(beta)
    assert sorted(per_epoch) == list(range(5))
    for epoch, values in per_epoch.items():
        assert len(values) == 1, f"epoch {epoch} saw several values {values}"
        assert values.pop() == pytest.approx(expected[epoch], rel=1e-12)
    # validation at the end of epoch e uses the value of epoch e
    assert [v for _, v in model.val_seen[-5:]] == pytest.approx(expected, rel=1e-12)
    assert isinstance(model.objective.beta, float)
    assert model.objective.beta == pytest.approx(expected[-1], rel=1e-12)
    assert model.objective.gamma == 0.5  # other weights untouched

    logged = _logged(trainer, "schedule/beta")
    assert [e for e, _, _ in logged] == list(range(5))
    assert [v for _, _, v in logged] == pytest.approx(expected, rel=1e-6)


def test_per_step_values_and_logged_metric(tmp_path):
    cb = BetaSchedule(schedule="linear", start=0.0, end=1.0, warmup=4, interval="step")
    model, trainer = _fit([cb], max_epochs=3, tmp_path=tmp_path)

    expected = [min(t / 4, 1.0) for t in range(3 * BATCHES_PER_EPOCH)]
    assert [step for _, step, _ in model.seen] == list(range(3 * BATCHES_PER_EPOCH))
    assert [beta for _, _, beta in model.seen] == pytest.approx(expected, rel=1e-12)

    logged = _logged(trainer, "schedule/beta")
    assert [s for _, s, _ in logged] == list(range(3 * BATCHES_PER_EPOCH))
    assert [v for _, _, v in logged] == pytest.approx(expected, rel=1e-6)


def test_two_schedules_on_different_weights():
    beta = BetaSchedule(weight="beta", schedule="constant", end=0.25)
    gamma = BetaSchedule(weight="gamma", schedule="linear", start=0.0, end=1.0, warmup=1)
    assert beta.state_key != gamma.state_key
    model, _ = _fit([beta, gamma], max_epochs=2)
    assert (model.objective.beta, model.objective.gamma) == (0.25, 1.0)


def test_weight_on_the_module_itself():
    model = TinyModule()
    model.tau = 1.0
    _fit([BetaSchedule(weight="tau", schedule="constant", end=0.5, target="")], 1, model=model)
    assert model.tau == 0.5


# --- checkpoints and resume -----------------------------------------------------------------


def _checkpoint(tmp_path: Path, pattern: str) -> str:
    (path,) = tmp_path.glob(pattern)
    return str(path)


resume_warning = pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")


@resume_warning
def test_resume_continues_exactly_per_epoch(tmp_path):
    def schedule():
        return BetaSchedule(schedule="exponential", start=1e-3, end=1.0, warmup=3)

    full, _ = _fit([schedule()], max_epochs=5)

    ckpt_dir = tmp_path / "ckpt"
    saver = ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1, every_n_epochs=1)
    first, _ = _fit([schedule(), saver], max_epochs=2)
    ckpt = _checkpoint(ckpt_dir, "epoch=1-*.ckpt")

    checkpoint = torch.load(ckpt, weights_only=True)  # plain Python state only
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("BetaSchedule")]
    assert state["last_value"] == pytest.approx(1e-2, rel=1e-12)
    assert state["schedule"] == "exponential" and state["warmup"] == 3

    resumed_cb = schedule()
    resumed, _ = _fit([resumed_cb], max_epochs=5, ckpt_path=ckpt)
    assert first.seen + resumed.seen == full.seen
    assert resumed.objective.beta == full.objective.beta == 1.0
    # validation after the restored epochs matches the uninterrupted run too
    assert resumed.val_seen[-3:] == full.val_seen[-3:]
    assert resumed_cb.last_value == 1.0


@resume_warning
def test_resume_continues_exactly_per_step(tmp_path):
    def schedule():
        return BetaSchedule(schedule="linear", start=0.0, end=0.8, warmup=8, interval="step")

    full, _ = _fit([schedule()], max_epochs=4)
    ckpt_dir = tmp_path / "ckpt"
    saver = ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1, every_n_epochs=1)
    first, _ = _fit([schedule(), saver], max_epochs=2)
    resumed, _ = _fit([schedule()], max_epochs=4, ckpt_path=_checkpoint(ckpt_dir, "epoch=1-*.ckpt"))

    assert first.seen + resumed.seen == full.seen
    assert [s for _, s, _ in resumed.seen] == list(range(6, 12))


def test_load_state_dict_round_trip_and_changed_parameters():
    saved = BetaSchedule(schedule="linear", start=0.0, end=1.0, warmup=4)
    saved.last_value = 0.5
    state = saved.state_dict()
    assert all(isinstance(v, (str, int, float)) for v in state.values())

    same = BetaSchedule(schedule="linear", start=0.0, end=1.0, warmup=4)
    same.load_state_dict(state)
    assert same.last_value == 0.5

    other = BetaSchedule(schedule="linear", start=0.0, end=2.0, warmup=4)
    with pytest.warns(UserWarning, match=r"end: 1\.0 -> 2\.0"):
        other.load_state_dict(state)
    assert other.end == 2.0 and other.last_value == 0.5


# --- misconfiguration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"weight": "lambda1"}, ["lambda1", "objective", "beta, gamma"]),
        ({"weight": "num_samples"}, ["num_samples", "objective", "beta, gamma"]),
        ({"target": "objective.missing"}, ["objective.missing", "missing", "beta"]),
        ({"target": "head"}, ["head", "beta"]),
    ],
)
def test_missing_target_or_weight_raises(kwargs, names):
    with pytest.raises(MisconfigurationException) as info:
        _fit([BetaSchedule(**kwargs)], max_epochs=1)
    for name in names:
        assert name in str(info.value)


def test_missing_weight_without_declared_weights():
    model = TinyModule()
    model.objective = nn.Identity()  # declares no `weights`
    with pytest.raises(MisconfigurationException, match="none declared"):
        _fit([BetaSchedule()], max_epochs=1, model=model)


def test_exact_value_is_a_python_float():
    cb = BetaSchedule(schedule="linear", start=1, end=3, warmup=2)
    assert all(isinstance(cb.value(t), float) for t in range(4))
    assert math.isclose(cb.value(1), 2.0)
