"""Instance scores of top-down predictions, as the reference's CocoMetric computes them."""

from __future__ import annotations

import numpy as np

from mobilevitpose.evaluation.settings import SCORE_MODES


def instance_scores(
    keypoint_scores: np.ndarray,
    bbox_scores: np.ndarray,
    score_mode: str,
    keypoint_score_thr: float,
) -> np.ndarray:
    """One score per instance from (N, K) keypoint scores and (N,) box scores (`score_mode`:
    see `EvaluationSettings`).

    Computed in the keypoint scores' float dtype, then numpy's promotion with `bbox_scores`
    applies, as in MMPose (float32 in, float32 out).
    """
    keypoint_scores = np.asarray(keypoint_scores)
    bbox_scores = np.asarray(bbox_scores)
    if keypoint_scores.ndim != 2 or bbox_scores.shape != keypoint_scores.shape[:1]:
        raise ValueError(
            f"keypoint_scores must be (N, K) and bbox_scores (N,), got "
            f"{keypoint_scores.shape} and {bbox_scores.shape}"
        )
    if score_mode not in SCORE_MODES:
        raise ValueError(f"score_mode={score_mode!r}; allowed: {', '.join(SCORE_MODES)}")
    dtype = np.result_type(keypoint_scores.dtype, np.float32)
    keypoint_scores = keypoint_scores.astype(dtype, copy=False)
    if score_mode == "bbox":
        return bbox_scores
    if score_mode == "keypoint":
        return keypoint_scores.mean(axis=1)
    if score_mode == "bbox_rle":
        return bbox_scores + keypoint_scores.mean(axis=1) + keypoint_scores.max(axis=1)
    above = keypoint_scores > keypoint_score_thr
    # MMPose sums the kept scores one keypoint at a time; adding column by column reproduces
    # its rounding bit for bit, so tied and near-tied instances rank as they do there.
    total = np.zeros(len(keypoint_scores), dtype=dtype)
    for k in range(keypoint_scores.shape[1]):
        total += np.where(above[:, k], keypoint_scores[:, k], dtype.type(0))
    count = above.sum(axis=1).astype(dtype)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return bbox_scores * mean
