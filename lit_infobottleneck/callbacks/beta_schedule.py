"""BetaSchedule: anneal a float weight of the objective (``beta``, ``lambda1``, ...) in training.

VIB and its relatives are often trained with the information weight warmed up from zero, so
that the network first learns to predict and is compressed later (Alemi et al. 2017 anneal
beta; Kolchinsky et al. 2019 sweep it). The value is a pure function of the epoch (or of the
optimizer step), so a resumed run sees exactly the values of an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_infobottleneck._checks import check_choice, check_int, check_weight

SCHEDULES = ("constant", "linear", "exponential")
INTERVALS = ("epoch", "step")


class BetaSchedule(Callback):
    """Set the float weight ``weight`` of ``pl_module.<target>`` at every epoch or step.

    With ``t`` the epoch (``interval="epoch"``) or the optimizer step (``"step"``, that is
    ``trainer.global_step``) and ``r = min(t / warmup, 1)`` (``r = 1`` when ``warmup = 0``):

    - ``"constant"``: ``end`` throughout;
    - ``"linear"``: ``start + r (end - start)``, then ``end`` after ``warmup`` intervals;
    - ``"exponential"``: ``start (end / start) ** r``, geometric interpolation; needs
      ``start > 0`` and ``end > 0``.

    The value is set at ``on_train_epoch_start`` (or ``on_train_batch_start``), so the
    training steps and the validation that follow use it, and logged as
    ``schedule/<weight>``.

    Args:
        weight: name of the float attribute to set, e.g. ``"beta"``; it must be one of the
            target's ``weights`` when the target declares them (see ``objectives.Objective``).
        schedule: ``"constant"``, ``"linear"`` or ``"exponential"``.
        start: value at ``t = 0`` (ignored by ``"constant"``); a number >= 0.
        end: value from ``t = warmup`` on; a number >= 0.
        warmup: number of intervals from ``start`` to ``end``; an integer >= 0.
        interval: ``"epoch"`` or ``"step"``.
        target: dotted attribute path from the LightningModule to the object that owns the
            weight, e.g. ``"objective"``; ``""`` is the LightningModule itself.
    """

    def __init__(
        self,
        weight: str = "beta",
        schedule: str = "linear",
        start: float = 0.0,
        end: float = 1e-3,
        warmup: int = 10,
        interval: str = "epoch",
        target: str = "objective",
    ) -> None:
        if not isinstance(weight, str) or not weight.isidentifier():
            raise ValueError(f"`weight` must be an attribute name, got {weight!r}.")
        check_choice(schedule, "schedule", SCHEDULES)
        check_choice(interval, "interval", INTERVALS)
        warmup = check_int(warmup, "warmup", 0)
        if not isinstance(target, str):
            raise ValueError(f"`target` must be a dotted attribute path, got {target!r}.")
        start = check_weight(start, "start")
        end = check_weight(end, "end")
        if schedule == "exponential" and not (start > 0 and end > 0):
            raise ValueError(
                f"the exponential schedule needs `start` > 0 and `end` > 0, got start={start!r}, "
                f"end={end!r}; use schedule='linear' to start from 0."
            )
        self.weight = weight
        self.schedule = schedule
        self.start = start
        self.end = end
        self.warmup = warmup
        self.interval = interval
        self.target = target
        self.last_value: float | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(weight=self.weight, target=self.target)

    def value(self, t: int) -> float:
        """The scheduled value after ``t`` epochs or optimizer steps."""
        if self.schedule == "constant" or t >= self.warmup:
            return self.end
        r = t / self.warmup
        if self.schedule == "linear":
            return self.start + r * (self.end - self.start)
        return self.start * (self.end / self.start) ** r

    def _resolve(self, pl_module: pl.LightningModule) -> Any:
        owner: Any = pl_module
        path = self.target.split(".") if self.target else []
        for i, name in enumerate(path):
            if not hasattr(owner, name):
                where = ".".join(["pl_module", *path[:i]])
                raise MisconfigurationException(
                    f"BetaSchedule: `target` {self.target!r} does not exist: {where} "
                    f"({type(owner).__name__}) has no attribute {name!r}, so its weight "
                    f"{self.weight!r} cannot be scheduled."
                )
            owner = getattr(owner, name)
        declared = getattr(type(owner), "weights", None)
        declared = tuple(declared) if isinstance(declared, (list, tuple)) else None
        current = getattr(owner, self.weight, None)
        number = isinstance(current, (int, float)) and not isinstance(current, bool)
        if (declared is not None and self.weight not in declared) or not number:
            available = ", ".join(declared) if declared else "none declared"
            what = f"pl_module.{self.target}" if self.target else "pl_module"
            raise MisconfigurationException(
                f"BetaSchedule: `weight` {self.weight!r} is not a schedulable float weight of "
                f"`target` {self.target!r} ({what} is a {type(owner).__name__}, "
                f"{self.weight} = {current!r}); available weights: {available}."
            )
        return owner

    def _apply(self, pl_module: pl.LightningModule, value: float) -> None:
        setattr(self._resolve(pl_module), self.weight, value)
        self.last_value = value

    def _log(self, pl_module: pl.LightningModule, value: float) -> None:
        per_step = self.interval == "step"
        pl_module.log(
            f"schedule/{self.weight}",
            value,
            on_step=per_step,
            on_epoch=not per_step,
            batch_size=1,
            sync_dist=not per_step,
        )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The loops' progress is restored only after this hook; a resumed run restores the
        # last value from the callback state, so the sanity check sees it too.
        restored = self.last_value
        self._apply(pl_module, self.value(0) if restored is None else restored)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.interval == "epoch":
            value = self.value(trainer.current_epoch)
            self._apply(pl_module, value)
            self._log(pl_module, value)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.interval == "step":
            value = self.value(trainer.global_step)
            self._apply(pl_module, value)
            self._log(pl_module, value)

    def state_dict(self) -> dict[str, Any]:
        return {"last_value": self.last_value, **self._params()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = {k: state_dict[k] for k in self._params() if k in state_dict}
        changed = {k: (v, getattr(self, k)) for k, v in saved.items() if v != getattr(self, k)}
        if changed:
            diff = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            rank_zero_warn(
                f"BetaSchedule for {self.weight!r}: the checkpoint was saved with other "
                f"parameters ({diff}); the new ones are used from here on."
            )
        self.last_value = state_dict.get("last_value")

    def _params(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "schedule": self.schedule,
            "start": self.start,
            "end": self.end,
            "warmup": self.warmup,
            "interval": self.interval,
            "target": self.target,
        }
