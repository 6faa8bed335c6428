"""A top-down pose network: timm backbone + heatmap head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from mobilevitpose.backbone import TimmBackbone


def normalise_images(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 RGB crops (B, 3, h, w), as the datasets deliver them, -> float32
    (x / 255 - mean) / std. It runs on the device after the batch arrives (as the reference's
    data preprocessor does): a quarter of the bytes between processes and no float work in the
    loader workers."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 RGB (B, 3, h, w); got {images.dtype} {tuple(images.shape)}"
        )
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


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
        # Kept with the network but applied outside `forward` (`normalise`, on the uint8
        # batches the data pipeline delivers), so that predict and export know what the weights
        # expect without the training config.
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

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 RGB crops (B, 3, h, w) -> the normalised float input `forward` takes."""
        return normalise_images(images, self.mean, self.std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
