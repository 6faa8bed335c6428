"""COCO-17 person keypoint metadata: names, flip pairs, skeleton, OKS sigmas, category id.

Everything downstream (flip augmentation, flip test, OKS-NMS, rendering, ONNX metadata) reads
these constants, so there is exactly one definition of the keypoint order.
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# The COCO category these keypoints belong to (annotations, detections and results carry it).
PERSON_CATEGORY_ID = 1


def _flip_indices(names: tuple[str, ...]) -> tuple[int, ...]:
    # Derived from the names (as MMPose derives them from its `swap` entries) so the table
    # cannot drift from KEYPOINT_NAMES.
    def mirror(name: str) -> str:
        if name.startswith("left_"):
            return "right_" + name[5:]
        if name.startswith("right_"):
            return "left_" + name[6:]
        return name

    return tuple(names.index(mirror(n)) for n in names)


FLIP_INDICES: tuple[int, ...] = _flip_indices(KEYPOINT_NAMES)

UPPER_BODY_IDS: tuple[int, ...] = tuple(range(11))
LOWER_BODY_IDS: tuple[int, ...] = tuple(range(11, 17))

# COCO skeleton as 0-based index pairs (pycocotools ships it 1-based in the category record).
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# Per-keypoint OKS sigmas, identical to pycocotools' COCOeval defaults.
OKS_SIGMAS: np.ndarray = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
     0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089],
    dtype=np.float64,
)  # fmt: skip


def side_of(index: int) -> str:
    """'left', 'right' or 'center' for a keypoint index (used for left/right colours)."""
    name = KEYPOINT_NAMES[index]
    return name.split("_", 1)[0] if "_" in name else "center"
