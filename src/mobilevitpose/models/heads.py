"""Heatmap heads: backbone feature map -> one heatmap per keypoint at 1/4 input resolution.

Every head takes `in_channels` and `in_reduction` from the backbone's feature_info and checks
that it lands on `out_reduction` (4 by default), so a head/backbone mismatch fails at build time
instead of producing heatmaps of the wrong size. The pose model reads `out_reduction` to derive
its heatmap size.
"""

from __future__ import annotations

from torch import Tensor, nn

from mobilevitpose.keypoints import NUM_KEYPOINTS
from mobilevitpose.models.init import normal_init_


def _check_stride(head: str, in_reduction: int, upsample: float, out_reduction: int) -> None:
    if in_reduction / upsample != out_reduction:
        raise ValueError(
            f"{head}: backbone features at stride {in_reduction} upsampled x{upsample:g} give "
            f"stride {in_reduction / upsample:g}, but heatmaps must be at stride {out_reduction}"
        )


class HeatmapHead(nn.Module):
    """Backbone features -> one heatmap per keypoint at `out_reduction` x the input's stride."""

    out_reduction: int

    def __init__(self, out_reduction: int) -> None:
        super().__init__()
        self.out_reduction = out_reduction


class DeconvHead(HeatmapHead):
    """SimpleBaseline head (MMPose `TopdownHeatmapSimpleHead`), the paper's head.

    N x [ConvTranspose2d(k=4, s=2, p=1, no bias), BN, ReLU] then a 1x1 conv to K heatmaps.
    """

    def __init__(
        self,
        in_channels: int,
        in_reduction: int,
        num_keypoints: int = NUM_KEYPOINTS,
        num_deconv: int = 3,
        deconv_channels: int = 256,
        out_reduction: int = 4,
    ) -> None:
        super().__init__(out_reduction)
        _check_stride("DeconvHead", in_reduction, 2**num_deconv, out_reduction)
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        self.deconv = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, num_keypoints, 1)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.final(self.deconv(x))


class SimpleHead(HeatmapHead):
    """The paper's equation (6), ViTPose's simple decoder: ReLU -> bilinear upsample -> 3x3 conv.

    The upsampling factor is whatever takes the backbone stride to `out_reduction` (x4 for a
    stride-16 ViT, x8 for MobileViT's stride 32).
    """

    def __init__(
        self,
        in_channels: int,
        in_reduction: int,
        num_keypoints: int = NUM_KEYPOINTS,
        out_reduction: int = 4,
    ) -> None:
        super().__init__(out_reduction)
        factor = in_reduction / out_reduction
        if factor < 1 or factor != int(factor):
            _check_stride("SimpleHead", in_reduction, max(int(factor), 1), out_reduction)
        self.act = nn.ReLU()
        self.upsample = nn.Upsample(scale_factor=int(factor), mode="bilinear", align_corners=False)
        self.final = nn.Conv2d(in_channels, num_keypoints, 3, padding=1)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.final(self.upsample(self.act(x)))


class ConvHead(HeatmapHead):
    """HRNet-style head: a 1x1 conv on a feature map that is already at stride 4."""

    def __init__(
        self,
        in_channels: int,
        in_reduction: int,
        num_keypoints: int = NUM_KEYPOINTS,
        out_reduction: int = 4,
    ) -> None:
        super().__init__(out_reduction)
        _check_stride("ConvHead", in_reduction, 1, out_reduction)
        self.final = nn.Conv2d(in_channels, num_keypoints, 1)
        normal_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.final(x)
