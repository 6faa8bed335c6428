"""OKS-based non-maximum suppression over the people predicted in one image: greedy and soft,
as the reference's `oks_nms` and `soft_oks_nms` do."""

from __future__ import annotations

import numpy as np

from mobilevitpose.keypoints import OKS_SIGMAS

# The reference's soft OKS-NMS keeps at most this many instances per image.
SOFT_NMS_MAX_DETS = 20


def _pairwise_oks(keypoints_img: np.ndarray, areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    # pycocotools' COCOeval.computeOks only scores detections against ground truth (and needs
    # them loaded into COCO objects), so prediction-vs-prediction OKS for NMS lives here. Same
    # formula as MMPose's oks_iou: every keypoint counts, the area is the mean of the pair's.
    variances = (sigmas * 2) ** 2
    delta = keypoints_img[:, None, :, :] - keypoints_img[None, :, :, :]
    sq_dist = delta[..., 0] ** 2 + delta[..., 1] ** 2
    mean_area = (areas[:, None] + areas[None, :]) / 2 + np.spacing(1)
    e = sq_dist / variances / mean_area[..., None] / 2
    return np.exp(-e).sum(axis=-1) / keypoints_img.shape[1]


def _checked(
    keypoints_img: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    keypoints_img = np.asarray(keypoints_img)
    scores = np.asarray(scores)
    areas = np.asarray(areas)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    n = len(keypoints_img)
    if keypoints_img.ndim != 3 or keypoints_img.shape[2] != 2:
        raise ValueError(f"keypoints_img must be (N, K, 2), got {keypoints_img.shape}")
    if scores.shape != (n,) or areas.shape != (n,):
        raise ValueError(
            f"scores and areas must be ({n},) to match keypoints_img, got {scores.shape} "
            f"and {areas.shape}"
        )
    if sigmas.shape != keypoints_img.shape[1:2]:
        raise ValueError(
            f"sigmas must have one value per keypoint ({keypoints_img.shape[1]}), "
            f"got shape {sigmas.shape}"
        )
    return keypoints_img, scores, areas, sigmas


def _best_first(scores: np.ndarray) -> np.ndarray:
    # Ties go to the later instance, as MMPose's `argsort()[::-1]` orders them whenever numpy's
    # default sort keeps equal keys in place; a stable sort makes that deterministic here.
    return np.argsort(scores, kind="stable")[::-1]


def oks_nms(
    keypoints_img: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float,
    sigmas: np.ndarray = OKS_SIGMAS,
) -> np.ndarray:
    """Greedy OKS-NMS for one image; returns kept indices, highest score first.

    An instance is dropped when its OKS with an already kept one is > thr (equal is kept).
    """
    keypoints_img, scores, areas, sigmas = _checked(keypoints_img, scores, areas, sigmas)
    order = _best_first(scores)
    oks = _pairwise_oks(keypoints_img, areas, sigmas)
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        order = order[1:][oks[best, order[1:]] <= thr]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(
    keypoints_img: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float,
    sigmas: np.ndarray = OKS_SIGMAS,
    max_dets: int = SOFT_NMS_MAX_DETS,
) -> np.ndarray:
    """Soft OKS-NMS (Gaussian) for one image; returns at most `max_dets` kept indices in the
    order they were picked.

    Each pick decays the scores of the rest by exp(-OKS^2 / thr) with the picked instance, and
    the next pick is the best decayed score. The decayed scores only rank: the caller keeps
    the instances' own scores, as the reference's metric does.
    """
    keypoints_img, scores, areas, sigmas = _checked(keypoints_img, scores, areas, sigmas)
    oks = _pairwise_oks(keypoints_img, areas, sigmas)
    order = _best_first(scores)
    decayed = scores[order].astype(np.float64)
    keep: list[int] = []
    while order.size and len(keep) < max_dets:
        best, order = order[0], order[1:]
        keep.append(best)
        decayed = decayed[1:] * np.exp(-(oks[best, order] ** 2) / thr)
        resort = _best_first(decayed)
        order, decayed = order[resort], decayed[resort]
    return np.asarray(keep, dtype=np.int64)
