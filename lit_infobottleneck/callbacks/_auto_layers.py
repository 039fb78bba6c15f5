"""The layers that ``layers="auto"`` measures, for InfoMetrics.

The rule, applied to the LightningModule's submodules in registration order (the root and
an objective's own modules, ``objective.*``, are never chosen):

1. **Repeated blocks.** A *block* is an element of an ``nn.Sequential``, ``nn.ModuleList``
   or ``nn.ModuleDict`` that has submodules of its own, is not itself a container, and whose
   class occurs at least twice among the elements of one container (torchvision's
   ``BasicBlock``/``Bottleneck``/``MBConv``/``InvertedResidual``, Hugging Face's
   ``BertLayer``/``GPT2Block``), or is an ``nn.TransformerEncoderLayer``/``DecoderLayer``.
   A block that holds blocks which hold blocks is a stage, not a block (Hugging Face's
   ``ResNetStage``); of the other nested blocks the outermost are kept (a squeeze-excitation
   module inside a block is part of it).
2. **Granularity.** ``"auto"`` and ``"auto:blocks"``: the output of every block.
   ``"auto:stages"``: the output of every container of blocks (torchvision ResNet's
   ``layer1`` ... ``layer4``); a ``ModuleList`` has no forward of its own, so its last block
   stands for it. A model without blocks (an MLP, a plain CNN), and ``"auto:activations"``
   always: every activation module (``ACTIVATION_TYPES``); a model without those either:
   every ``nn.Linear`` and convolution (their pre-activations).
3. **Pooled features.** Adaptive pooling modules and modules whose class name ends in
   ``Pooler`` (Hugging Face), registered after the last block and outside every block
   (ResNet's ``avgpool``, BERT's ``pooler``).
4. **The head.** The last ``nn.Linear`` registered outside every block: the model's output
   (ResNet's ``fc``, BERT's ``classifier``).

InfoMetrics measures the chosen layers in the order the forward pass first runs them (see
``ActivationCapture.take``), so the data-processing check compares consecutive layers in
depth order whatever the registration order.
"""

from __future__ import annotations

from collections import Counter

from torch import nn

from lit_infobottleneck.callbacks._tokens import TRANSFORMER_LAYERS

#: Module types measured by ``"auto:activations"`` (and by ``"auto"`` in a model without
#: repeated blocks): the activations of a network.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.GELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.SiLU,
)
#: The pre-activations measured when a model has no blocks and no activation modules.
WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
POOLING_TYPES: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
CONTAINER_TYPES = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
#: The ``layers`` strings that choose layers automatically, and what each measures.
AUTO_SPECS: dict[str, str] = {
    "auto": "every repeated block (else every activation), pooled features, the head",
    "auto:blocks": "every repeated block (else every activation), pooled features, the head",
    "auto:stages": "every stage of repeated blocks (else every activation), pooled features, "
    "the head",
    "auto:activations": "every activation module, the head",
}


def _inside(name: str, parent: str) -> bool:
    return name.startswith(parent + ".")


def _has_forward(module: nn.Module) -> bool:
    """Whether ``module`` runs as a whole (``ModuleList``/``ModuleDict`` have no forward)."""
    return type(module).forward is not nn.Module.forward


def repeated_blocks(named: dict[str, nn.Module]) -> list[str]:
    """Names of the repeated blocks (rule 1), in registration order."""
    elements: list[tuple[str, str]] = []  # (element name, container name)
    for name, module in named.items():
        if isinstance(module, CONTAINER_TYPES):
            for child, element in module.named_children():
                has_children = next(element.children(), None) is not None
                if has_children and not isinstance(element, CONTAINER_TYPES):
                    elements.append((f"{name}.{child}", name))
    per_container = Counter((type(named[e]), c) for e, c in elements)
    repeated = {cls for (cls, _), count in per_container.items() if count >= 2}
    repeated |= set(TRANSFORMER_LAYERS)
    candidates = [e for e, _ in elements if type(named[e]) in repeated]

    def inner(block: str) -> list[str]:
        return [c for c in candidates if _inside(c, block)]

    # a candidate holding blocks that hold blocks is a stage (Hugging Face ResNetStage)
    blocks = [c for c in candidates if not any(inner(i) for i in inner(c))]
    return [b for b in blocks if not any(_inside(b, other) for other in blocks)]


def stages(named: dict[str, nn.Module], blocks: list[str]) -> list[str]:
    """The container of each block; where it has no forward of its own (``ModuleList``) its
    last block stands for it (rule 2)."""
    chosen: dict[str, None] = {}
    for block in blocks:
        container = block.rsplit(".", 1)[0]
        if _has_forward(named[container]):
            chosen.setdefault(container, None)
        else:
            last = [b for b in blocks if b.rsplit(".", 1)[0] == container][-1]
            chosen.setdefault(last, None)
    return list(chosen)


def auto_layers(named: dict[str, nn.Module], spec: str) -> tuple[list[str], str]:
    """The names ``spec`` (a key of ``AUTO_SPECS``) chooses among ``named`` (the model's
    submodules in registration order, the objective's removed), and the rule applied, in
    words (for the log line and the JSON)."""
    order = {name: i for i, name in enumerate(named)}
    blocks = [] if spec == "auto:activations" else repeated_blocks(named)
    if blocks:
        body = stages(named, blocks) if spec == "auto:stages" else blocks
        rule = "stages of repeated blocks" if spec == "auto:stages" else "repeated blocks"
        last_block = max(order[b] for b in blocks)
        pooled = [
            n
            for n, m in named.items()
            if order[n] > last_block
            and not any(_inside(n, b) for b in blocks)
            and (isinstance(m, POOLING_TYPES) or type(m).__name__.endswith("Pooler"))
        ]
        rule += ", pooled features" if pooled else ""
    else:
        body = [n for n, m in named.items() if isinstance(m, ACTIVATION_TYPES)]
        rule = "activation modules"
        if not body:
            body = [n for n, m in named.items() if isinstance(m, WEIGHT_LAYER_TYPES)]
            rule = "linear and convolution layers (no activation modules)"
        pooled = []
    chosen = body + pooled
    heads = [
        n
        for n, m in named.items()
        if isinstance(m, nn.Linear) and not any(_inside(n, b) for b in blocks)
    ]
    if heads and heads[-1] not in chosen:
        chosen.append(heads[-1])
        rule += ", the head"
    return sorted(chosen, key=order.__getitem__), rule
