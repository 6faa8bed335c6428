"""The reference toolbox's default weight initialisation, shared by the heads and Lite-HRNet."""

from __future__ import annotations

from torch import nn


def normal_init_(module: nn.Module, std: float = 0.001) -> None:
    """Normal(`std`) weights and zero biases for every (transposed) convolution of `module`,
    unit-scale zero-shift BatchNorms: MMPose's default for heads and Lite-HRNet. Near-zero
    initial heatmaps keep the first MSE steps from being dominated by noise."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
