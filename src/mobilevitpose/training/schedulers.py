"""Learning-rate schedules, built per run once the number of steps per epoch is known."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    *,
    steps_per_epoch: int,
    max_epochs: int | None,
    warmup_iters: int,
    warmup_factor: float,
    milestones: Sequence[int],
    gamma: float,
) -> ChainedScheduler:
    """The reference schedule, stepped every iteration: linear warm-up over `warmup_iters` from
    `warmup_factor` x lr, then x`gamma` at each epoch in `milestones`.

    A milestone at or past `max_epochs` is never reached, so the rate does not drop as the
    config says: warned about, not refused, since a shortened run (`debug=limit`,
    `fast_dev_run`) of a longer recipe is what one wants at times (`max_epochs` None or
    negative: an open-ended run, not checked).
    """
    late = [m for m in milestones if max_epochs is not None and max_epochs >= 0 and m >= max_epochs]
    if late:
        warnings.warn(
            f"scheduler.milestones {list(milestones)}: {late} at or past trainer.max_epochs="
            f"{max_epochs}, so the learning rate never drops there; give milestones below "
            "max_epochs (or [] for none) if this run is meant to decay",
            UserWarning,
            stacklevel=2,
        )
    return ChainedScheduler(
        [
            LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_iters),
            MultiStepLR(optimizer, [m * steps_per_epoch for m in milestones], gamma=gamma),
        ]
    )
