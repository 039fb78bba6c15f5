"""``lit-ib``: the LightningCLI of lit-infobottleneck.

    lit-ib fit --config configs/default.yaml            # train; curves in TensorBoard
    lit-ib fit --config configs/default.yaml --print_config
    lit-ib test --config runs/.../config.yaml --ckpt_path runs/.../checkpoints/last.ckpt
    lit-ib plot runs/default/version_0                   # re-draw the information plane

Models and data are chosen by ``class_path`` (short names work: ``--model
InfoBottleneckClassifier``, ``--data DigitsDataModule``); ``data.num_classes`` and
``data.input_shape`` are linked into the model. Errors in the configuration, the data or an
estimator's parameters end the run with one line (``LIT_IB_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

import lit_infobottleneck.callbacks
import lit_infobottleneck.data
import lit_infobottleneck.nets
import lit_infobottleneck.objectives  # noqa: F401  (registers classes for short names)
from lit_infobottleneck.module import InfoBottleneckClassifier

log = logging.getLogger("lit_infobottleneck.cli")

#: Exceptions that mean "the user's configuration or data is wrong": one line, no traceback.
USER_ERRORS = (ValueError, FileNotFoundError, MisconfigurationException, KeyError, TypeError)


class InfoBottleneckCLI(LightningCLI):
    """LightningCLI with the data's class count and input shape linked into the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for field in ("num_classes", "input_shape"):
            parser.link_arguments(
                f"data.{field}", f"model.init_args.{field}", apply_on="instantiate"
            )

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit" and self.config.fit.get("ckpt_path") == "last":
            continue_last_version(self.config.fit.trainer)


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
        args=args,
    )


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of ``lit-ib`` and ``python -m lit_infobottleneck`` (exit code 2 on a
    configuration or data error, with one line on stderr)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] == "plot":
        from lit_infobottleneck.plot_command import plot_main

        plot_main(argv[1:])
        return
    try:
        run_cli(None if args is None else argv)  # None: LightningCLI reads sys.argv itself
    except USER_ERRORS as err:
        if os.environ.get("LIT_IB_DEBUG"):
            raise
        cause = _original_error(err)
        message = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        sys.stderr.write(f"lit-ib: error: {type(cause).__name__}: {message}\n")
        raise SystemExit(2) from None


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
