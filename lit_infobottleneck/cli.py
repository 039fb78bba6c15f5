"""``lit-ib``: the LightningCLI of lit-infobottleneck.

    lit-ib fit --config configs/default.yaml            # train; curves in TensorBoard
    lit-ib fit --config configs/default.yaml --print_config
    lit-ib test --config runs/.../config.yaml --ckpt_path runs/.../checkpoints/last.ckpt
    lit-ib plot runs/default/version_0                   # re-draw the information plane
    lit-ib plot runs/default/version_0 --animate         # ... and the plane as a GIF
    lit-ib plot runs/tishby_tanh/version_*               # mean of several seeds, with bands

Models and data are chosen by ``class_path`` (short names work: ``--model
InfoBottleneckClassifier``, ``--data DigitsDataModule``); ``data.num_classes`` and
``data.input_shape`` are linked into the model.

Errors of the user's making end the run with one line on stderr and exit code 2, followed by
``(set LIT_IB_DEBUG=1 for the traceback)``: errors found while the configuration is parsed
and its classes are built (unknown keys or values, a constructor's ``ValueError``, a missing
``--ckpt_path`` file), errors of the data module's ``prepare_data``/``setup`` (missing or
unreadable dataset files) and any ``MisconfigurationException``. Any other error raised while
the subcommand runs (in a training or validation step, a hook, an estimate) is a bug, not a
configuration problem: it propagates with its full traceback (exit code 1).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

import lit_infobottleneck.callbacks
import lit_infobottleneck.data
import lit_infobottleneck.nets
import lit_infobottleneck.objectives  # noqa: F401  (registers classes for short names)
from lit_infobottleneck.callbacks._flags import flag_summary
from lit_infobottleneck.module import InfoBottleneckClassifier

log = logging.getLogger("lit_infobottleneck.cli")

#: Exceptions that mean "the user's configuration is wrong" when raised while the CLI parses
#: the configuration and builds its classes: one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, MisconfigurationException, KeyError, TypeError)
#: Exceptions that mean "the data is missing or unreadable" when raised by a data module's
#: ``prepare_data`` or ``setup`` while the subcommand runs.
DATA_ERRORS = (ValueError, OSError)
#: The Trainer methods that run the subcommands: an error raised inside them is a run error.
SUBCOMMANDS = ("fit", "validate", "test", "predict")
DATA_HOOKS = ("prepare_data", "setup")
DEBUG_HINT = "(set LIT_IB_DEBUG=1 for the traceback)"
#: The top of ``lit-ib --help`` (LightningCLI's parser knows only its own subcommands).
DESCRIPTION = (
    "Train and evaluate with the Lightning subcommands below (fit, validate, test, predict). "
    "Draw the information plane and curves of runs as PNG figures with: lit-ib plot RUN_DIR "
    "[RUN_DIR ...] (options: lit-ib plot --help)."
)
#: ``ckpt_path`` values that Lightning resolves itself (not file paths).
SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")


class InfoBottleneckCLI(LightningCLI):
    """LightningCLI with the data's class count and input shape linked into the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for field in ("num_classes", "input_shape"):
            parser.link_arguments(
                f"data.{field}", f"model.init_args.{field}", apply_on="instantiate"
            )

    def before_instantiate_classes(self) -> None:
        ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
        check_ckpt_path(ckpt_path)
        if self.subcommand == "fit" and ckpt_path == "last":
            continue_last_version(self.config.fit.trainer)


def check_ckpt_path(ckpt_path: str | os.PathLike | None) -> None:
    """Refuse a local ``--ckpt_path`` that does not exist before anything is built (Lightning
    would find out inside ``fit``/``test``, after the data was prepared)."""
    if ckpt_path is None:
        return
    ckpt_path = str(ckpt_path)
    if ckpt_path.split(":", 1)[0] in SPECIAL_CKPT_PATHS or "://" in ckpt_path:
        return
    if not Path(ckpt_path).exists():  # a directory is a sharded (FSDP, DeepSpeed) checkpoint
        raise FileNotFoundError(
            f"`ckpt_path` {ckpt_path!r} does not exist; pass the path of a checkpoint such as "
            "runs/<name>/version_<N>/checkpoints/last.ckpt, or one of 'last', 'best'."
        )


#: Loggers whose ``version`` names a directory ``save_dir/name/version_N``.
VERSIONED_LOGGERS = ("TensorBoardLogger", "CSVLogger")


def continue_last_version(trainer_config: Any) -> int | None:
    """Point the first logger at the run being resumed by ``fit --ckpt_path last``.

    Without this, a new process gives the logger a fresh ``version_N+1`` directory and
    ModelCheckpoint (whose default ``dirpath`` is inside it) finds no ``last.ckpt``: the run
    silently starts from scratch. When the first logger is a TensorBoard/CSV logger without
    an explicit ``version``, it is set to the newest ``version_N`` below ``save_dir/name``
    that holds a ``checkpoints/last*.ckpt`` (else the newest ``version_N``), so the
    checkpoint is found and TensorBoard events, ``config.yaml`` and the InfoMetrics history
    continue in the same directory. Returns the version chosen, or None (nothing to resume).
    """
    logger = trainer_config.get("logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    class_path = getattr(logger, "class_path", None) if logger is not None else None
    if not class_path or class_path.rsplit(".", 1)[-1] not in VERSIONED_LOGGERS:
        return None
    init_args = logger.init_args
    if init_args.get("version") is not None:
        return None
    root = Path(init_args.get("save_dir") or ".") / str(init_args.get("name") or "")
    versions = {}
    for path in root.glob("version_*"):
        match = re.fullmatch(r"version_(\d+)", path.name)
        if match and path.is_dir():
            versions[int(match.group(1))] = path
    if not versions:
        return None
    with_checkpoint = [
        v for v, path in versions.items() if any(path.glob("checkpoints/last*.ckpt"))
    ]
    chosen = max(with_checkpoint or versions)
    init_args.version = chosen
    log.info("fit --ckpt_path last: continuing %s", versions[chosen])
    return chosen


def run_cli(args: Sequence[str] | None = None) -> InfoBottleneckCLI:
    """Build and run the CLI (``fit``, ``validate``, ``test``, ``predict``)."""
    return InfoBottleneckCLI(
        model_class=InfoBottleneckClassifier,
        datamodule_class=LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"description": DESCRIPTION},
        args=None if args is None else list(args),
    )


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``lit-ib`` and ``python -m lit_infobottleneck``: exit code 2 with one
    line on stderr for a configuration or data error (see ``is_user_error``); any other
    exception propagates with its traceback. ``LIT_IB_DEBUG=1`` re-raises every error."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "plot":
        from lit_infobottleneck.plot_command import plot_main

        plot_main(argv[1:])
        return
    try:
        cli = run_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv
    except Exception as err:
        if _debug_requested() or not is_user_error(err):
            raise
        cause = _original_error(err)
        message = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        sys.stderr.write(f"lit-ib: error: {type(cause).__name__}: {message} {DEBUG_HINT}\n")
        raise SystemExit(2) from None
    if cli.subcommand == "fit" and cli.trainer.is_global_zero:
        sys.stdout.write(results_summary(cli.trainer))


def results_summary(trainer: Trainer) -> str:
    """Where a fit's results are (log dir, TensorBoard and ``lit-ib plot`` commands) and the
    flags of the last measured epoch of every InfoMetrics history found there."""
    log_dir = Path(trainer.log_dir or trainer.default_root_dir)
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    lines = [f"Results: {log_dir}"]
    if loggers:
        lines.append(f"  tensorboard --logdir {loggers[0].root_dir}")
    for path in sorted(log_dir.rglob("info_metrics.json")):
        relative = path.parent
        lines.append(f"  lit-ib plot {relative}")
        records = json.loads(path.read_text()).get("records", [])
        summary = flag_summary(records)
        if summary:
            lines.append(f"  {summary}")
    return "\n".join(lines) + "\n"


def _debug_requested() -> bool:
    return os.environ.get("LIT_IB_DEBUG", "0") not in ("", "0")


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` reports the user's configuration or data, not a bug: any
    ``MisconfigurationException`` (raised on purpose, with a message for the user), one of
    ``USER_ERRORS`` raised before the Trainer runs the subcommand (parsing, instantiation), or
    one of ``DATA_ERRORS`` raised in a data module's ``prepare_data``/``setup``. Decided from
    the frames of the traceback, so it holds for any model, data module or callback."""
    if isinstance(err, MisconfigurationException):
        return True
    frames = _frames(err)
    if not any(_is_method(frame, Trainer, SUBCOMMANDS) for frame in frames):
        return isinstance(err, USER_ERRORS)
    return isinstance(err, DATA_ERRORS) and any(
        _is_method(frame, LightningDataModule, DATA_HOOKS) for frame in frames
    )


def _frames(err: BaseException) -> list[FrameType]:
    frames, tb = [], err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def _is_method(frame: FrameType, cls: type, names: Sequence[str]) -> bool:
    """Whether ``frame`` runs one of the methods ``names`` of an instance of ``cls``."""
    return frame.f_code.co_name in names and isinstance(frame.f_locals.get("self"), cls)


def _original_error(err: BaseException) -> BaseException:
    """The user error behind jsonargparse's wrapper: an exception raised by a constructor
    (a callback's, the model's) reaches us as a multi-line ``ValueError`` ("Does not validate
    against any of the Union subtypes ...") raised by jsonargparse from the original one."""
    while isinstance(err.__cause__, USER_ERRORS) and _raised_by_jsonargparse(err):
        err = err.__cause__
    return err


def _raised_by_jsonargparse(err: BaseException) -> bool:
    frame = err.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_globals.get("__name__", "").startswith(
        "jsonargparse"
    )


__all__ = ["InfoBottleneckCLI", "main", "run_cli"]
