"""A top-down pose network: timm backbone + heatmap head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from mobilevitpose.backbone import TimmBackbone


class PoseModel(nn.Module):
    """Crop (B, 3, h_in, w_in) -> heatmaps (B, K, h_in / 4, w_in / 4).

    `head` is a partial (Hydra `_partial_: true`) that still needs the backbone's output width
    and stride, which only the built backbone knows.
    """

    def __init__(
        self,
        backbone: TimmBackbone,
        head: Callable[..., nn.Module],
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        name: str = "pose_model",
    ) -> None:
        super().__init__()
        self.name = name
        # Kept with the network (not applied by it) so that predict and export know what the
        # weights expect without the training config.
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if any(i != 4 * h for i, h in zip(self.input_size, self.heatmap_size, strict=True)):
            raise ValueError(
                f"{name}: heatmap_size {list(self.heatmap_size)} must be input_size "
                f"{list(self.input_size)} / 4"
            )
        self.backbone = backbone
        self.head = head(in_channels=backbone.out_channels, in_reduction=backbone.reduction)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
