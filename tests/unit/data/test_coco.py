import json

import numpy as np
import pytest

from mobilevitpose.data.coco import DETECTION_FILE, coco_paths
from mobilevitpose.data.instances import load_detection_instances, load_gt_instances


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
