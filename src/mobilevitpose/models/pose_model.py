"""A top-down pose network: timm backbone + heatmap head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from mobilevitpose.models.backbone import TimmBackbone
from mobilevitpose.models.heads import HeatmapHead


def pixel_affine(mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    """(gain, bias), each (1, 3, 1, 1) float32, with x * gain + bias == (x / 255 - mean) / std:
    one multiply-add per pixel instead of four passes."""
    std_t = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std_t)).float(), (-mean_t / std_t).float()


def _apply_affine(images: Tensor, gain: Tensor, bias: Tensor) -> Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 RGB (B, 3, h, w); got {images.dtype} {tuple(images.shape)}"
        )
    return images.to(gain.dtype) * gain + bias


def normalise_images(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 RGB crops (B, 3, h, w), as the datasets deliver them, -> float32
    (x / 255 - mean) / std, on the images' device."""
    gain, bias = pixel_affine(mean, std)
    return _apply_affine(images, gain.to(images.device), bias.to(images.device))


class PoseModel(nn.Module):
    """Normalised float crop (B, 3, h_in, w_in) -> heatmaps (B, K, h_in / s, w_in / s) at the
    head's output stride s (4); `normalise` turns the data pipeline's uint8 crops into that input.

    `head` is a partial (Hydra `_partial_: true`) that still needs the backbone's output width
    and stride, which only the built backbone knows. `heatmap_size` follows from `input_size`
    and the head's stride; `mean`/`std` default to the backbone's pretrained config.
    """

    pixel_gain: Tensor  # buffers, registered in __init__
    pixel_bias: Tensor

    def __init__(
        self,
        backbone: TimmBackbone,
        head: Callable[..., HeatmapHead],
        input_size: Sequence[int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "pose_model",
    ) -> None:
        super().__init__()
        self.name = name
        self.backbone = backbone
        self.head = head(in_channels=backbone.out_channels, in_reduction=backbone.reduction)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        multiple = backbone.input_multiple
        if any(size % multiple for size in self.input_size):
            fit = [max(multiple, round(size / multiple) * multiple) for size in self.input_size]
            raise ValueError(
                f"{name}: model.input_size {list(self.input_size)} (w, h) must be multiples of "
                f"{multiple}, the stride of backbone {backbone.name!r}; e.g. "
                f"model.input_size=[{fit[0]},{fit[1]}]"
            )
        stride = self.head.out_reduction
        self.heatmap_size = (self.input_size[0] // stride, self.input_size[1] // stride)
        # Kept with the network but applied outside `forward` (`normalise`, on the uint8
        # batches the data pipeline delivers), so that predict and export know what the weights
        # expect without the training config. By default what the backbone's pretrained
        # weights expect (timm's pretrained_cfg), the same for plain and ImageNet inits.
        mean = backbone.mean if mean is None else mean
        std = backbone.std if std is None else std
        if mean is None or std is None:
            raise ValueError(
                f"{name}: timm has no pixel normalisation for backbone {backbone.name!r}; "
                "set model.mean and model.std (RGB, 0-1 scale)"
            )
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        # Buffers follow the model to its device and dtype (so `16-true` precision works, and
        # no host-to-device copy per batch); not saved, as mean/std define them.
        gain, bias = pixel_affine(self.mean, self.std)
        self.register_buffer("pixel_gain", gain, persistent=False)
        self.register_buffer("pixel_bias", bias, persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        """uint8 RGB crops (B, 3, h, w) -> the normalised input `forward` takes, on the model's
        device and in its dtype. Done there, not in the loader workers (as MMPose's data
        preprocessor does): a quarter of the bytes cross between processes."""
        return _apply_affine(images, self.pixel_gain, self.pixel_bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))
