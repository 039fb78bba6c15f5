"""torchmetrics wrappers over the estimators: accumulate samples over batches (and ranks),
estimate once in ``compute()``.

States are ``cat`` lists of detached rows, capped at ``max_samples`` so memory stays bounded.
Under DDP the rows of every rank are gathered, uneven counts and ranks that saw nothing
included; the first rank of the process group estimates on the concatenation and broadcasts
the value (or its exception), so every rank returns what one process would.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

from lit_infobottleneck.estimators import Estimator, get_estimator
from lit_infobottleneck.estimators._validation import check_int_at_least

# Units compute() can convert an estimator's nats to.
_INFORMATION_UNITS = ("nats", "bits")

# Dtypes a row state can have, indexed so that ranks can tell each other theirs in a tensor.
_DTYPES = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
)


def gather_rows(result: Tensor, group: Any | None = None) -> list[Tensor]:
    """Gather a row state ``(n_r,)`` or ``(n_r, d)`` from every rank, in rank order.

    torchmetrics' ``gather_all_tensors`` pads uneven first dimensions, but a rank that saw no
    samples sends a ``(0,)`` placeholder in the metric's float dtype, which mismatches the
    ``(n, d)`` or integer tensors of the other ranks (gloo aborts the process). So every rank
    first shares ``(rows, ndim, d, dtype)``; an empty rank then sends a ``(0, d)`` tensor of
    the others' dtype, and ranks whose rows disagree raise the same ``ValueError`` everywhere
    instead of hanging.
    """
    if group is None:
        group = torch.distributed.group.WORLD
    world_size = torch.distributed.get_world_size(group)
    width = result.shape[1] if result.dim() == 2 else 0
    meta = torch.tensor(
        [result.shape[0], result.dim(), width, _DTYPES.index(result.dtype)],
        dtype=torch.int64,
        device=result.device,
    )
    metas = [torch.zeros_like(meta) for _ in range(world_size)]
    torch.distributed.all_gather(metas, meta, group=group)
    metas_list = [m.tolist() for m in metas]
    filled = [m for m in metas_list if m[0] > 0]
    if not filled:
        return [result] * world_size
    if len({tuple(m[1:]) for m in filled}) > 1:
        found = "; ".join(
            f"rank {r}: {n} rows, {'(n,)' if nd == 1 else f'(n, {d})'} {_DTYPES[c]}"
            for r, (n, nd, d, c) in enumerate(metas_list)
            if n > 0
        )
        raise ValueError(
            f"ranks hold samples of different shapes or dtypes ({found}); pass the same "
            "per-sample shape and dtype to update() on every rank."
        )
    _, ndim, width, code = filled[0]
    if result.shape[0] == 0:
        shape = (0, width) if ndim == 2 else (0,)
        result = torch.empty(shape, dtype=_DTYPES[code], device=result.device)
    return gather_all_tensors(result, group)


def _check_unit(unit: str | None, estimator: Estimator) -> None:
    """``unit`` must be ``None``, the estimator's own unit, or bits/nats of a nats estimator."""
    if unit is None or unit == estimator.unit:
        return
    if estimator.unit == "nats":
        if unit not in _INFORMATION_UNITS:
            raise ValueError(
                f"`unit` must be None (nats) or one of {_INFORMATION_UNITS}, got {unit!r}."
            )
        return
    if unit in _INFORMATION_UNITS:
        raise ValueError(
            f"`unit={unit!r}` does not apply to the {estimator.name} estimator, whose scores "
            f"are unitless {estimator.unit}, not information in nats; pass unit=None (or "
            f"{estimator.unit!r}) to get the score as it is."
        )
    raise ValueError(
        f"`unit` must be None or {estimator.unit!r} for the {estimator.name} estimator, "
        f"got {unit!r}."
    )


def broadcastable(err: Exception) -> Exception:
    """``err`` if it unpickles to an exception of the same type and message (so it can be
    broadcast to other ranks), else a ``RuntimeError`` naming its type and message."""
    try:
        rebuilt = pickle.loads(pickle.dumps(err))
    except Exception:  # any failure means: send a RuntimeError instead
        rebuilt = None
    if type(rebuilt) is type(err) and str(rebuilt) == str(err):
        return err
    return RuntimeError(f"{type(err).__qualname__}: {err}")


def _compute_on_first_rank(
    estimate: Callable[[], Tensor], group: Any, device: torch.device
) -> Tensor:
    """Run ``estimate`` on the group's rank 0 only and give its value to every rank.

    Rank 0 broadcasts the value as a Python float (exact for float64) or the exception it
    raised; the other ranks return the value as a 0-d float64 tensor on ``device`` or raise
    the same exception (a ``RuntimeError`` naming type and message when it cannot be
    unpickled), so no rank waits for a broadcast that will not come.
    """
    src = torch.distributed.get_global_rank(group, 0)
    if torch.distributed.get_rank(group) == 0:
        try:
            value = estimate()
            payload: list[Any] = [value.item()]
        except Exception as err:
            torch.distributed.broadcast_object_list([broadcastable(err)], src=src, group=group)
            raise
        torch.distributed.broadcast_object_list(payload, src=src, group=group)
        return value
    payload = [None]
    torch.distributed.broadcast_object_list(payload, src=src, group=group)
    if isinstance(payload[0], Exception):
        raise payload[0]
    return torch.tensor(payload[0], dtype=torch.float64, device=device)


def _resolve_estimator(estimator: Estimator | str | dict[str, Any]) -> Estimator:
    if isinstance(estimator, Estimator):
        return estimator
    if isinstance(estimator, str):
        return get_estimator(estimator)
    if isinstance(estimator, dict):
        params = dict(estimator)
        if "name" not in params:
            raise ValueError(
                f"estimator dict {estimator!r} has no 'name' key; pass e.g. "
                "{'name': 'ksg', 'k': 3}."
            )
        return get_estimator(params.pop("name"), **params)
    raise TypeError(
        "`estimator` must be an Estimator, a registered name or a dict {'name': ..., **params}; "
        f"got {type(estimator).__name__}."
    )


class MutualInformation(Metric):
    """I(X;Y) of paired samples accumulated over batches, by any registered estimator.

    Args:
        estimator: an ``Estimator``, a registered name (``"gaussian"``, ``"ksg"``, ...)
            or a dict ``{"name": ..., **params}`` for ``get_estimator``.
        max_samples: cap on the rows kept per process (``None``: keep all). Each process keeps
            the first ``max_samples`` rows it sees; ``compute()`` gathers the rows of every
            rank in rank order (rank 0's, then rank 1's, ...) and uses the first
            ``max_samples`` of them. Every rank thus returns the value one process gives on
            that concatenation; once rank 0 alone fills the cap, only its rows are used.
        discrete_y: passed to the estimator; ``None`` treats an integer/bool ``y`` as labels.
        unit: the unit of ``compute()``'s value. ``None`` (default): the estimator's own
            unit, ``Estimator.unit`` (nats for every mutual-information estimator).
            ``"nats"`` or ``"bits"`` for estimators in nats; only ``compute()``'s output is
            converted. The HSIC family scores unitless dependence (``"nHSIC"``/``"HSIC"``),
            so ``"nats"``/``"bits"`` raise a ``ValueError`` there. ``result_unit``
            names the unit of the value.
        kwargs: ``torchmetrics.Metric`` options (``dist_sync_fn`` replaces the gathering
            that handles ranks with no samples; ``process_group`` also sets the group whose
            rank 0 estimates and broadcasts; with ``sync_on_compute=False`` each rank
            estimates on its own rows).

    ``update(x, y)``: ``x`` ``(n, ...)`` is flattened per sample to ``(n, d)`` (float32 unless
    it is float64); ``y`` ``(n,)`` keeps its shape and dtype (integer labels stay integer),
    ``(n, ...)`` is flattened to ``(n, k)``. ``compute()``: 0-d float64 tensor in
    ``result_unit``; when the states are synced across more than one process, only the
    group's rank 0 runs the estimator (a neural bound trains one critic, not one per rank)
    and broadcasts the value, or re-raises its exception on every rank.
    Duplicate samples (e.g. the padding of ``DistributedSampler``) are counted like any other.
    """

    is_differentiable = False
    # I(T;Y) should rise and I(X;T) may fall under a bottleneck: neither direction is "better".
    higher_is_better = None
    full_state_update = False

    x: list[Tensor]
    y: list[Tensor]

    def __init__(
        self,
        estimator: Estimator | str | dict[str, Any],
        max_samples: int | None = 4096,
        discrete_y: bool | None = None,
        unit: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dist_sync_fn", gather_rows)
        super().__init__(**kwargs)
        if max_samples is not None:
            check_int_at_least(max_samples, "max_samples", 1)
        self.estimator = _resolve_estimator(estimator)
        _check_unit(unit, self.estimator)
        self.max_samples = max_samples
        self.discrete_y = discrete_y
        self.unit = unit
        self.add_state("x", default=[], dist_reduce_fx="cat")
        self.add_state("y", default=[], dist_reduce_fx="cat")

    @property
    def result_unit(self) -> str:
        """Unit of ``compute()``'s value: ``"nats"``/``"bits"``, or the estimator's own unit."""
        return self.estimator.unit if self.unit is None else self.unit

    def update(self, x: Tensor, y: Tensor) -> None:
        """Store the rows of ``x`` ``(n, ...)`` and ``y`` ``(n, ...)`` until the cap is reached."""
        for name, t in (("x", x), ("y", y)):
            if not isinstance(t, Tensor) or t.dim() == 0 or t.is_complex():
                got = (
                    f"a {t.dtype} tensor of shape {tuple(t.shape)}"
                    if isinstance(t, Tensor)
                    else type(t).__name__
                )
                raise ValueError(f"`{name}` must be a real tensor of shape (n, ...), got {got}.")
        n = x.shape[0]
        if y.shape[0] != n:
            raise ValueError(
                f"`x` has {n} samples but `y` has {y.shape[0]}; pass paired samples "
                "(row i of each from the same example)."
            )
        if n == 0 or (self.max_samples is not None and self._num_rows() >= self.max_samples):
            return
        x = x.detach().reshape(n, -1)
        if x.shape[1] == 0:
            raise ValueError(f"`x` has no features per sample (shape {tuple(x.shape)}).")
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        y = y.detach()
        if y.dim() > 1:
            y = y.reshape(n, -1)
        if y.dtype in (torch.float16, torch.bfloat16):
            y = y.float()
        if self.x:
            self._check_like_stored(x, y)
        self.x.append(x)
        self.y.append(y)
        self._keep_first_rows()

    def forward(self, x: Tensor, y: Tensor) -> None:
        """Only accumulate: an estimate per batch would be costly and, for small batches,
        impossible (k-NN needs k + 1 samples). Call ``compute`` at epoch end."""
        self.update(x, y)

    def compute(self) -> Tensor:
        """I(X;Y) of the stored rows (at most ``max_samples``): 0-d float64 in ``result_unit``."""
        # Empty: a list with no update, or a (0,) tensor after syncing ranks that all saw nothing.
        if len(self.x) == 0:
            raise ValueError(
                "MutualInformation has no samples: call update(x, y) with at least one batch "
                "before compute() (under DDP, on at least one rank)."
            )
        x, y = dim_zero_cat(self.x), dim_zero_cat(self.y)
        if self.max_samples is not None:
            x, y = x[: self.max_samples], y[: self.max_samples]
        group = self._broadcast_group()
        if group is None:
            return self._estimate(x, y)
        return _compute_on_first_rank(lambda: self._estimate(x, y), group, x.device)

    def _estimate(self, x: Tensor, y: Tensor) -> Tensor:
        mi = self.estimator.mutual_information(x, y, discrete_y=self.discrete_y)
        mi = mi.to(torch.float64)
        return mi / math.log(2) if self.unit == "bits" else mi

    def _broadcast_group(self) -> Any | None:
        """The process group to broadcast ``compute()``'s value over, or ``None``.

        A group only when the states were synced (torchmetrics sets ``_is_synced`` while
        ``compute()`` runs on gathered states; not with ``sync_on_compute=False``) over more
        than one process: then every rank holds the same rows.
        """
        if not (self._is_synced and torch.distributed.is_available()):
            return None
        if not torch.distributed.is_initialized():
            return None
        group = self.process_group or torch.distributed.group.WORLD
        return group if torch.distributed.get_world_size(group) > 1 else None

    def _reduce_states(self, incoming_state: dict[str, Any]) -> None:
        # forward() and merge_state() append the batch state to the accumulated one: re-apply
        # the cap so that it bounds memory on every path, not only update().
        super()._reduce_states(incoming_state)
        self._keep_first_rows()

    def _num_rows(self) -> int:
        return sum(t.shape[0] for t in self.x)

    def _keep_first_rows(self) -> None:
        """Drop stored rows beyond the first ``max_samples`` (copying a cut batch to free it)."""
        if self.max_samples is None or self._num_rows() <= self.max_samples:
            return
        xs, ys, total = [], [], 0
        for xb, yb in zip(self.x, self.y, strict=True):
            room = self.max_samples - total
            if room <= 0:
                break
            if xb.shape[0] > room:
                xb, yb = xb[:room].clone(), yb[:room].clone()
            xs.append(xb)
            ys.append(yb)
            total += xb.shape[0]
        self.x, self.y = xs, ys

    def _check_like_stored(self, x: Tensor, y: Tensor) -> None:
        x0, y0 = self.x[0], self.y[0]
        if x.shape[1:] != x0.shape[1:] or y.shape[1:] != y0.shape[1:]:
            raise ValueError(
                f"this batch has per-sample shapes x {tuple(x.shape[1:])}, y {tuple(y.shape[1:])} "
                f"but earlier batches had x {tuple(x0.shape[1:])}, y {tuple(y0.shape[1:])}; "
                "pass the same layer/labels every batch, or reset() the metric."
            )
        if y.is_floating_point() != y0.is_floating_point():
            raise ValueError(
                f"`y` has dtype {y.dtype} but earlier batches had {y0.dtype}; mixing labels "
                "and continuous values would change what is estimated. Cast consistently."
            )
