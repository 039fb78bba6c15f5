"""The example scripts run end to end with their quick settings (30-50 s for all three)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.slow


def run_example(name: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``examples/<name>`` in a fresh interpreter; fail with its output on a non-zero exit."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a test's pytest timeout is above its runs' limits (300 s each)
    )
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result


def read_history(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.timeout(360)
def test_add_to_your_project(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run_example("add_to_your_project.py", "--max_epochs", "2", "--out", out, cwd=tmp_path)
    histories = list(out.rglob("info_metrics.csv"))
    assert len(histories) == 1
    rows = read_history(histories[0])
    assert {r["layer"] for r in rows} == {"net.1", "net.3"}
    assert {r["estimator"] for r in rows} == {"binning", "kde"}
    assert {int(r["epoch"]) for r in rows} == {0, 1}
    assert (histories[0].parent / "info_metrics.json").is_file()
    assert list(out.rglob("events.out.tfevents.*"))


@pytest.mark.timeout(660)  # two runs
def test_reproduce_saxe2018_quick(tmp_path: Path) -> None:
    out, log_dir = tmp_path / "figures", tmp_path / "runs"
    run_example(
        "reproduce_saxe2018.py", "--quick", "--out", out, "--log_dir", log_dir, cwd=tmp_path
    )
    for name in ("saxe2018_tanh_vs_relu.png", "saxe2018_geometry.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 10_000, name
    for activation in ("tanh", "relu"):
        histories = sorted((log_dir / activation).rglob("info_metrics.csv"))
        assert [h.parent.name for h in histories] == ["seed_0", "seed_1"], activation
        for history in histories:
            rows = read_history(history)
            assert len({r["layer"] for r in rows}) == 6
            assert {r["estimator"] for r in rows} == {"binning", "kde"}
            assert len({r["epoch"] for r in rows}) > 1
            assert len(read_history(history.parent / "info_geometry.csv")) == 6 * len(
                {r["epoch"] for r in rows}
            )
    # the figures are redrawn from the saved results without training
    (out / "saxe2018_geometry.png").unlink()
    run_example(
        "reproduce_saxe2018.py", "--replot", "--out", out, "--log_dir", log_dir, cwd=tmp_path
    )
    assert (out / "saxe2018_geometry.png").is_file()


@pytest.mark.timeout(360)
def test_beta_sweep_quick(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = run_example("beta_sweep.py", "--quick", "--out", out, cwd=tmp_path)
    assert (out / "beta_sweep.png").is_file()
    table = [line for line in result.stdout.splitlines() if line.startswith("| 0.")]
    assert len(table) == 3  # one row per beta of the quick sweep


@pytest.mark.timeout(360)
def test_resnet_information_plane_quick(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"the offline MNIST test set is not in {root}")
    out = tmp_path / "resnet.png"
    result = run_example(
        "resnet_information_plane.py",
        "--quick",
        "--root",
        root,
        "--out",
        out,
        "--logdir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert out.stat().st_size > 50_000  # two planes and two geometry panels
    stages = ["net.layer1", "net.layer2", "net.layer3", "net.layer4", "net.avgpool", "net.fc"]
    assert f"layers: {stages}" in result.stdout
    rows = read_history(next((tmp_path / "runs").rglob("info_metrics.csv")))
    assert [r["layer"] for r in rows if r["estimator"] == "kde"] == stages
