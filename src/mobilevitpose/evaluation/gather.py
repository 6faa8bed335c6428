"""Predictions of every DDP rank gathered for one COCO evaluation."""

from __future__ import annotations

from typing import cast

import numpy as np
import torch.distributed as dist

from mobilevitpose.distributed import world_size
from mobilevitpose.evaluation.results import check_lengths


def gather_predictions(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All ranks' prediction arrays, concatenated, without the instances padded in twice.

    A DistributedSampler repeats the first samples to even out the ranks; those repeats carry
    an `instance_ids` value seen before and are dropped (first occurrence kept). Returns
    `local` unchanged outside an initialised multi-process group.
    """
    if "instance_ids" not in local:
        raise ValueError(f"predictions need an 'instance_ids' array, got keys {sorted(local)}")
    check_lengths(local)
    if world_size() == 1:
        return local
    gathered: list[dict[str, np.ndarray] | None] = [None] * world_size()
    dist.all_gather_object(gathered, {key: np.asarray(value) for key, value in local.items()})
    for rank, part in enumerate(gathered):
        if part is None or set(part) != set(local):
            keys = None if part is None else sorted(part)
            raise ValueError(f"rank {rank} sent prediction keys {keys}, expected {sorted(local)}")
    parts = cast("list[dict[str, np.ndarray]]", gathered)  # no None left: checked above
    merged = {key: np.concatenate([part[key] for part in parts]) for key in local}
    _, first = np.unique(merged["instance_ids"], return_index=True)
    keep = np.sort(first)
    return {key: value[keep] for key, value in merged.items()}
