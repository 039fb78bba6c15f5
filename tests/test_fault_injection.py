"""A training job SIGKILLed mid-epoch and mid-estimation resumes with ``--ckpt_path last``.

Three real ``python -m lit_infobottleneck fit`` processes in a row on digits:

1. killed (SIGKILL) at training batch 3 of epoch 2: ``last.ckpt`` holds epochs 0-1;
2. ``--ckpt_path last``, killed inside InfoMetrics' estimation of epoch 3 (the first
   layer estimated, nothing logged): ``last.ckpt`` holds epochs 0-2;
3. ``--ckpt_path last`` again, runs to the end (5 epochs).

After each stage the information history in ``info_metrics.csv``/``.json``, the checkpoint
and the TensorBoard scalars (read back as TensorBoard shows them) must hold every measured
epoch exactly once: no gap, no duplicate, and the numbers of the epochs measured before a
kill unchanged. The plane images, drawn on a background thread, may lack the epochs whose
drawing a SIGKILL cut off, never hold one twice, and are complete for the run that ends.
All three processes log into the same ``version_0`` directory.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing import event_accumulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["encoder.layers.1", "representation"]
ESTIMATORS = ["binning", "kde"]
MAX_EPOCHS = 5


def config(kill: dict | None = None) -> dict:
    """A small VIB run on digits with InfoMetrics, checkpoints and TensorBoard."""
    callbacks = [
        {
            "class_path": "lit_infobottleneck.callbacks.InfoMetrics",
            "init_args": {
                "layers": LAYERS,
                "estimators": [{"name": "binning", "bins": 30}, {"name": "kde", "noise_var": 0.1}],
                "max_samples": 300,
                "plot": True,
            },
        },
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"save_last": True},
        },
    ]
    if kill is not None:
        callbacks.append({"class_path": "tests.fault_injection.SigkillAt", "init_args": kill})
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": MAX_EPOCHS,
            "accelerator": "cpu",
            "limit_train_batches": 6,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs", "name": "faults"},
            },
            "callbacks": callbacks,
        },
        "model": {
            "class_path": "lit_infobottleneck.module.InfoBottleneckClassifier",
            "init_args": {
                "encoder": {
                    "class_path": "lit_infobottleneck.nets.MLPEncoder",
                    "init_args": {"in_features": 64, "hidden_sizes": [32], "activation": "tanh"},
                },
                "bottleneck": {
                    "class_path": "lit_infobottleneck.nets.GaussianBottleneck",
                    "init_args": {"in_features": 32, "latent_dim": 8},
                },
                "head": {
                    "class_path": "lit_infobottleneck.nets.ClassifierHead",
                    "init_args": {"in_features": 8, "num_classes": 10},
                },
                "objective": {
                    "class_path": "lit_infobottleneck.objectives.VIB",
                    "init_args": {"beta": 0.001},
                },
            },
        },
        "data": {
            "class_path": "lit_infobottleneck.data.DigitsDataModule",
            "init_args": {"batch_size": 64},
        },
    }


def lit_ib_fit(cwd: Path, name: str, cfg: dict, *extra: str) -> subprocess.CompletedProcess:
    path = cwd / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # for tests.fault_injection
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "lit_infobottleneck", "fit", "--config", str(path), *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_csv(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "info_metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def key(record: dict) -> tuple[int, str, str]:
    return int(record["epoch"]), record["estimator"], record["layer"]


def assert_each_epoch_once(records: list[dict], epochs: range) -> None:
    keys = [key(r) for r in records]
    assert len(keys) == len(set(keys)), f"duplicate rows: {sorted(keys)}"
    assert set(keys) == {(e, s, n) for e in epochs for s in ESTIMATORS for n in LAYERS}


def checkpoint_history(log_dir: Path) -> tuple[int, list[dict]]:
    ckpt = torch.load(log_dir / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("InfoMetrics")]
    return ckpt["epoch"], state["history"]


def tensorboard_curves(log_dir: Path) -> dict[str, list[tuple[int, float | None]]]:
    """(epoch, value) of each info scalar and (epoch, None) of each figure as TensorBoard
    shows them: all event files of the run, where TensorBoard hides the events that a
    restarted run logs again at an earlier step."""
    accumulator = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    accumulator.Reload()
    epoch_at_step = {e.step: round(e.value) for e in accumulator.Scalars("epoch")}
    tags = accumulator.Tags()
    out = {
        tag: [(epoch_at_step[e.step], e.value) for e in accumulator.Scalars(tag)]
        for tag in tags["scalars"]
        if tag.startswith("info/") and ("/I_XT/" in tag or "/I_TY/" in tag)
    }
    out.update({tag: [(e.step, None) for e in accumulator.Images(tag)] for tag in tags["images"]})
    return out


@pytest.mark.timeout(960)  # three runs of lit_ib_fit, each with its own limit of 300 s
def test_sigkill_mid_epoch_and_mid_estimation_resume_without_gaps_or_duplicates(tmp_path):
    log_dir = tmp_path / "runs" / "faults" / "version_0"

    # 1. SIGKILL at training batch 3 of epoch 2
    killed = lit_ib_fit(tmp_path, "kill_mid_epoch", config({"epoch": 2, "batch": 3}))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert_each_epoch_once(read_csv(log_dir), range(2))
    epoch, history = checkpoint_history(log_dir)
    assert epoch == 1
    assert_each_epoch_once(history, range(2))
    first = {key(r): r for r in read_csv(log_dir)}

    # 2. resume; SIGKILL inside the estimation of epoch 3
    kill = {"epoch": 3, "where": "estimation"}
    killed = lit_ib_fit(tmp_path, "kill_mid_estimation", config(kill), "--ckpt_path", "last")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "Restored all states from the checkpoint" in killed.stderr
    assert_each_epoch_once(read_csv(log_dir), range(3))
    epoch, history = checkpoint_history(log_dir)
    assert epoch == 2
    assert_each_epoch_once(history, range(3))
    second = {key(r): r for r in read_csv(log_dir)}
    for k, row in first.items():
        assert second[k] == row  # epochs measured before a kill keep their numbers

    # 3. resume to the end
    done = lit_ib_fit(tmp_path, "base", config(), "--ckpt_path", "last")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Restored all states from the checkpoint" in done.stderr
    assert not (tmp_path / "runs" / "faults" / "version_1").exists()  # same directory

    epochs = range(MAX_EPOCHS)
    rows = read_csv(log_dir)
    assert_each_epoch_once(rows, epochs)
    document = json.loads((log_dir / "info_metrics.json").read_text())
    assert_each_epoch_once(document["records"], epochs)
    final = {key(r): r for r in rows}
    for k, row in second.items():
        assert final[k] == row
    epoch, history = checkpoint_history(log_dir)
    assert epoch == MAX_EPOCHS - 1
    assert_each_epoch_once(history, epochs)
    for record in history:
        for quantity in ("I_XT", "I_TY"):
            assert float(final[key(record)][quantity]) == pytest.approx(record[quantity], rel=1e-12)

    curves = tensorboard_curves(log_dir)
    expected_tags = {
        f"info/{s}/{q}/{n}" for s in ESTIMATORS for q in ("I_XT", "I_TY") for n in LAYERS
    } | {f"info_plane/{s}" for s in ESTIMATORS}
    assert set(curves) == expected_tags
    for tag, seen in curves.items():
        steps = [e for e, _ in seen]
        if tag.startswith("info_plane/"):
            # Planes are drawn on the figure thread: a SIGKILL loses those still pending
            # (at most the epochs measured in the run it killed, 0-1 and 2 here); no plane
            # is written twice, and the planes of the finished run are all there (each
            # plane shows every epoch measured so far).
            assert steps == sorted(set(steps)), tag
            assert set(epochs) - set(steps) <= {0, 1, 2}, (tag, steps)
            assert {3, 4} <= set(steps), (tag, steps)
        else:
            assert steps == list(epochs), tag
    for record in history:  # TensorBoard shows the checkpointed numbers (in float32)
        for quantity in ("I_XT", "I_TY"):
            seen = dict(curves[f"info/{record['estimator']}/{quantity}/{record['layer']}"])
            assert seen[record["epoch"]] == pytest.approx(record[quantity], rel=1e-6)
