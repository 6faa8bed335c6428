import json
import logging

import numpy as np
import pytest

from mobilevitpose.coco import DETECTION_FILE, coco_paths
from mobilevitpose.data.instances import load_detection_instances, load_gt_instances
from mobilevitpose.keypoints import KEYPOINT_NAMES


def _keypoints(value: float = 50.0, v: int = 2) -> list[float]:
    return [value, value, v] * 17


def _write_layout(root, annotations, images=None):
    ann_file, image_dir = coco_paths(root, "val")
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}]
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1}]}
    ann_file.write_text(json.dumps(data))
    return ann_file, image_dir


def _ann(ann_id, **overrides):
    ann = {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
           "bbox": [10, 10, 30, 40], "keypoints": _keypoints()}  # fmt: skip
    ann.update(overrides)
    return ann


def test_coco_paths_layout(tmp_path):
    ann_file, image_dir = coco_paths(tmp_path, "train")
    assert ann_file == tmp_path / "annotations" / "person_keypoints_train2017.json"
    assert image_dir == tmp_path / "train2017"
    with pytest.raises(ValueError, match="split"):
        coco_paths(tmp_path, "test")


def test_coco_sample_counts(coco_sample_root):
    ann_file, image_dir = coco_paths(coco_sample_root, "val")
    gt = load_gt_instances(ann_file, image_dir)
    detections = load_detection_instances(ann_file, image_dir, coco_sample_root / DETECTION_FILE)
    assert len(gt) == 12
    assert len(detections) == 118
    assert len({d.instance_id for d in detections}) == 118
    for inst in gt:
        w, h = inst.image_size
        assert 0 <= inst.bbox_xyxy[0] < inst.bbox_xyxy[2] <= w - 1
        assert 0 <= inst.bbox_xyxy[1] < inst.bbox_xyxy[3] <= h - 1
        assert set(np.unique(inst.keypoints_visible)) <= {0.0, 1.0}
        assert inst.bbox_score == 1.0
    # Detections keep the detector's score and are not clipped to the image.
    raw = json.loads((coco_sample_root / DETECTION_FILE).read_text())
    first = raw[0]
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(detections[0].bbox_xyxy, [x, y, x + w, y + h], rtol=1e-6)
    assert detections[0].bbox_score == pytest.approx(first["score"])
    assert not detections[0].keypoints_visible.any()
    kept = load_detection_instances(
        ann_file, image_dir, coco_sample_root / DETECTION_FILE, score_threshold=0.5
    )
    assert len(kept) == sum(d["score"] >= 0.5 for d in raw) < 118


def test_gt_filters_clipping_and_visibility(tmp_path):
    annotations = [
        _ann(1, bbox=[-5, 20, 200, 30], keypoints=[60, 30, 1, *_keypoints()[3:]]),
        _ann(2, iscrowd=1),
        _ann(3, num_keypoints=0),
        _ann(4, bbox=[10, 10, 0, 40]),
        _ann(5, keypoints=_keypoints(0.0, 0)),
        _ann(6, bbox=[150, 10, 20, 20]),  # entirely right of the image: empty after clipping
    ]
    instances = load_gt_instances(*_write_layout(tmp_path, annotations))
    assert [inst.instance_id for inst in instances] == [1]
    inst = instances[0]
    np.testing.assert_allclose(inst.bbox_xyxy, [0, 20, 99, 50])
    assert inst.keypoints_visible.tolist() == [1.0] * 17
    np.testing.assert_allclose(inst.keypoints_img[0], [60, 30])
    assert inst.image_path.endswith("val2017/a.jpg") and inst.image_size == (100, 80)


def test_detections_for_unknown_images_are_an_error(tmp_path):
    layout = _write_layout(tmp_path, [_ann(1)])
    bbox_file = tmp_path / "dets.json"
    dets = [{"image_id": i, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5} for i in (1, 9)]
    dets.append({"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9})
    bbox_file.write_text(json.dumps(dets))
    with pytest.raises(ValueError, match=r"dets\.json names 1 image id.*\[9\]"):
        load_detection_instances(*layout, bbox_file)
    bbox_file.write_text(json.dumps(dets[:1] + dets[2:]))
    # Only category 1 counts; ids run over the person detections.
    assert [d.instance_id for d in load_detection_instances(*layout, bbox_file)] == [0]
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_detection_instances(*layout, tmp_path / "missing.json")


def test_numbers_written_as_strings_are_converted_once_and_evaluate_as_numbers(tmp_path):
    from mobilevitpose.coco import read_annotations
    from mobilevitpose.evaluation.coco_metric import CocoKeypointEvaluator

    numeric = _ann(1, area=1200)
    as_text = {**numeric, "keypoints": [str(v) for v in numeric["keypoints"]],
               "bbox": [str(v) for v in numeric["bbox"]], "area": "1200"}  # fmt: skip
    ann_file, image_dir = _write_layout(tmp_path, [as_text])
    data = json.loads(ann_file.read_text())
    data["categories"] = [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}]
    ann_file.write_text(json.dumps(data))
    annotations = read_annotations(ann_file)
    (ann,) = annotations.dataset["annotations"]
    assert ann["keypoints"] == [float(v) for v in numeric["keypoints"]]
    assert ann["bbox"] == [10.0, 10.0, 30.0, 40.0] and ann["area"] == 1200.0
    (instance,) = load_gt_instances(ann_file, image_dir)
    np.testing.assert_allclose(instance.keypoints_img, 50.0)
    # The ground truth itself, as a result, is a perfect score, as for a file of numbers.
    result = {"image_id": 1, "category_id": 1, "keypoints": numeric["keypoints"], "score": 1.0}
    assert CocoKeypointEvaluator(annotations).evaluate([result])["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("annotations", "images", "message"),
    [
        ([_ann(1), _ann(1)], None, r"annotation id 1 occurs twice"),
        (
            [_ann(1)],
            [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}] * 2,
            r"image id 1 is listed twice",
        ),
        ([_ann(1, keypoints=[50, 50, -1] * 17)], None, r"annotation id 1 .*visibility.*\[-1\.0\]"),
        ([_ann(1, keypoints=[50, 50, 3] * 17)], None, r"annotation id 1 .*visibility.*\[3\.0\]"),
        ([_ann("1")], None, r"annotation id '1' .*'id' must be a whole number"),
        (
            [_ann(1)],
            [{"id": 1, "file_name": "a.jpg", "width": 0, "height": 80}],
            r"image 1 .*'width' must be positive",
        ),
    ],
)
def test_ids_visibility_and_image_sizes_are_checked_when_the_file_is_read(
    tmp_path, annotations, images, message
):
    with pytest.raises(ValueError, match=message):
        load_gt_instances(*_write_layout(tmp_path, annotations, images))


def test_annotations_of_unlisted_images_are_dropped_and_counted(tmp_path, caplog):
    from mobilevitpose.coco import read_annotations

    ann_file, _ = _write_layout(tmp_path, [_ann(1), _ann(2, image_id=9)])
    with caplog.at_level(logging.WARNING, logger="mobilevitpose.coco"):
        annotations = read_annotations(ann_file)
    assert annotations.dropped == 1
    assert [a["id"] for a in annotations.dataset["annotations"]] == [1]
    assert "dropped 1 annotation(s) of images absent from 'images' (ids [2])" in caplog.text
