"""The heatmap loss."""

from __future__ import annotations

import torch
from torch import Tensor


def keypoint_mse_loss(heatmaps: Tensor, targets: Tensor, keypoint_weights: Tensor) -> Tensor:
    """MMPose's KeypointMSELoss with target weights: mean of w * (pred - gt)^2, no 0.5 factor.

    Computed in fp32 whatever the autocast dtype: squared errors of ~1e-3 heatmap values
    underflow in fp16.
    """
    with torch.autocast(device_type=heatmaps.device.type, enabled=False):
        weights = keypoint_weights.float()[:, :, None, None]
        return ((heatmaps.float() - targets.float()) ** 2 * weights).mean()
