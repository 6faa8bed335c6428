"""Learning-rate schedules, built per run once the number of steps per epoch is known."""

from __future__ import annotations

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

    A milestone at or past `max_epochs` would never be reached, so the rate would not drop as
    the config says: refused (`max_epochs` None or negative: an open-ended run, not checked).
    """
    late = [m for m in milestones if max_epochs is not None and max_epochs >= 0 and m >= max_epochs]
    if late:
        raise ValueError(
            f"scheduler.milestones {list(milestones)}: {late} at or past trainer.max_epochs="
            f"{max_epochs}, so the learning rate would never drop there; give milestones below "
            "max_epochs (or [] for none)"
        )
    return ChainedScheduler(
        [
            LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_iters),
            MultiStepLR(optimizer, [m * steps_per_epoch for m in milestones], gamma=gamma),
        ]
    )
