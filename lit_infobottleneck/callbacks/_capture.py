"""Layer selection and activation capture with forward hooks, for InfoMetrics.

``resolve_layers`` turns layer specs (names, globs, types, ``"auto..."``) into named
submodules; ``ActivationCapture`` hooks them for one validation epoch and keeps, per layer
and per call, the detached, per-sample float32 outputs of the rows the caller selected:
token sequences reduced (``_tokens.py``), other shapes flattened.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from lit_infobottleneck.callbacks._auto_layers import AUTO_SPECS, auto_layers
from lit_infobottleneck.callbacks._reduction import FeatureReducer
from lit_infobottleneck.callbacks._sampling import cat_padded
from lit_infobottleneck.callbacks._tokens import (
    CHANNELS_FIRST,
    batch_first,
    reduce_tokens,
    unnest,
)

#: ``"<module>-call<k>"`` names the k-th call of a module run k > 1 times per forward pass
#: (characters every logger keeps: MLflow drops ``:``, ``#`` and ``@`` from metric names).
CALL_SEPARATOR = "-call"

OutputSelector = Callable[[Any], torch.Tensor | None]


def _named_submodules(root: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in root.named_modules() if name}


def resolve_layers(
    root: nn.Module, specs: str | Sequence[str | type[nn.Module]]
) -> tuple[list[tuple[str, nn.Module]], list[str]]:
    """Submodules of ``root`` chosen by name, glob (``"encoder.*"``), type or an automatic
    rule (``AUTO_SPECS``, see ``_auto_layers.py``), and the automatic rules applied, in words.

    Order: the order of ``specs``; the matches of one glob, type or rule in module
    registration order. The root module is never hooked (under DDP its forward also wraps
    ``validation_step``); an objective's modules (``objective.*``) only by name or glob. An
    unknown name or a spec that matches nothing raises a ``MisconfigurationException``
    listing the names.
    """
    named = _named_submodules(root)
    if isinstance(specs, str):
        specs = [specs]
    chosen: dict[str, None] = {}
    rules: list[str] = []
    for spec in specs:
        if isinstance(spec, str) and spec in AUTO_SPECS:
            own = {n: m for n, m in named.items() if not n.startswith("objective.")}
            names, rule = auto_layers(own, spec)
            found = set(names)
            rules.append(f"{spec}: {rule}")
        elif isinstance(spec, type):
            found = {n for n, m in named.items() if isinstance(m, spec)}
        elif isinstance(spec, str) and any(ch in spec for ch in "*?["):
            found = set(fnmatch.filter(named, spec))
        elif isinstance(spec, str):
            found = {spec} if spec in named else set()
        else:
            raise MisconfigurationException(
                f"InfoMetrics `layers` entries must be names, globs, module types or one of "
                f"{sorted(AUTO_SPECS)}; got {spec!r}."
            )
        if not found:
            available = ", ".join(named) or "(none)"
            raise MisconfigurationException(
                f"InfoMetrics `layers`: {spec!r} matches no submodule of "
                f"{type(root).__name__}. Available names: {available}."
            )
        for name in named:  # registration order within one spec
            if name in found:
                chosen.setdefault(name, None)
    return [(name, named[name]) for name in chosen], rules


def first_tensor(output: Any) -> torch.Tensor | None:
    """The default output selector: the tensor itself, or the first tensor of a tuple/list,
    or the first tensor field of a dataclass-like object (e.g. a bottleneck's ``z``)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
        return None
    fields = getattr(output, "__dict__", None)
    if isinstance(fields, dict):
        for value in fields.values():
            if isinstance(value, torch.Tensor):
                return value
    return None


class ActivationCapture:
    """Forward hooks that store selected rows of each layer's output, per call.

    Call ``attach`` to add the hooks, ``select`` before each batch's forward with a
    boolean mask over its rows (``None`` skips the batch) and the batch's attention mask,
    and ``detach`` to remove them. Outputs are detached, token sequences ``(batch, tokens,
    features)`` reduced by ``token_reduction`` (``"mean"``, ``"cls"``, ``"last"`` or
    ``"flatten"``; see ``_tokens.py``), other
    shapes flattened per sample, cast to float32 and moved to ``device``; layers wider than
    the ``reducer``'s ``max_features`` are reduced per batch.

    A module that runs k > 1 times in one forward pass (a shared activation, a weight-tied
    block) is measured at every call, as the layers ``"<name>-call1"`` ... ``"<name>-callk"``. A
    layer whose output is not a tensor with the batch as first dimension is recorded in
    ``errors`` (training goes on).
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        *,
        device: torch.device | str = "cpu",
        output_selector: OutputSelector = first_tensor,
        reducer: FeatureReducer | None = None,
        token_reduction: str = "flatten",
    ) -> None:
        self.layers = layers
        self.device = torch.device(device)
        self.output_selector = output_selector
        self.reducer = reducer
        self.token_reduction = token_reduction
        self.buffers: dict[tuple[str, int], list[torch.Tensor]] = {}
        self.errors: dict[str, str] = {}
        self.calls: dict[str, int] = {}  # most calls of each layer in one forward pass
        self.token_reductions: dict[str, str] = {}  # layer -> how its tokens were reduced
        self.order: dict[tuple[str, int], None] = {}  # (layer, call) in the order first run
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._mask: torch.Tensor | None = None
        self._token_mask: torch.Tensor | None = None
        self._batch_size = 0
        self._batch_calls: Counter[str] = Counter()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> None:
        self.detach()
        self.clear()
        self.errors = {}
        for name, module in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._mask = self._token_mask = None

    def select(
        self, mask: torch.Tensor | None, batch_size: int, token_mask: torch.Tensor | None = None
    ) -> None:
        """Rows of the next forward pass to keep (``None``: keep none), and the batch's
        attention mask ``(batch, tokens)`` bool, if it has one."""
        self._mask, self._batch_size, self._token_mask = mask, batch_size, token_mask
        self._batch_calls = Counter()

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._batch_size == 0:  # not a batch of the measured loader
                return
            self._batch_calls[name] += 1
            call = self._batch_calls[name]
            self.calls[name] = max(self.calls.get(name, 0), call)
            self.order.setdefault((name, call), None)
            if self._mask is None or name in self.errors:
                return
            rows = self._rows(name, module, output)
            if rows is not None:
                self.buffers.setdefault((name, call), []).append(rows.to(self.device))

        return hook

    def _rows(self, name: str, module: nn.Module, output: Any) -> torch.Tensor | None:
        """The selected rows of one call's output, ``(m, features)``; None after an error."""
        assert self._mask is not None, "called only for a batch with selected rows"
        tensor = self.output_selector(output)
        if tensor is None:
            self.errors[name] = (
                f"layer {name!r} ({type(module).__name__}) returned "
                f"{type(output).__name__}, not a tensor; pass `output_selector` to pick one"
            )
            return None
        tensor, token_mask = unnest(batch_first(module, tensor.detach()))
        if tensor.dim() == 0 or tensor.shape[0] != self._batch_size:
            self.errors[name] = (
                f"layer {name!r} output has shape {tuple(tensor.shape)}, whose first "
                f"dimension is not the batch ({self._batch_size}); a sequence layer must be "
                "batch first (e.g. batch_first=True)"
            )
            return None
        mask = self._mask.to(tensor.device)
        rows = tensor[mask].float()  # before any reduction: bf16/fp16 sums lose digits
        sequence = rows.dim() == 3 and not isinstance(module, CHANNELS_FIRST)
        if sequence and self.token_reduction != "flatten":
            token_mask = token_mask if token_mask is not None else self._token_mask
            selected = None if token_mask is None else token_mask.to(tensor.device)[mask]
            rows, how = reduce_tokens(rows, self.token_reduction, selected)
            self.token_reductions[name] = how
        rows = rows.reshape(rows.shape[0], -1)
        if self.reducer is not None:
            rows = self.reducer(name, rows)
        return rows

    def take(self, calls: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
        """Concatenated captures, ``(rows, features)``, under each layer's name, or
        ``"<name>-call<k>"`` per call for a layer that ran k > 1 times in a forward pass
        (``calls``: those counts agreed over DDP ranks, default this capture's), in the
        order the forward pass first ran them (then the never-run ones, in ``layers``
        order). A layer with an error or no captured rows gives a ``(0,)`` tensor, so every
        rank returns the same keys (not always in the same order: gather by key)."""
        calls = self.calls if calls is None else calls
        slots = [
            (name, call) for name, _ in self.layers for call in range(1, calls.get(name, 0) + 1)
        ]
        slots += [(name, 1) for name, _ in self.layers if calls.get(name, 0) == 0]
        seen = {slot: i for i, slot in enumerate(self.order)}
        slots.sort(key=lambda slot: seen.get(slot, len(seen)))  # stable: unseen keep order
        out = {}
        for name, call in slots:
            key = name if calls.get(name, 0) <= 1 else f"{name}{CALL_SEPARATOR}{call}"
            parts = self.buffers.get((name, call), [])
            if name in self.errors or not parts:
                out[key] = torch.zeros(0, device=self.device)
            else:
                out[key] = cat_padded(parts)
        self.clear()
        return out

    def failed(self, key: str) -> bool:
        """Whether the layer behind ``key`` (a name from ``take``) recorded an error."""
        return key in self.errors or key.rsplit(CALL_SEPARATOR, 1)[0] in self.errors

    def clear(self) -> None:
        """Drop every captured row (e.g. of an epoch interrupted by an exception)."""
        self.buffers = {}
        self.calls = {}
        self.order = {}
