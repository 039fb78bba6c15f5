"""The ``lit-ib`` command line: every config runs, outputs, checkpoints, DDP, plots, errors.

Short runs go through :func:`lit_infobottleneck.cli.run_cli` in this process; what the user
sees (exit codes, stderr, TensorBoard files, DDP) is checked on real ``python -m
lit_infobottleneck`` subprocesses started in a temporary directory, so ``runs/`` lands there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_infobottleneck.cli import DEBUG_HINT, main, run_cli
from lit_infobottleneck.module import InfoBottleneckClassifier

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
#: The two MNIST test files (``t10k-*``), for offline runs with ``split_test_set``.
SHARED_DATA = REPO.parent / "shared" / "data"
HAS_MNIST = (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").is_file()

SHORT = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
MNIST_OFFLINE = [
    f"--data.init_args.root={SHARED_DATA}",
    "--data.init_args.download=false",
    "--data.init_args.split_test_set=true",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a small, possibly shared machine: one intra-op thread, no contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class BrokenStepClassifier(InfoBottleneckClassifier):
    """A model with a bug in ``training_step``: ``--model tests.test_cli.BrokenStepClassifier``."""

    def training_step(self, batch, batch_idx):
        raise TypeError("unsupported operand in training_step (a bug, not a config error)")


def lit_ib(
    *args: str, cwd: Path, timeout: float = 120, import_tests: bool = False
) -> subprocess.CompletedProcess:
    """Run ``python -m lit_infobottleneck ARGS`` in ``cwd``; output captured as text.
    ``import_tests``: the ``tests`` package is importable (for class paths of test models)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop("LIT_IB_DEBUG", None)
    if import_tests:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "lit_infobottleneck", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fit_in_process(config: Path | str, tmp_path: Path, *extra: str):
    """A short ``fit`` of ``config`` through ``run_cli``, logging below ``tmp_path``."""
    save_dir = f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}"
    cli = run_cli(["fit", "--config", str(config), *SHORT, save_dir, *extra])
    assert cli.trainer.state.status == TrainerStatus.FINISHED
    return cli


def print_config(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The YAML that ``--print_config`` writes to stdout."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def data_kind(config: Path) -> str:
    """How a config can be run offline: ``local``, ``mnist`` or ``cifar10``."""
    data = yaml.safe_load(config.read_text())["data"]
    if data["class_path"].endswith(("DigitsDataModule", "TishbyDataModule")):
        return "local"
    if data["class_path"].endswith("TorchvisionDataModule"):
        return data["init_args"]["dataset"]
    raise AssertionError(f"{config.name}: no offline test for data {data['class_path']}")


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, no traceback, and one ``error:`` line naming ``fragments`` and ending with
    the LIT_IB_DEBUG hint; returns it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lit-ib: error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    assert errors[0].endswith(DEBUG_HINT)
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """``lit-ib fit --config configs/default.yaml`` as shipped (the README's first command)
    in a fresh dir, run once for every test of this module that reads its outputs; returns
    the finished process and its run directory. Its limit (280 s) stays below the
    per-test timeout (300 s), which counts this setup in the first test that uses it."""
    cwd = tmp_path_factory.mktemp("default_run")
    config = str(REPO / "configs" / "default.yaml")
    result = lit_ib("fit", "--config", config, cwd=cwd, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = cwd / "runs" / "default" / "version_0"
    assert run_dir.is_dir(), sorted(str(p) for p in cwd.rglob("*"))
    return result, run_dir


@pytest.fixture(scope="module")
def default_run(main_job: tuple[subprocess.CompletedProcess, Path]) -> Path:
    """The main job's run directory."""
    return main_job[1]


# ---------------------------------------------------------------------- every config


def test_configs_exist():
    names = {path.stem for path in CONFIGS}
    expected = {
        "default",
        "tishby_tanh",
        "tishby_relu",
        "mnist_vib",
        "cifar10_cnn",
        "digits_ce",
        "digits_vib",
        "digits_info_objective",
        "digits_nonlinear_ib",
        "digits_ceb",
        "digits_hsic",
        "digits_vib_beta_schedule",
    }
    assert expected <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_config_runs_one_short_epoch(config: Path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    kind = data_kind(config)
    if kind == "cifar10":  # no files offline: parsing only (the failing fit is tested below)
        printed = yaml.safe_load(print_config(capsys, "fit", "--config", str(config)))
        assert printed["data"]["init_args"]["dataset"] == "cifar10"
        return
    extra = []
    if kind == "mnist":
        if not HAS_MNIST:
            pytest.skip(f"MNIST test files not found in {SHARED_DATA}")
        extra = MNIST_OFFLINE
    cli = fit_in_process(config, tmp_path, *extra)
    metrics = cli.trainer.callback_metrics
    assert any(key.startswith("info/") for key in metrics), sorted(metrics)
    assert torch.isfinite(metrics["val/loss"])
    if "beta_schedule" in config.stem:
        assert "schedule/beta" in metrics
    log_dir = Path(cli.trainer.log_dir)
    assert log_dir.is_relative_to(tmp_path)
    assert (log_dir / "config.yaml").is_file()
    assert (log_dir / "info_metrics.json").is_file()
    assert (log_dir / "checkpoints" / "last.ckpt").is_file()


def test_linked_input_shape_reaches_the_model(tmp_path, monkeypatch):
    """``data.input_shape`` and ``num_classes`` are linked: [1, 28, 28] images, 10 classes."""
    if not HAS_MNIST:
        pytest.skip(f"MNIST test files not found in {SHARED_DATA}")
    monkeypatch.chdir(tmp_path)
    cli = fit_in_process(REPO / "configs" / "mnist_vib.yaml", tmp_path, *MNIST_OFFLINE)
    assert cli.model.input_shape == (1, 28, 28)
    assert cli.model.num_classes == 10
    assert cli.model.bottleneck.eval_num_samples == 12


def test_console_script_is_main():
    scripts = importlib.metadata.entry_points(group="console_scripts", name="lit-ib")
    assert [script.value for script in scripts] == ["lit_infobottleneck.cli:main"]


# ---------------------------------------------------------------------- outputs


def test_fit_writes_tensorboard_info_scalars(default_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(default_run.glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(default_run))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for estimator in ("kde", "noisy"):
        for quantity in ("I_XT", "I_TY"):
            for layer in ("encoder.layers.1", "encoder.layers.3", "representation"):
                assert f"info/{estimator}/{quantity}/{layer}" in tags, tags
    value = accumulator.Scalars("info/kde/I_TY/prediction")[-1].value
    assert 0 <= value <= 10  # bits; H(Y) of 10 classes is log2(10) = 3.32
    history = json.loads((default_run / "info_metrics.json").read_text())
    assert history["records"]
    assert (default_run / "config.yaml").is_file()
    assert (default_run / "checkpoints" / "last.ckpt").is_file()


def test_plot_command_writes_pngs(default_run: Path, tmp_path):
    result = lit_ib("plot", str(default_run), "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    names = {path.name for path in pngs}
    for estimator in ("kde", "noisy"):
        assert {f"info_plane_{estimator}.png", f"info_curves_{estimator}.png"} <= names
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in pngs)
    assert sorted(result.stdout.split()) == sorted(str(path) for path in pngs)


def test_plot_command_error_is_one_line(tmp_path):
    result = lit_ib("plot", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("lit-ib plot: error: no info_metrics.json")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.rstrip().endswith(DEBUG_HINT)


@pytest.mark.parametrize("stage", ["validate", "test"])
def test_validate_and_test_from_last_checkpoint(stage, default_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = default_run / "checkpoints" / "last.ckpt"
    # the saved config of the run (as the CLI docstring shows) and the original config
    for config in (default_run / "config.yaml", REPO / "configs" / "default.yaml"):
        cli = run_cli(
            [
                stage,
                "--config",
                str(config),
                "--ckpt_path",
                str(checkpoint),
                f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
                "--trainer.enable_progress_bar=false",
            ]
        )
        prefix = "val" if stage == "validate" else "test"
        metrics = cli.trainer.callback_metrics
        assert 0.5 < float(metrics[f"{prefix}/acc"]) <= 1.0  # one epoch of digits: > 80 %
        assert cli.trainer.ckpt_path == str(checkpoint)


# ---------------------------------------------------------------------- config round trip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_print_config_is_a_fixed_point(config: Path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    printed = print_config(capsys, "fit", "--config", str(config))
    (tmp_path / "printed.yaml").write_text(printed)
    again = print_config(capsys, "fit", "--config", str(tmp_path / "printed.yaml"))
    assert yaml.safe_load(again) == yaml.safe_load(printed)


def test_printed_config_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "digits_vib_beta_schedule.yaml"
    printed = tmp_path / "printed.yaml"
    printed.write_text(print_config(capsys, "fit", "--config", str(config)))
    cli = fit_in_process(printed, tmp_path)
    assert "schedule/beta" in cli.trainer.callback_metrics
    assert any(key.startswith("info/kde/") for key in cli.trainer.callback_metrics)


# ---------------------------------------------------------------------- repeated runs


@pytest.mark.parametrize(
    "logging",
    [["--trainer.logger.init_args.version=0"], ["--trainer.logger=false"]],
    ids=["same-version", "no-logger"],
)
def test_repeated_runs_in_the_same_dir(logging, tmp_path, monkeypatch):
    """A second run writing the same ``config.yaml`` does not stop on the existing file."""
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "default.yaml"
    log_dirs = [Path(fit_in_process(config, tmp_path, *logging).trainer.log_dir) for _ in "ab"]
    assert log_dirs[0] == log_dirs[1]
    assert (log_dirs[0] / "config.yaml").is_file()


# ---------------------------------------------------------------------- DDP


@pytest.mark.slow
@pytest.mark.timeout(360)  # above the run's own limit (300 s), which fails more clearly
def test_fit_ddp_spawn_two_cpu_processes(tmp_path):
    result = lit_ib(
        "fit",
        "--config",
        str(REPO / "configs" / "default.yaml"),
        "--trainer.strategy",
        "ddp_spawn",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "default" / "version_0"
    history = json.loads((run_dir / "info_metrics.json").read_text())
    assert {record["epoch"] for record in history["records"]} == {0}
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------- one-line errors


def test_typo_in_a_config_key_is_a_usage_error(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainer:\n  max_epochz: 1\n")
    default = REPO / "configs" / "default.yaml"
    result = lit_ib("fit", "--config", str(default), "--config", str(typo), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "max_epochz" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("config", ["mnist_vib", "cifar10_cnn"])
def test_missing_offline_data_is_one_line(config, tmp_path):
    result = lit_ib(
        "fit",
        "--config",
        str(REPO / "configs" / f"{config}.yaml"),
        f"--data.init_args.root={tmp_path / 'no_data'}",
        "--data.init_args.download=false",
        cwd=tmp_path,
    )
    line = assert_one_line_error(result, "FileNotFoundError", "files not found")
    assert str(tmp_path / "no_data") in line
    assert "download=True" in line


def test_unknown_estimator_is_one_line(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    info_metrics = config["trainer"]["callbacks"][0]
    assert info_metrics["class_path"].endswith("InfoMetrics")
    info_metrics["init_args"]["estimators"] = [{"name": "binnning", "bins": 30}]
    path = tmp_path / "bad_estimator.yaml"
    path.write_text(yaml.safe_dump(config))
    result = lit_ib("fit", "--config", str(path), cwd=tmp_path)
    line = assert_one_line_error(result, "binnning", "available estimators")
    assert "binning" in line.split("available estimators", 1)[1]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (  # raised in a constructor: jsonargparse wraps it in a multi-line ValueError
            "--model.init_args.bottleneck.init_args.in_features=100",
            "ValueError: `bottleneck.in_features` is 100 but `encoder.out_features` is 256",
        ),
        (
            "--model.init_args.encoder.init_args.activation=relux",
            "ValueError: unknown `activation` 'relux'; choose one of: relu, tanh",
        ),
    ],
    ids=["wiring", "activation"],
)
def test_constructor_errors_are_one_line(override, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "default.yaml"), override])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [errors[0]]
    assert errors[0].startswith(f"lit-ib: error: {expected}")
    assert errors[0].endswith(DEBUG_HINT)


def test_debug_switch_shows_the_traceback_of_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIT_IB_DEBUG", "1")
    override = "--model.init_args.encoder.init_args.activation=relux"
    with pytest.raises(ValueError, match="relux"):
        main(["fit", "--config", str(REPO / "configs" / "default.yaml"), override])


def test_missing_checkpoint_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)
    missing = tmp_path / "no.ckpt"
    args = ["--config", str(REPO / "configs" / "default.yaml"), "--ckpt_path", str(missing)]
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]]
    assert err[0].startswith(f"lit-ib: error: FileNotFoundError: `ckpt_path` {str(missing)!r}")
    assert err[0].endswith(DEBUG_HINT)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- bugs show tracebacks


def test_bug_in_training_step_is_not_a_user_error(tmp_path, monkeypatch, capsys):
    """A TypeError raised while training is a bug: it propagates (Python prints the
    traceback), it is not turned into a one-line "user error" with exit code 2."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)
    monkeypatch.setattr(
        InfoBottleneckClassifier, "training_step", BrokenStepClassifier.training_step
    )
    args = ["fit", "--config", str(REPO / "configs" / "default.yaml"), *SHORT]
    with pytest.raises(TypeError, match="unsupported operand in training_step"):
        main(args)
    assert "lit-ib: error" not in capsys.readouterr().err


def test_misconfiguration_while_training_is_one_line(tmp_path, monkeypatch, capsys):
    """A MisconfigurationException is a message for the user wherever it is raised."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)

    def misconfigured(self, batch, batch_idx):
        raise MisconfigurationException("`batch_to_xy` must return (x, y)")

    monkeypatch.setattr(InfoBottleneckClassifier, "training_step", misconfigured)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs" / "default.yaml"), *SHORT])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"lit-ib: error: MisconfigurationException: `batch_to_xy` must return (x, y) {DEBUG_HINT}"
    )


def test_bug_in_training_step_prints_its_traceback(tmp_path):
    result = lit_ib(
        "fit",
        "--config",
        str(REPO / "configs" / "default.yaml"),
        "--model",
        "tests.test_cli.BrokenStepClassifier",
        *SHORT,
        cwd=tmp_path,
        import_tests=True,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback (most recent call last)" in result.stderr
    assert "in training_step" in result.stderr
    last = result.stderr.rstrip().splitlines()[-1]
    assert last == "TypeError: unsupported operand in training_step (a bug, not a config error)"
    assert "lit-ib: error" not in result.stderr


def test_data_error_keeps_its_own_message(tmp_path, monkeypatch, capsys):
    """A ``ValueError`` raised ``from`` a library error is reported, not its cause."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LIT_IB_DEBUG", raising=False)
    not_mat = tmp_path / "var_u.mat"
    not_mat.write_text("not a MAT file")
    args = ["fit", "--config", str(REPO / "configs" / "tishby_tanh.yaml"), *SHORT]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"--data.init_args.mat_path={not_mat}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"lit-ib: error: ValueError: `mat_path` {str(not_mat)!r} is not a")


def _logger_config(save_dir: Path, version=None):
    from jsonargparse import Namespace

    init_args = Namespace(save_dir=str(save_dir), name="run", version=version)
    logger = Namespace(
        class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=init_args
    )
    return Namespace(logger=logger)


def test_ckpt_path_last_continues_the_newest_version_with_a_checkpoint(tmp_path):
    from lit_infobottleneck.cli import continue_last_version

    assert continue_last_version(_logger_config(tmp_path)) is None  # nothing to resume yet
    for version, has_ckpt in ((0, True), (2, True), (3, False)):
        directory = tmp_path / "run" / f"version_{version}" / "checkpoints"
        directory.mkdir(parents=True)
        if has_ckpt:
            (directory / "last.ckpt").write_bytes(b"")
    config = _logger_config(tmp_path)
    assert continue_last_version(config) == 2  # version_3 has no checkpoint to resume
    assert config.logger.init_args.version == 2
    explicit = _logger_config(tmp_path, version=0)
    assert continue_last_version(explicit) is None  # an explicit version is the user's choice
    assert explicit.logger.init_args.version == 0
    (tmp_path / "run" / "version_2" / "checkpoints" / "last.ckpt").unlink()
    (tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt").unlink()
    assert continue_last_version(_logger_config(tmp_path)) == 3  # no checkpoint anywhere


@pytest.mark.slow
def test_the_main_job_draws_a_plane_that_moves(main_job):
    """``lit-ib fit --config configs/default.yaml`` as shipped (the README's first command):
    for every estimator, at the last epoch at least 3 of the 4 layers below 95 % of H(X),
    every hidden layer's I(X;T) moving by at least 2 % of H(X) over the run, and no layer
    flagged saturated_xt at the end; the run ends by saying where its results are."""
    result, run = main_job
    assert (
        f"Results: {Path('runs/default/version_0')}" in result.stdout or str(run) in result.stdout
    )
    assert "lit-ib plot" in result.stdout and "tensorboard --logdir" in result.stdout
    assert (
        "estimates flagged at epoch 39" in result.stdout or "no flags at epoch 39" in result.stdout
    )
    history = json.loads((run / "info_metrics.json").read_text())
    h_x, records = history["h_x"], history["records"]
    hidden = ["encoder.layers.1", "encoder.layers.3", "representation"]
    for estimator in history["estimators"]:
        mine = [r for r in records if r["estimator"] == estimator]
        last = [r for r in mine if r["epoch"] == 39]
        assert len(last) == 4
        assert sum(r["I_XT"] < 0.95 * h_x for r in last) >= 3, last
        assert not any("saturated_xt" in r["flags"] for r in last), last
        for layer in hidden:
            curve = [r["I_XT"] for r in mine if r["layer"] == layer]
            assert max(curve) - min(curve) >= 0.02 * h_x, (estimator, layer, curve)
