"""The reference toolbox's own CocoMetric test cases (MMPose 1.x,
tests/test_evaluation/test_metrics/test_coco_metric.py), re-created on the same four COCO
val2017 images (../shared/data/coco_sample): our rescoring, NMS and COCOeval must give its
numbers."""

import json

import numpy as np
import pytest

from mobilevitpose.coco import read_annotations
from mobilevitpose.evaluation.coco_metric import STAT_NAMES, CocoKeypointEvaluator
from mobilevitpose.evaluation.results import coco_results
from mobilevitpose.evaluation.settings import EvaluationSettings

PERFECT = dict.fromkeys(STAT_NAMES, 1.0)


def _predictions(annotations, scale=(1.0, 1.0, 1.0), bbox_score=1.0, id_offset=0) -> dict:
    """What the reference's tests feed its metric: each annotation as a prediction, its
    visibility flags as keypoint scores, the 1.25-padded box as the NMS area; coordinates and
    scores scaled (float32, as there)."""
    keypoints = np.array([a["keypoints"] for a in annotations], np.float32).reshape(-1, 17, 3)
    keypoints *= np.array(scale, np.float32)
    boxes = np.array([a["bbox"] for a in annotations], np.float64)
    return {
        "image_ids": np.array([a["image_id"] for a in annotations]),
        "instance_ids": np.array([a["id"] + id_offset for a in annotations]),
        "keypoints_img": keypoints[..., :2],
        "keypoint_scores": keypoints[..., 2],
        "bbox_scores": np.full(len(annotations), bbox_score, np.float32),
        "areas": boxes[:, 2] * 1.25 * boxes[:, 3] * 1.25,
    }


@pytest.fixture(scope="module")
def ann_file(coco_sample_root):
    return coco_sample_root / "annotations" / "person_keypoints_val2017.json"


@pytest.fixture(scope="module")
def annotations(ann_file):
    return json.loads(ann_file.read_text())["annotations"]


@pytest.mark.parametrize(
    ("score_mode", "nms_mode"),
    [("bbox", "none"), ("bbox_keypoint", "oks_nms"), ("bbox_rle", "soft_oks_nms")],
)
def test_ground_truth_as_predictions_scores_one(ann_file, annotations, score_mode, nms_mode):
    # Two annotations have no labelled keypoint, so all-zero scores: the reference's COCOeval
    # ignores such results, where pycocotools alone would count false positives (AP 0.894).
    settings = EvaluationSettings(score_mode=score_mode, nms_mode=nms_mode)
    results = coco_results(**_predictions(annotations), settings=settings)
    assert CocoKeypointEvaluator(read_annotations(ann_file)).evaluate(results) == PERFECT


PERTURBED = {
    "bbox_keypoint": (0.5287458745874587, 0.9042904290429042, 0.5009900990099009,
                      0.42475247524752474, 0.6219554455445544, 0.5833333333333333,
                      0.9166666666666666, 0.5833333333333334, 0.44000000000000006,
                      0.6857142857142857),
    "bbox_rle": (0.5004950495049505, 0.8836633663366337, 0.4679867986798679,
                 0.42475247524752474, 0.5814108910891089, 0.5833333333333333,
                 0.9166666666666666, 0.5833333333333334, 0.44000000000000006,
                 0.6857142857142857),
}  # fmt: skip


@pytest.mark.parametrize("score_mode", sorted(PERTURBED))
def test_perturbed_predictions_give_the_references_numbers(ann_file, annotations, score_mode):
    predictions = _predictions(annotations, scale=(0.98, 1.02, 0.8), bbox_score=0.98)
    settings = EvaluationSettings(score_mode=score_mode)
    metrics = CocoKeypointEvaluator(read_annotations(ann_file)).evaluate(
        coco_results(**predictions, settings=settings)
    )
    assert list(metrics.values()) == pytest.approx(PERTURBED[score_mode], abs=1e-9)


def test_soft_oks_nms_of_duplicated_people_gives_the_references_numbers(ann_file, annotations):
    # Each person twice, drifting apart and losing score with the annotation's position.
    first, second = [], []
    for i, ann in enumerate(annotations):
        f = i / 100
        first.append(_predictions([ann], scale=(1 - f, 1 + f, 1 - f)))
        second.append(
            _predictions([ann], scale=(1 + f, 1 - f, 1 - 2 * f), bbox_score=1 - 2 * f, id_offset=1)
        )
    predictions = {
        key: np.concatenate([p[key] for pair in zip(first, second, strict=True) for p in pair])
        for key in first[0]
    }
    settings = EvaluationSettings(nms_mode="soft_oks_nms")
    metrics = CocoKeypointEvaluator(read_annotations(ann_file)).evaluate(
        coco_results(**predictions, settings=settings)
    )
    expected = (0.17073707370737073, 0.25055005500550054, 0.10671067106710669, 0.0,
                0.29315181518151806, 0.2416666666666666, 0.3333333333333333, 0.16666666666666666,
                0.0, 0.41428571428571426)  # fmt: skip
    assert list(metrics.values()) == pytest.approx(expected, abs=1e-9)
