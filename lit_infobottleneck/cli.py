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
import sys
from collections.abc import Sequence

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
