"""Box and crop geometry shared by training, evaluation and inference.

Frames: `*_img` is full-image pixels, `*_input` is the network input crop, `*_hm` is the
heatmap. A crop is described by `center` (cx, cy) and `scale` (sw, sh), both in image pixels;
`scale` is the padded, aspect-fixed box (MMPose's `bbox_scale`, 0.x's `scale * 200`).
Sizes are always (width, height).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BBOX_PADDING = 1.25


def bbox_xywh_to_xyxy(bbox_xywh: np.ndarray) -> np.ndarray:
    bbox = np.asarray(bbox_xywh, dtype=np.float32).copy()
    bbox[..., 2:] += bbox[..., :2]
    return bbox


def bbox_xyxy_to_xywh(bbox_xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) x1, y1, x2, y2 -> x, y, w, h (COCO's box format)."""
    bbox = np.array(bbox_xyxy, dtype=np.float32, copy=True)
    bbox[..., 2:] -= bbox[..., :2]
    return bbox


def bbox_xyxy_to_center_scale(
    bbox_xyxy: np.ndarray, padding: float = BBOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    bbox = np.asarray(bbox_xyxy, dtype=np.float32)
    center = (bbox[..., :2] + bbox[..., 2:]) * 0.5
    scale = (bbox[..., 2:] - bbox[..., :2]) * padding
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow (never shrink) `scale` so that width / height == aspect_ratio (= w_in / h_in)."""
    scale = np.asarray(scale, dtype=np.float32)
    w, h = scale[..., 0], scale[..., 1]
    wider = w > h * aspect_ratio
    return np.stack(
        [np.where(wider, w, h * aspect_ratio), np.where(wider, w / aspect_ratio, h)], axis=-1
    ).astype(np.float32)


def warp_matrix(
    center: np.ndarray,
    scale: np.ndarray,
    rot_deg: float,
    input_size: tuple[int, int],
    udp: bool,
) -> np.ndarray:
    """2x3 affine matrix mapping image pixels to input-crop pixels.

    Normal warp: x_input = (w_in / sw) R(-rot) (x_img - c) + (w_in / 2, h_in / 2), the box edges
    landing on the crop's pixel edges. UDP (unbiased data processing) maps the box edges onto the
    first and last pixel centres instead: per-axis (size_in - 1) / scale and R(+rot), which is
    what makes UDP's flip test and heatmap decoding exactly aligned.
    """
    # Plain floats: this runs twice per training sample, where numpy's per-call cost shows.
    cx, cy = (float(v) for v in center)
    sw, sh = (float(v) for v in scale)
    w_in, h_in = input_size
    theta = math.radians(rot_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    if udp:
        sx, sy = (w_in - 1) / sw, (h_in - 1) / sh
        a, b, c, d = sx * cos, -sx * sin, sy * sin, sy * cos
        out_x, out_y = (w_in - 1) / 2.0, (h_in - 1) / 2.0
        return np.array(
            [[a, b, out_x - a * cx - b * cy], [c, d, out_y - c * cx - d * cy]], dtype=np.float64
        )
    # The reference solves for this matrix from three point pairs held in float32 (the centre,
    # the rotated half-width to its left, a third at 90 degrees). cv2.warpAffine samples at 1/32
    # px, so that rounding moves a few crop pixels by a grey level, enough to tip near-tied
    # heatmap peaks: built the same way, our crops are the reference's to the bit.
    src = np.empty((3, 2), dtype=np.float32)
    src[0] = cx, cy
    src[1] = cx - 0.5 * sw * cos, cy - 0.5 * sw * sin
    dst = np.array([[w_in / 2.0, h_in / 2.0], [0.0, h_in / 2.0], [0.0, 0.0]], dtype=np.float32)
    for points in (src, dst):
        edge = points[0] - points[1]
        points[2] = points[1] + np.array([-edge[1], edge[0]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def input_to_image(
    keypoints_input: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    input_size: tuple[int, int],
) -> np.ndarray:
    """Back-project crop keypoints (..., K, 2) to image pixels for an unrotated crop.

    The same formula serves both codecs because each codec's decode already returns
    input-crop pixels in its own convention (MSRA x4, UDP x (w_in / (W - 1))).
    """
    keypoints_input = np.asarray(keypoints_input, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)[..., None, :]
    scale = np.asarray(scale, dtype=np.float64)[..., None, :]
    size = np.asarray(input_size, dtype=np.float64)
    return keypoints_input / size * scale + center - 0.5 * scale


@dataclass(frozen=True, eq=False)
class Crop:
    """Where the input crop comes from: an aspect-fixed box (image px) turned by `rotation`
    degrees, in the mirrored image when `flipped` (the box then lives in mirrored coordinates).
    """

    center: np.ndarray
    scale: np.ndarray
    rotation: float = 0.0
    flipped: bool = False
    image_width: int = 0  # needed only to mirror

    def __post_init__(self) -> None:
        if self.flipped and self.image_width <= 0:
            raise ValueError(f"a flipped crop needs the image width; got {self.image_width}")

    def keypoint_matrix(self, input_size: tuple[int, int], udp: bool) -> np.ndarray:
        """2x3 matrix from (possibly mirrored) image px to input px, for flipped keypoints."""
        return warp_matrix(self.center, self.scale, self.rotation, input_size, udp)

    def image_matrix(self, input_size: tuple[int, int], udp: bool) -> np.ndarray:
        """2x3 matrix from the original, unmirrored image px to input px (mirror folded in)."""
        matrix = self.keypoint_matrix(input_size, udp)
        if not self.flipped:
            return matrix
        mirror = np.array([[-1.0, 0.0, self.image_width - 1.0], [0.0, 1.0, 0.0], [0, 0, 1]])
        return matrix @ mirror


def val_crop(bbox_xyxy: np.ndarray, input_size: tuple[int, int]) -> Crop:
    """Deterministic crop: padded box, aspect-fixed, no rotation, no flip."""
    center, scale = bbox_xyxy_to_center_scale(bbox_xyxy)
    return Crop(center=center, scale=fix_aspect_ratio(scale, input_size[0] / input_size[1]))
