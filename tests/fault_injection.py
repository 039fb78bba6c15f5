"""Fault injection for the reliability tests: a callback that SIGKILLs its own process.

``SIGKILL`` cannot be caught: no ``finally`` block, ``on_exception`` hook, ``atexit``
handler or logger flush runs, exactly like a job killed by a cluster's scheduler or the
kernel's out-of-memory killer. Used by ``tests/test_fault_injection.py`` through the
``lit-ib`` command line (``class_path: tests.fault_injection.SigkillAt``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

WHERE = ("train_batch", "estimation")


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_on_call(function: Callable[..., Any], number: int) -> Callable[..., Any]:
    """``function``, except that its ``number``-th call SIGKILLs the process."""
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == number:
            sigkill_self()
        return function(*args, **kwargs)

    return wrapped


class SigkillAt(Callback):
    """Kill the process at a chosen point of epoch ``epoch``.

    Args:
        epoch: the (0-based) epoch in which to die.
        where: ``"train_batch"``: at the start of training batch ``batch``;
            ``"estimation"``: inside InfoMetrics' estimation, during the estimate of the
            second layer (the first layer's estimate is done, nothing is logged yet).
        batch: the training batch index for ``where="train_batch"``.
    """

    def __init__(self, epoch: int, where: str = "train_batch", batch: int = 2) -> None:
        if where not in WHERE:
            raise ValueError(f"`where` must be one of {WHERE}, got {where!r}")
        self.epoch, self.where, self.batch = epoch, where, batch

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.where == "train_batch" and trainer.current_epoch == self.epoch:
            if batch_idx == self.batch:
                sigkill_self()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.where != "estimation" or trainer.sanity_checking:
            return
        if trainer.current_epoch != self.epoch:
            return
        from lit_infobottleneck.callbacks import InfoMetrics

        for callback in trainer.callbacks:
            if isinstance(callback, InfoMetrics):
                estimator = next(iter(callback.estimators.values()))
                estimator.layer_information = die_on_call(estimator.layer_information, 2)
                return
        raise RuntimeError("SigkillAt(where='estimation') needs an InfoMetrics callback")
