"""Exact COCO keypoint evaluation: pycocotools' COCOeval against one annotation file, as
`coco.read_annotations` checked it."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mobilevitpose.coco import CocoAnnotations

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
_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")


class CocoKeypointEvaluator:
    """pycocotools COCOeval (keypoints) against one checked annotation file."""

    def __init__(self, annotations: CocoAnnotations) -> None:
        self.ann_file = annotations.source
        self.coco_gt = COCO()
        # COCOeval marks the ground truth it reads (`ignore`): it gets its own copy.
        self.coco_gt.dataset = copy.deepcopy(annotations.dataset)
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco_gt.createIndex()
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
        self._check_results(results)
        # The reference's COCOeval (xtcocotools) ignores results whose keypoint scores are all
        # <= 0; pycocotools would count them as false positives.
        scored = [r for r in results if max(r["keypoints"][2::3]) > 0]
        if not scored:
            return dict.fromkeys(STAT_NAMES, 0.0)
        # loadRes writes id/area/bbox into the dicts it gets; keep the caller's results clean.
        detections = [dict(result) for result in scored]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self.coco_gt.loadRes(detections)
            coco_eval = COCOeval(self.coco_gt, coco_dt, iouType="keypoints")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats, strict=True)}
