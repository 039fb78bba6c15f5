"""Which validation samples InfoMetrics measures, and their gathering across DDP ranks.

Samples are named by a global index: the position in the un-sharded sampler order (with a
``DistributedSampler``, rank r's i-th sample is ``i * world + r``). A seeded random subset
of ``max_samples`` of the indices the epoch will actually see (after ``limit_val_batches``)
is measured, the same every epoch as long as the loader does not shuffle. Where the indices
are not known (an ``IterableDataset``), the first ``max_samples`` samples are measured.
Ranks with their own samplers (no ``DistributedSampler``) get unique ids ``position *
world + rank`` that are not dataset indices; then the first ``max_samples`` ids that exist
are kept.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DistributedSampler, IterableDataset, RandomSampler

from lit_infobottleneck.metrics import gather_rows


def first_loader(loaders: Any) -> Any:
    """The measured (first) validation dataloader."""
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders


def is_sharded(loader: Any, world: int) -> bool:
    """Whether the loader's sampler is a ``DistributedSampler`` under a multi-rank run."""
    return world > 1 and isinstance(getattr(loader, "sampler", None), DistributedSampler)


def loader_shuffles(loader: Any) -> bool:
    """Whether the loader draws a new order every epoch (then the subset changes too)."""
    sampler = getattr(loader, "sampler", None)
    return isinstance(sampler, RandomSampler) or bool(getattr(sampler, "shuffle", False))


def global_length(loader: Any, sharded: bool) -> int | None:
    """Number of global indices of the un-sharded sampler order, or None if unknown (an
    ``IterableDataset``, whose ``len`` may count anything: then the first ``max_samples``
    samples are measured).

    A ``DistributedSamplerWrapper``'s ``dataset`` is the wrapped user sampler, whose length
    (not the dataset's) marks where the padding starts.
    """
    if isinstance(getattr(loader, "dataset", None), IterableDataset):
        return None
    sampler: Any = getattr(loader, "sampler", None)
    try:
        return len(sampler.dataset if sharded else sampler)
    except (AttributeError, TypeError):
        try:
            return len(loader.dataset)
        except (AttributeError, TypeError):
            return None


def seen_length(
    loader: Any, num_batches: float | int | None, world: int, sharded: bool
) -> int | None:
    """Global indices a validation epoch reaches with ``num_batches`` batches per rank
    (``limit_val_batches``), or None when the batch size is unknown or all are seen."""
    batch_size = getattr(loader, "batch_size", None)
    if batch_size is None:  # a loader built with batch_sampler=
        batch_size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if not isinstance(batch_size, int) or not isinstance(num_batches, int) or num_batches < 0:
        return None
    return num_batches * batch_size * (world if sharded else 1)


def subset_mask(length: int, max_samples: int, seed: int) -> torch.Tensor:
    """Boolean ``(length,)``: a seeded random subset of ``min(length, max_samples)`` indices."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.zeros(length, dtype=torch.bool)
    keep[torch.randperm(length, generator=gen)[:max_samples]] = True
    return keep


def epoch_subset(
    trainer: Any, max_samples: int, seed: int
) -> tuple[torch.Tensor | None, list[tuple[str, str, bool]]]:
    """The measured subset of a validation epoch of ``trainer``: a boolean lookup over the
    global indices it will see (``subset_mask``), or None for "the first ``max_samples``
    ids"; and the notes for the user, ``(topic, message, is_warning)``. A collective under
    DDP with a sharded loader (the ranks' seen lengths are gathered)."""
    world = trainer.world_size
    notes: list[tuple[str, str, bool]] = []
    loader = first_loader(trainer.val_dataloaders)
    sharded = is_sharded(loader, world)
    if world > 1 and not sharded:
        return None, notes
    if loader_shuffles(loader):
        notes.append(
            (
                "shuffle",
                "InfoMetrics: the validation loader shuffles, so the measured subset of "
                "max_samples differs between epochs; build the validation DataLoader with "
                "shuffle=False for comparable epochs.",
                True,
            )
        )
    length = global_length(loader, sharded)
    if length is None:
        return None, notes
    batches = trainer.num_val_batches[0] if trainer.num_val_batches else None
    seen = seen_length(loader, batches, world, sharded)
    if sharded:  # ranks may stop at different batches: the subset is drawn over all
        seen = max_over_ranks(trainer.strategy, [-1 if seen is None else seen])[0]
        seen = None if seen < 0 else seen
    if seen is not None and seen < length:
        notes.append(
            (
                "limit",
                f"InfoMetrics draws its subset of max_samples={max_samples} from the {seen} "
                f"validation samples the epoch runs (of {length}; limit_val_batches or "
                "drop_last).",
                False,
            )
        )
        length = seen
    return subset_mask(length, max_samples, seed), notes


def batch_selection(
    position: int,
    size: int,
    world: int,
    rank: int,
    keep: torch.Tensor | None,
    max_samples: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(global indices (size,), mask (size,))`` of a batch starting at ``position`` on
    ``rank``: which of its rows are measured."""
    positions = torch.arange(position, position + size)
    indices = positions * world + rank if world > 1 else positions
    if keep is None:  # each rank's first max_samples; the gather keeps the first ids
        return indices, positions < max_samples
    inside = indices < keep.shape[0]
    return indices, inside & keep[indices.clamp(max=max(keep.shape[0] - 1, 0))]


def gather_captures(
    strategy: Any,
    world: int,
    local: dict[str, torch.Tensor],
    max_samples: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """All ranks' captures in global index order, each sample once (``local["index"]``
    holds the global indices; the DistributedSampler's padding repeats some), at most
    ``max_samples``. A tensor whose row count differs from the index count comes back
    empty ``(0, ...)``. Every rank must hold the same keys; the collectives run in sorted
    key order, so their order in ``local`` may differ between ranks (it is kept); 2-d
    tensors are padded to the widest of their key over the ranks first (``agree_widths``)."""
    if world == 1:
        gathered = local
    else:
        local = agree_widths(strategy, local)
        by_key = {
            key: torch.cat(gather_rows(local[key].to(strategy.root_device))).to(device)
            for key in sorted(local)
        }
        gathered = {key: by_key[key] for key in local}
    order = torch.argsort(gathered["index"])
    index = gathered["index"][order]
    unique = torch.ones_like(index, dtype=torch.bool)
    unique[1:] = index[1:] != index[:-1]
    keep = order[unique][:max_samples]
    count = gathered["index"].shape[0]
    return {
        key: value[keep] if value.shape[0] == count else value[:0]
        for key, value in gathered.items()
    }


def pad_columns(rows: torch.Tensor, width: int) -> torch.Tensor:
    """``rows`` ``(m, d)`` right-padded with zeros to ``(m, width)``; other shapes unchanged."""
    if rows.dim() != 2 or rows.shape[1] >= width:
        return rows
    return torch.nn.functional.pad(rows, (0, width - rows.shape[1]))


def cat_padded(parts: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(parts)`` of ``(m_i, d_i)`` parts, each right-padded with zeros to the
    widest: token ids, or flattened sequences, of batches padded to their own longest
    sequence (a padded position holds 0, as a padding token or an absent token would)."""
    width = max(part.shape[1] for part in parts) if parts[0].dim() == 2 else 0
    return torch.cat([pad_columns(part, width) for part in parts])


def max_over_ranks(strategy: Any, values: list[int]) -> list[int]:
    """Each of ``values`` (the same length on every rank) at its largest over all ranks; one
    ``all_gather``, so a collective every rank must call."""
    local = torch.tensor(values, device=strategy.root_device)
    return strategy.all_gather(local).reshape(-1, len(values)).max(dim=0).values.tolist()


def agree_widths(strategy: Any, local: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``local``'s 2-d tensors padded (``pad_columns``) to the widest over all ranks, so
    that their gather sees one width per key. A collective: every rank calls it with the
    same keys."""
    keys = sorted(local)
    widths = [local[k].shape[1] if local[k].dim() == 2 else 0 for k in keys]
    agreed = max_over_ranks(strategy, widths)
    padded = {k: pad_columns(local[k], int(w)) for k, w in zip(keys, agreed, strict=True)}
    return {k: padded[k] for k in local}


def concatenate(
    parts: list[torch.Tensor], device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``cat_padded(parts)`` on ``device``; an empty ``(0,)`` tensor of ``dtype`` if none."""
    if parts:
        return cat_padded(parts).to(device)
    return torch.zeros(0, dtype=dtype or torch.float32, device=device)
