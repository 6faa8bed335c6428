"""Learning-rate schedules, built per run once the number of steps per epoch is known."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    warmup_iters: int = 500,
    warmup_factor: float = 0.001,
    milestones: tuple[int, ...] = (170, 200),
    gamma: float = 0.1,
) -> ChainedScheduler:
    """The reference schedule, stepped every iteration: linear warm-up over `warmup_iters` from
    `warmup_factor` x lr, then x`gamma` at each epoch in `milestones`."""
    return ChainedScheduler(
        [
            LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_iters),
            MultiStepLR(optimizer, [m * steps_per_epoch for m in milestones], gamma=gamma),
        ]
    )
