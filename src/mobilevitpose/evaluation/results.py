"""COCO keypoint result entries from per-instance predictions in image coordinates.

Follows MMPose's CocoMetric, its score and NMS modes and their defaults
(`settings.EvaluationSettings`), so that our numbers match the reference toolbox. Decoding and
the flip test happen upstream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mobilevitpose.evaluation.nms import oks_nms, soft_oks_nms
from mobilevitpose.evaluation.rescoring import instance_scores
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.keypoints import PERSON_CATEGORY_ID


def check_lengths(arrays: dict[str, np.ndarray]) -> int:
    lengths = {name: len(value) for name, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"prediction arrays must all have N rows, got lengths {lengths}")
    return next(iter(lengths.values()), 0)


def coco_results(
    image_ids: np.ndarray,
    instance_ids: np.ndarray,
    keypoints_img: np.ndarray,
    keypoint_scores: np.ndarray,
    bbox_scores: np.ndarray,
    areas: np.ndarray,
    settings: EvaluationSettings,
    extras: Mapping[str, Sequence[Any]] | None = None,
) -> list[dict]:
    """COCO keypoint result entries from per-instance predictions (image coordinates), each
    with the instance's values of `extras` (e.g. "bbox", "track_id") as further fields.

    Per image: instances sorted by instance id and de-duplicated on it (first kept), scored and
    suppressed as `settings` say (`score_mode`, `nms_mode`). `areas` are prod(scale) of the
    padded, aspect-fixed boxes. Images come out in ascending id order, so the output does
    not depend on the order predictions arrive in (e.g. across DDP ranks).
    """
    image_ids = np.asarray(image_ids)
    instance_ids = np.asarray(instance_ids)
    keypoints_img = np.asarray(keypoints_img)
    keypoint_scores = np.asarray(keypoint_scores)
    n = check_lengths(
        {
            "image_ids": image_ids,
            "instance_ids": instance_ids,
            "keypoints_img": keypoints_img,
            "keypoint_scores": keypoint_scores,
            "bbox_scores": np.asarray(bbox_scores),
            "areas": np.asarray(areas),
        }
    )
    if n == 0:
        return []
    if keypoints_img.ndim != 3 or keypoints_img.shape[2] != 2:
        raise ValueError(f"keypoints_img must be (N, K, 2), got {keypoints_img.shape}")
    if keypoint_scores.shape != keypoints_img.shape[:2]:
        raise ValueError(
            f"keypoint_scores must be {keypoints_img.shape[:2]} to match keypoints_img, "
            f"got {keypoint_scores.shape}"
        )
    scores = instance_scores(
        keypoint_scores, bbox_scores, settings.score_mode, settings.keypoint_score_thr
    )
    areas = np.asarray(areas)
    # x, y, score per keypoint in the input dtype, so float32 predictions serialise as in MMPose.
    flat_keypoints = np.concatenate([keypoints_img, keypoint_scores[..., None]], axis=-1)
    flat_keypoints = flat_keypoints.reshape(n, -1)

    order = np.lexsort((instance_ids, image_ids))
    same_image = image_ids[order][1:] == image_ids[order][:-1]
    repeated = same_image & (instance_ids[order][1:] == instance_ids[order][:-1])
    order = order[np.concatenate([[True], ~repeated])]
    image_starts = np.flatnonzero(np.diff(image_ids[order])) + 1

    results: list[dict] = []
    for members in np.split(order, image_starts):
        if settings.nms_mode != "none":
            nms = oks_nms if settings.nms_mode == "oks_nms" else soft_oks_nms
            kept = nms(keypoints_img[members], scores[members], areas[members], settings.nms_thr)
            members = members[kept]
        results.extend(
            {
                **{name: values[i] for name, values in (extras or {}).items()},
                "image_id": int(image_ids[i]),
                "category_id": PERSON_CATEGORY_ID,
                "keypoints": flat_keypoints[i].tolist(),
                "score": float(scores[i]),
            }
            for i in members
        )
    return results
