"""Test-time flip: heatmaps of a crop averaged with the flipped-back heatmaps of its mirror.

The one flip-test implementation that validation, `mvp-eval` and `mvp-predict` share; it works
on numpy arrays (ONNX Runtime) and torch tensors (any device) alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from mobilevitpose.keypoints import FLIP_INDICES

HeatmapArray = TypeVar("HeatmapArray", np.ndarray, torch.Tensor)


def flip_test(
    network: Callable[[HeatmapArray], HeatmapArray],
    crops: HeatmapArray,
    flip_indices: Sequence[int],
    shift: bool,
) -> HeatmapArray:
    """Heatmaps of (N, 3, h, w) crops averaged with the flipped-back heatmaps of the mirrored
    crops, as the reference's flip test does (before decoding; scores come from the mean).
    Works on numpy arrays and torch tensors alike."""
    if isinstance(crops, torch.Tensor):
        mirrored = crops.flip(-1)
    else:
        mirrored = np.ascontiguousarray(crops[..., ::-1])
    flipped_back = flip_heatmaps(network(mirrored), flip_indices, shift=shift)
    return (network(crops) + flipped_back) * 0.5


def flip_heatmaps(heatmaps: HeatmapArray, flip_indices: Sequence[int], shift: bool) -> HeatmapArray:
    """Map heatmaps of a mirrored crop back onto the original crop, for the flip test.

    Mirrors the W axis, swaps left/right channels (axis -3) by ``flip_indices`` and, with
    ``shift``, moves the maps one pixel right (column 0 kept): MSRA heatmap pixels are not
    mirror-symmetric about the crop centre, UDP ones are. Works on numpy arrays and torch tensors
    (any device) of shape (..., K, H, W) and returns the same type.
    """
    if heatmaps.ndim < 3 or heatmaps.shape[-3] != len(flip_indices):
        raise ValueError(
            f"heatmaps must be (..., K, H, W) with K = len(flip_indices) = {len(flip_indices)}; "
            f"got shape {tuple(heatmaps.shape)}"
        )
    if isinstance(heatmaps, torch.Tensor):
        index = torch.as_tensor(flip_indices, dtype=torch.long, device=heatmaps.device)
        flipped = heatmaps.flip(-1).index_select(-3, index)
        if shift:
            flipped = torch.cat((flipped[..., :1], flipped[..., :-1]), dim=-1)
        return flipped
    flipped = np.asarray(heatmaps)[..., list(flip_indices), :, ::-1]
    if shift:
        flipped = np.concatenate((flipped[..., :1], flipped[..., :-1]), axis=-1)
    return np.ascontiguousarray(flipped)


def predict_heatmaps(
    network: Callable[[HeatmapArray], HeatmapArray],
    crops: HeatmapArray,
    flip_test_on: bool,
    shift: bool,
    flip_indices: Sequence[int] = FLIP_INDICES,
) -> HeatmapArray:
    """The network's heatmaps of `crops`, flip-tested when `flip_test_on` (validation, mvp-eval
    and mvp-predict all predict through here)."""
    if not flip_test_on:
        return network(crops)
    return flip_test(network, crops, flip_indices, shift=shift)
