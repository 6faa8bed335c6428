"""One training step outside Lightning's loop: for `mvp-bench-train`, the tests and the smoke
pre-training. Its forward is the LightningModule's own (`PoseLitModule.training_loss`), so what
these time or check is the step `mvp-train` runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # for the annotation only: the smoke pre-training needs no Lightning module
    from mobilevitpose.training.module import PoseLitModule


def backward_and_step(
    optimizer: torch.optim.Optimizer,
    loss: Tensor,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Gradients of `loss`, then one optimizer step (through `scaler` for fp16)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def train_step(
    module: PoseLitModule,
    batch: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Tensor:
    """One step of `module` on `batch` (already on the module's device); returns the loss.

    `autocast_dtype` wraps the forward as Lightning's mixed-precision plugins do
    (`trainer.precision=bf16-mixed` / `16-mixed`).
    """
    enabled = autocast_dtype is not None
    with torch.autocast(module.device.type, dtype=autocast_dtype, enabled=enabled):
        loss = module.training_loss(batch)
    backward_and_step(optimizer, loss, scaler)
    return loss.detach()
