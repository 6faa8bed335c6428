"""Skeletons drawn on images, in the paper's Fig. 4 style: left limbs and right limbs in two
colours, the centre line in a third, keypoints under a score threshold hidden."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mobilevitpose.keypoints import SKELETON, side_of

# BGR, as OpenCV draws: left orange, right blue, centre green.
SIDE_COLOURS = {"left": (0, 128, 255), "right": (255, 128, 0), "center": (0, 255, 0)}
BOX_COLOUR = (255, 255, 255)


def _limb_side(a: int, b: int) -> str:
    sides = {side_of(a), side_of(b)}
    return sides.pop() if len(sides) == 1 else "center"


def draw_skeleton(
    image_bgr: np.ndarray,
    keypoints_img: np.ndarray,
    scores: np.ndarray,
    score_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one or more people ((K, 2) or (N, K, 2) keypoints) on a copy of `image_bgr`."""
    canvas = image_bgr.copy()
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    keypoints_img = np.asarray(keypoints_img, dtype=np.float64).reshape(*scores.shape, 2)
    size = max(canvas.shape[:2])
    radius = radius or max(2, size // 160)
    thickness = thickness or max(1, size // 240)
    for person, person_scores in zip(keypoints_img, scores, strict=True):
        shown = person_scores > score_thr
        pixels = [tuple(p) for p in np.rint(person).astype(int).tolist()]
        for a, b in SKELETON:
            if shown[a] and shown[b]:
                colour = SIDE_COLOURS[_limb_side(a, b)]
                cv2.line(canvas, pixels[a], pixels[b], colour, thickness, cv2.LINE_AA)
        for k in np.flatnonzero(shown).tolist():
            cv2.circle(canvas, pixels[k], radius, SIDE_COLOURS[side_of(k)], -1, cv2.LINE_AA)
    return canvas


def draw_boxes(
    image_bgr: np.ndarray, boxes_xywh: np.ndarray, labels: Sequence[int | None] | None = None
) -> np.ndarray:
    """Person boxes (N, 4) xywh in image px on a copy of `image_bgr`, each with its label (a
    track id) where it has one."""
    canvas = image_bgr.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for index, (x, y, w, h) in enumerate(np.asarray(boxes_xywh, dtype=np.float64)):
        corner, opposite = (round(x), round(y)), (round(x + w), round(y + h))
        cv2.rectangle(canvas, corner, opposite, BOX_COLOUR, thickness)
        label = None if labels is None else labels[index]
        if label is not None:
            origin = (corner[0] + 2 * thickness, corner[1] + 12 * thickness)
            cv2.putText(canvas, f"id {label}", origin, cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thickness, BOX_COLOUR, thickness)  # fmt: skip
    return canvas
