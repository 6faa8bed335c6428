"""Training augmentation: random crop geometry done on coordinates (one affine warp per sample
at the end), and photometric jitter.

The train recipe follows the reference pipeline's order (GetBBoxCenterScale -> RandomFlip ->
RandomHalfBody -> RandomBBoxTransform -> TopdownAffine). The horizontal flip is folded into the
warp matrix instead of mirroring the image: mirroring is an exact pixel permutation
(x -> img_w - 1 - x), so warping the original image with (warp o mirror) gives the same crop
for a fraction of the work. Keypoints are flipped the reference's way (reordered by
FLIP_INDICES, x -> img_w - 1 - x) and then mapped by the same warp.

The recipes themselves are configs (`conf/augment/`: `paper`, the authors' MMPose 0.x settings,
and `mmpose1x`, MMPose 1.x's defaults).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import albumentations as A
import numpy as np

from mobilevitpose.geometry import Crop, bbox_xyxy_to_center_scale, fix_aspect_ratio
from mobilevitpose.keypoints import FLIP_INDICES, LOWER_BODY_IDS, UPPER_BODY_IDS

HALF_BODY_PADDING = 1.5


@dataclass(frozen=True)
class AugmentRecipe:
    """Random crop geometry. `style` picks the toolbox version whose rules are followed.

    "0.x": scale = clip(N * scale_factor + 1, 1 -+ scale_factor), rotation = clip(N *
    rotate_factor, +-2 rotate_factor), shift = U(-1, 1) * shift_factor, all on the aspect-fixed
    box; half-body on > 8 visible keypoints, upper set when a standard normal draw is < 0.5.
    "1.x": one standard normal truncated to [-1, 1] per quantity, shift on the box before the
    aspect fix; half-body on >= 9 visible keypoints, upper set preferred with probability 0.7.
    """

    style: Literal["0.x", "1.x"]
    shift_factor: float
    shift_prob: float
    scale_factor: float
    rotate_factor: float
    rotate_prob: float
    flip_prob: float
    half_body_prob: float

    def __post_init__(self) -> None:
        if self.style not in ("0.x", "1.x"):
            raise ValueError(f"recipe style must be '0.x' or '1.x'; got {self.style!r}")
        probs = ("shift_prob", "rotate_prob", "flip_prob", "half_body_prob")
        for name in probs:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"recipe {name} must be in [0, 1]; got {value}")
        if not 0.0 <= self.scale_factor < 1.0:
            raise ValueError(f"recipe scale_factor must be in [0, 1); got {self.scale_factor}")


def truncated_normal(rng: np.random.Generator, size: int, bound: float = 1.0) -> np.ndarray:
    """Standard normal samples restricted to [-bound, bound], by rejection (scipy-free)."""
    out = np.empty(size, dtype=np.float64)
    filled = 0
    while filled < size:
        draw = rng.standard_normal(2 * (size - filled))
        kept = draw[np.abs(draw) <= bound][: size - filled]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


def flip_keypoints(
    keypoints: np.ndarray, keypoints_visible: np.ndarray, image_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints (K, 2) horizontally: reorder left/right, then x -> img_w - 1 - x."""
    index = list(FLIP_INDICES)
    flipped = np.array(keypoints, dtype=np.float32)[index]
    flipped[:, 0] = image_width - 1 - flipped[:, 0]
    return flipped, np.asarray(keypoints_visible, dtype=np.float32)[index]


def _box_of(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = points.mean(axis=0)
    extent = points.max(axis=0) - points.min(axis=0)
    return center.astype(np.float32), extent.astype(np.float32)


def half_body_box(
    keypoints: np.ndarray,
    keypoints_visible: np.ndarray,
    recipe: AugmentRecipe,
    rng: np.random.Generator,
    aspect_ratio: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(center, scale) of the upper or lower body, or None when the transform does not apply."""
    visible = np.asarray(keypoints_visible) > 0
    upper = [i for i in UPPER_BODY_IDS if visible[i]]
    lower = [i for i in LOWER_BODY_IDS if visible[i]]
    if recipe.style == "0.x":
        if not (visible.sum() > 8 and rng.random() < recipe.half_body_prob):
            return None
        # 0.x draws a standard normal here (not a uniform), so "upper" wins ~69% of the time.
        if rng.standard_normal() < 0.5 and len(upper) > 2:
            selected = upper
        elif len(lower) > 2:
            selected = lower
        else:
            selected = upper
        if len(selected) < 2:
            return None
        center, extent = _box_of(keypoints[selected])
        return center, fix_aspect_ratio(extent, aspect_ratio) * HALF_BODY_PADDING
    if visible.sum() < 9 or rng.random() > recipe.half_body_prob:
        return None
    prefer_upper = rng.random() < 0.7
    if len(upper) < 2 and len(lower) < 3:
        return None
    if len(lower) < 3:
        selected = upper
    elif len(upper) < 2:
        selected = lower
    else:
        selected = upper if prefer_upper else lower
    center, extent = _box_of(keypoints[selected])
    return center, extent * HALF_BODY_PADDING


def random_box_transform(
    center: np.ndarray, scale: np.ndarray, recipe: AugmentRecipe, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Random shift, scale and rotation of a box: (center, scale, rotation in degrees)."""
    if recipe.style == "1.x":
        unit = truncated_normal(rng, 4)
        shift_unit, scale_unit, rotate_unit = unit[:2], unit[2], unit[3]
    else:
        shift_unit = rng.uniform(-1.0, 1.0, size=2)
        scale_unit = min(max(rng.standard_normal(), -1.0), 1.0)
        rotate_unit = min(max(rng.standard_normal(), -2.0), 2.0)
    if rng.random() < recipe.shift_prob:
        center = center + shift_unit * recipe.shift_factor * scale
    scale = scale * (1.0 + scale_unit * recipe.scale_factor)
    rotation = rotate_unit * recipe.rotate_factor if rng.random() < recipe.rotate_prob else 0.0
    return center.astype(np.float32), scale.astype(np.float32), float(rotation)


def train_crop(
    bbox_xyxy: np.ndarray,
    keypoints_img: np.ndarray,
    keypoints_visible: np.ndarray,
    image_width: int,
    input_size: tuple[int, int],
    recipe: AugmentRecipe,
    rng: np.random.Generator,
) -> tuple[Crop, np.ndarray, np.ndarray]:
    """Random crop plus the keypoints (K, 2) and visibility (K,) in the crop's image frame
    (mirrored and left/right-swapped when the crop is flipped)."""
    aspect_ratio = input_size[0] / input_size[1]
    center, scale = bbox_xyxy_to_center_scale(bbox_xyxy)
    if recipe.style == "0.x":
        # 0.x fixed the aspect ratio before any augmentation; its centre shift uses that box.
        scale = fix_aspect_ratio(scale, aspect_ratio)
    keypoints = np.asarray(keypoints_img, dtype=np.float32)
    visible = np.asarray(keypoints_visible, dtype=np.float32)
    flipped = bool(rng.random() < recipe.flip_prob)
    if flipped:
        keypoints, visible = flip_keypoints(keypoints, visible, image_width)
        center = np.array([image_width - 1 - center[0], center[1]], dtype=np.float32)
    half_body = half_body_box(keypoints, visible, recipe, rng, aspect_ratio)
    if half_body is not None:
        center, scale = half_body
    center, scale, rotation = random_box_transform(center, scale, recipe, rng)
    crop = Crop(
        center=center,
        scale=fix_aspect_ratio(scale, aspect_ratio),
        rotation=rotation,
        flipped=flipped,
        image_width=image_width,
    )
    return crop, keypoints, visible


class Photometric:
    """Colour and blur augmentation of an RGB uint8 crop through albumentations.

    The set is RTMPose's photometric part (HSV jitter with hue 5 / saturation 30 / value 30,
    Blur p 0.1, MedianBlur p 0.1); the paper's recipe uses none. Randomness comes from the
    caller's generator, so a sample's augmentation is reproducible.
    """

    def __init__(self) -> None:
        self.transform = A.Compose(
            [
                A.HueSaturationValue(
                    hue_shift_limit=5, sat_shift_limit=30, val_shift_limit=30, p=1.0
                ),
                A.Blur(p=0.1),
                A.MedianBlur(p=0.1),
            ]
        )

    def __call__(self, image_rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seed = int(rng.integers(2**31))
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return self.transform(image=image_rgb)["image"]
