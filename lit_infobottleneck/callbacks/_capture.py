"""Layer selection and activation capture with forward hooks, for InfoMetrics.

``resolve_layers`` turns layer specs (names, globs, types) into named submodules;
``ActivationCapture`` hooks them for one validation epoch and keeps, per layer, the
detached, per-sample-flattened float32 outputs of the rows the caller selected.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from lit_infobottleneck.callbacks._reduction import FeatureReducer

#: Module types measured by ``layers="auto"``: the activations of a network.
AUTO_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.SiLU,
)

OutputSelector = Callable[[Any], torch.Tensor | None]


def _named_submodules(root: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in root.named_modules() if name}


def resolve_layers(
    root: nn.Module, specs: str | Sequence[str | type[nn.Module]]
) -> list[tuple[str, nn.Module]]:
    """Submodules of ``root`` chosen by name, glob (``"encoder.*"``) or type.

    Order: the order of ``specs``; the matches of one glob, type or ``"auto"`` (every
    activation module, ``AUTO_TYPES``) in module registration order. The root module is
    never hooked (under DDP its forward also wraps ``validation_step``). An unknown name or a
    pattern that matches nothing raises a ``MisconfigurationException`` listing the names.
    """
    named = _named_submodules(root)
    if isinstance(specs, str):
        specs = [specs]
    chosen: dict[str, None] = {}
    for spec in specs:
        if spec == "auto":  # an objective's own modules (e.g. a decoder) are not layers
            found = {
                n
                for n, m in named.items()
                if isinstance(m, AUTO_TYPES) and not n.startswith("objective.")
            }
        elif isinstance(spec, type):
            found = {n for n, m in named.items() if isinstance(m, spec)}
        elif isinstance(spec, str) and any(ch in spec for ch in "*?["):
            found = set(fnmatch.filter(named, spec))
        elif isinstance(spec, str):
            found = {spec} if spec in named else set()
        else:
            raise MisconfigurationException(
                f"InfoMetrics `layers` entries must be names, globs or module types; got {spec!r}."
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
    return [(name, named[name]) for name in chosen]


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
    """Forward hooks that store selected rows of each layer's output.

    Call ``attach`` to add the hooks, ``select`` before each batch's forward with a
    boolean mask over its rows (``None`` skips the batch), and ``detach`` to remove
    them. Outputs are detached, flattened per sample, cast to float32 and moved to
    ``device``; layers wider than the ``reducer``'s ``max_features`` are reduced per batch.
    A layer whose output is not a tensor with the batch as first dimension is
    recorded in ``errors`` (training goes on).
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        *,
        device: torch.device | str = "cpu",
        output_selector: OutputSelector = first_tensor,
        reducer: FeatureReducer | None = None,
    ) -> None:
        self.layers = layers
        self.device = torch.device(device)
        self.output_selector = output_selector
        self.reducer = reducer
        self.buffers: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
        self.errors: dict[str, str] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._mask: torch.Tensor | None = None
        self._batch_size = 0
        self._called: set[str] = set()

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
        self._mask = None

    def select(self, mask: torch.Tensor | None, batch_size: int) -> None:
        """Rows of the next forward pass to keep (``None``: keep none)."""
        self._mask, self._batch_size = mask, batch_size
        self._called = set()

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._mask is None or name in self.errors:
                return
            if name in self._called:
                self.errors[name] = (
                    f"layer {name!r} ran more than once in one forward pass (a shared "
                    "module); hook a module that is used once"
                )
                return
            self._called.add(name)
            tensor = self.output_selector(output)
            if tensor is None:
                self.errors[name] = (
                    f"layer {name!r} ({type(module).__name__}) returned "
                    f"{type(output).__name__}, not a tensor; pass `output_selector` to pick one"
                )
                return
            if tensor.dim() == 0 or tensor.shape[0] != self._batch_size:
                self.errors[name] = (
                    f"layer {name!r} output has shape {tuple(tensor.shape)}, whose first "
                    f"dimension is not the batch ({self._batch_size})"
                )
                return
            rows = tensor.detach()[self._mask.to(tensor.device)]
            rows = rows.reshape(rows.shape[0], -1).float()
            if self.reducer is not None:
                rows = self.reducer(name, rows)
            self.buffers[name].append(rows.to(self.device))

        return hook

    def take(self) -> dict[str, torch.Tensor]:
        """Concatenated captures of every layer, ``(rows, features)``; a layer with an error
        or no captured rows gives a ``(0,)`` tensor (so every rank returns the same keys)."""
        out = {}
        for name, parts in self.buffers.items():
            good = name not in self.errors and parts
            out[name] = torch.cat(parts) if good else torch.zeros(0, device=self.device)
        self.clear()
        return out

    def clear(self) -> None:
        """Drop every captured row (e.g. of an epoch interrupted by an exception)."""
        self.buffers = {name: [] for name, _ in self.layers}
