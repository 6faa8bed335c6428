"""Exact COCO keypoint evaluation: instance rescoring, OKS-NMS, result JSON and COCOeval.

Follows MMPose's CocoMetric defaults (score_mode='bbox_keypoint', keypoint_score_thr=0.2,
nms_mode='oks_nms', nms_thr=0.9, use_area=True) so that our numbers match the reference
toolbox. Predictions enter as per-instance arrays in image coordinates; the decoding and flip
test happen upstream.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch.distributed as dist
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mobilevitpose.keypoints import OKS_SIGMAS

STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APm",
    "APl",
    "AR",
    "AR50",
    "AR75",
    "ARm",
    "ARl",
)
PERSON_CATEGORY_ID = 1
_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")


def rescore(
    keypoint_scores: np.ndarray, bbox_scores: np.ndarray, keypoint_score_thr: float = 0.2
) -> np.ndarray:
    """Instance score: bbox_score x mean of the keypoint scores above the threshold (0 if none).

    The mean is taken in the keypoint scores' float dtype, then numpy's promotion with
    `bbox_scores` applies, as in MMPose (float32 in, float32 out).
    """
    keypoint_scores = np.asarray(keypoint_scores)
    bbox_scores = np.asarray(bbox_scores)
    if keypoint_scores.ndim != 2 or bbox_scores.shape != keypoint_scores.shape[:1]:
        raise ValueError(
            f"keypoint_scores must be (N, K) and bbox_scores (N,), got "
            f"{keypoint_scores.shape} and {bbox_scores.shape}"
        )
    dtype = np.result_type(keypoint_scores.dtype, np.float32)
    keypoint_scores = keypoint_scores.astype(dtype, copy=False)
    above = keypoint_scores > keypoint_score_thr
    # MMPose sums the kept scores one keypoint at a time; adding column by column reproduces
    # its rounding bit for bit, so tied and near-tied instances rank as they do there.
    total = np.zeros(len(keypoint_scores), dtype=dtype)
    for k in range(keypoint_scores.shape[1]):
        total += np.where(above[:, k], keypoint_scores[:, k], dtype.type(0))
    count = above.sum(axis=1).astype(dtype)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return bbox_scores * mean


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


def oks_nms(
    keypoints_img: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray = OKS_SIGMAS,
) -> np.ndarray:
    """Greedy OKS-NMS for one image; returns kept indices, highest score first.

    An instance is dropped when its OKS with an already kept one is > thr (equal is kept).
    """
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
    # Ties go to the later instance, as MMPose's `argsort()[::-1]` orders them whenever numpy's
    # default sort keeps equal keys in place; a stable sort makes that deterministic here.
    order = np.argsort(scores, kind="stable")[::-1]
    oks = _pairwise_oks(keypoints_img, areas, sigmas)
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        order = order[1:][oks[best, order[1:]] <= thr]
    return np.asarray(keep, dtype=np.int64)


def _check_lengths(arrays: dict[str, np.ndarray]) -> int:
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
    nms_thr: float | None = 0.9,
    keypoint_score_thr: float = 0.2,
) -> list[dict]:
    """COCO keypoint result entries from per-instance predictions (image coordinates).

    Per image: instances sorted by instance id and de-duplicated on it (first kept), rescored,
    OKS-NMS'd (`nms_thr=None` disables it). `areas` are prod(scale) of the padded,
    aspect-fixed boxes. Images come out in ascending id order, so the output does not depend
    on the order predictions arrive in (e.g. across DDP ranks).
    """
    image_ids = np.asarray(image_ids)
    instance_ids = np.asarray(instance_ids)
    keypoints_img = np.asarray(keypoints_img)
    keypoint_scores = np.asarray(keypoint_scores)
    n = _check_lengths(
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
    scores = rescore(keypoint_scores, bbox_scores, keypoint_score_thr)
    areas = np.asarray(areas)
    # x, y, score per keypoint in the input dtype, so float32 predictions serialise as in MMPose.
    flat_keypoints = np.concatenate([keypoints_img, keypoint_scores[..., None]], axis=-1)
    flat_keypoints = flat_keypoints.reshape(n, -1)

    order = np.lexsort((instance_ids, image_ids))
    same_image = image_ids[order][1:] == image_ids[order][:-1]
    repeated = same_image & (instance_ids[order][1:] == instance_ids[order][:-1])
    order = order[np.concatenate([[True], ~repeated])]
    image_starts = np.flatnonzero(np.diff(image_ids[order])) + 1

    results = []
    for members in np.split(order, image_starts):
        if nms_thr is not None:
            members = members[
                oks_nms(keypoints_img[members], scores[members], areas[members], nms_thr)
            ]
        results.extend(
            {
                "image_id": int(image_ids[i]),
                "category_id": PERSON_CATEGORY_ID,
                "keypoints": flat_keypoints[i].tolist(),
                "score": float(scores[i]),
            }
            for i in members
        )
    return results


def write_results(path: str | os.PathLike, results: list[dict], overwrite: bool = False) -> Path:
    """Write COCO results JSON atomically (temp file + rename); never clobbers unless told."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(results))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class CocoKeypointEvaluator:
    """pycocotools COCOeval (keypoints) against one annotation file, loaded once."""

    def __init__(self, ann_file: str | os.PathLike) -> None:
        self.ann_file = Path(ann_file)
        if not self.ann_file.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.ann_file}")
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco_gt = COCO(str(self.ann_file))
        cats = self.coco_gt.loadCats(self.coco_gt.getCatIds())
        num_keypoints = {len(cat.get("keypoints", ())) for cat in cats} - {0}
        if len(num_keypoints) != 1:
            raise ValueError(
                f"{self.ann_file}: expected one keypoint layout in 'categories', "
                f"got keypoint counts {sorted(num_keypoints)}"
            )
        self.num_keypoints = num_keypoints.pop()

    def _check_results(self, results: Sequence[dict]) -> None:
        known_images = set(self.coco_gt.getImgIds())
        for index, result in enumerate(results):
            missing = [key for key in _RESULT_KEYS if key not in result]
            if missing:
                raise ValueError(f"result {index} lacks {missing}; each needs {_RESULT_KEYS}")
            if len(result["keypoints"]) != 3 * self.num_keypoints:
                raise ValueError(
                    f"result {index}: 'keypoints' must hold {3 * self.num_keypoints} values "
                    f"(x, y, score per keypoint), got {len(result['keypoints'])}"
                )
            if result["image_id"] not in known_images:
                raise ValueError(
                    f"result {index}: image_id {result['image_id']} is not in {self.ann_file}"
                )

    def evaluate(self, results: Sequence[dict]) -> dict[str, float]:
        """The ten COCO keypoint stats (STAT_NAMES); -1.0 where COCO finds no GT in a range."""
        if not results:
            return dict.fromkeys(STAT_NAMES, 0.0)
        self._check_results(results)
        # loadRes writes id/area/bbox into the dicts it gets; keep the caller's results clean.
        detections = [dict(result) for result in results]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco_gt.loadRes(detections)
            coco_eval = COCOeval(self.coco_gt, coco_dt, iouType="keypoints")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats, strict=True)}


def gather_predictions(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All ranks' prediction arrays, concatenated, without the instances padded in twice.

    A DistributedSampler repeats the first samples to even out the ranks; those repeats carry
    an `instance_ids` value seen before and are dropped (first occurrence kept). Returns
    `local` unchanged outside an initialised multi-process group.
    """
    if "instance_ids" not in local:
        raise ValueError(f"predictions need an 'instance_ids' array, got keys {sorted(local)}")
    _check_lengths(local)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    gathered: list[dict[str, np.ndarray] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {key: np.asarray(value) for key, value in local.items()})
    for rank, part in enumerate(gathered):
        if part is None or set(part) != set(local):
            keys = None if part is None else sorted(part)
            raise ValueError(f"rank {rank} sent prediction keys {keys}, expected {sorted(local)}")
    merged = {key: np.concatenate([part[key] for part in gathered]) for key in local}
    _, first = np.unique(merged["instance_ids"], return_index=True)
    keep = np.sort(first)
    return {key: value[keep] for key, value in merged.items()}
