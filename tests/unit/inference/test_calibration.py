"""Calibration crops: the evaluation crop path, a seeded draw, clear errors."""

import numpy as np
import pytest

from mobilevitpose.coco import read_person_boxes
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.image_io import read_image
from mobilevitpose.inference.calibration import annotated_crops, split_crops
from mobilevitpose.inference.estimator import PoseEstimator

CODEC = HeatmapCodec(kind="udp", input_size=(48, 64), heatmap_size=(12, 16), sigma=2.0)


def test_crops_are_the_estimators_crops_of_the_ground_truth_boxes(synthetic_root):
    crops = split_crops(synthetic_root, "val", CODEC, count=None)
    ann_file = synthetic_root / "annotations/person_keypoints_val2017.json"
    boxes = read_person_boxes(ann_file)
    assert len(crops) == len(boxes.image_ids) and crops.crops.shape[1:] == (3, 64, 48)
    assert crops.crops.dtype == np.uint8
    estimator = PoseEstimator(lambda x: x, CODEC, None)  # type: ignore[arg-type]
    first = boxes.image_ids[0]
    name = next(f for f, i in boxes.ids_by_file.items() if i == first)
    image = read_image(synthetic_root / "val2017" / name)
    expected = estimator.crops(image, boxes.boxes_xyxy[boxes.image_ids == first])
    n = len(expected[0])
    np.testing.assert_array_equal(crops.crops[:n], expected[0])
    np.testing.assert_array_equal(crops.centers[:n], expected[1])


def test_a_count_draws_a_seeded_subset(synthetic_root):
    ann_file = synthetic_root / "annotations/person_keypoints_train2017.json"
    a = annotated_crops(ann_file, synthetic_root / "train2017", CODEC, count=5, seed=3)
    b = annotated_crops(ann_file, synthetic_root / "train2017", CODEC, count=5, seed=3)
    c = annotated_crops(ann_file, synthetic_root / "train2017", CODEC, count=5, seed=4)
    assert len(a) == 5
    np.testing.assert_array_equal(a.crops, b.crops)
    assert not np.array_equal(a.centers, c.centers)


def test_bad_sources_are_named(synthetic_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no val annotation file at .*person_keypoints"):
        split_crops(tmp_path, "val", CODEC)
    with pytest.raises(ValueError, match="the crop count must be >= 1"):
        split_crops(synthetic_root, "val", CODEC, count=0)
