"""The bad-input matrix (README, "Bad input"): each case gives a clear error naming the file,
field or value, or a documented, counted skip."""

import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from mobilevitpose.coco import coco_paths
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.instances import load_detection_instances, load_gt_instances
from mobilevitpose.training.config import build_model

CODEC = HeatmapCodec(kind="udp", input_size=(64, 64), heatmap_size=(16, 16), sigma=1.0)


def _ann(ann_id: int, **overrides) -> dict:
    ann = {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
           "bbox": [10, 10, 60, 50], "keypoints": [40, 30, 2] * 17}  # fmt: skip
    return {**ann, **overrides}


@pytest.fixture()
def layout(tmp_path) -> dict:
    """A one-image COCO val layout with a real JPEG; cases break one thing in it."""
    ann_file, image_dir = coco_paths(tmp_path, "val")
    ann_file.parent.mkdir(parents=True)
    image_dir.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    cv2.imwrite(str(image_dir / "a.jpg"), pixels)
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
            "annotations": [_ann(1)], "categories": [{"id": 1}]}  # fmt: skip
    return {"root": tmp_path, "ann_file": ann_file, "image_dir": image_dir, "data": data}


def _write(layout: dict) -> None:
    layout["ann_file"].write_text(json.dumps(layout["data"]))


def _first_item(layout: dict, skip: bool = False) -> dict:
    _write(layout)
    instances = load_gt_instances(layout["ann_file"], layout["image_dir"])
    return TopDownDataset(instances, CODEC, train=False, skip_bad_images=skip)[0]


def test_missing_annotation_file_names_path_and_layout(layout):
    with pytest.raises(FileNotFoundError, match=r"person_keypoints_val2017\.json.*COCO 2017"):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


def test_missing_image_folder_names_path_and_layout(layout):
    _write(layout)
    shutil.rmtree(layout["image_dir"])
    with pytest.raises(FileNotFoundError, match=r"val2017.*root/\{split\}2017"):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


def test_missing_image_names_the_file(layout):
    (layout["image_dir"] / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"a\.jpg"):
        _first_item(layout)


def test_truncated_jpeg_names_the_file(layout):
    image = layout["image_dir"] / "a.jpg"
    # The tail cut off. OpenCV 5 refuses it; OpenCV 4 decodes it with grey bottom rows and a
    # warning only, which our end-marker check catches.
    image.write_bytes(image.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"a\.jpg( is a truncated JPEG| \(corrupt)"):
        _first_item(layout)


def test_non_image_file_names_the_file(layout):
    (layout["image_dir"] / "a.jpg").write_text("<html>a web page saved as a.jpg</html>")
    with pytest.raises(ValueError, match=r"cannot decode image file .*a\.jpg"):
        _first_item(layout)


def test_unreadable_images_can_be_skipped_with_a_warning_and_a_count(layout):
    layout["data"]["images"].append({"id": 2, "file_name": "b.jpg", "width": 100, "height": 80})
    layout["data"]["annotations"].append(_ann(2, image_id=2))
    (layout["image_dir"] / "b.jpg").write_bytes(b"\xff\xd8 broken")
    _write(layout)
    instances = load_gt_instances(layout["ann_file"], layout["image_dir"])
    dataset = TopDownDataset(instances, CODEC, train=False, skip_bad_images=True)
    with pytest.warns(UserWarning, match=r"b\.jpg"):
        item = dataset[1]
    assert item["instance_id"].item() == 1 and dataset.num_skipped == 1


def test_annotation_file_that_is_not_json_names_the_file(layout):
    layout["ann_file"].write_bytes(b"\x89PNG not json")
    with pytest.raises(ValueError, match=r"person_keypoints_val2017\.json is not valid JSON"):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


@pytest.mark.parametrize(
    ("where", "field", "message"),
    [
        ("images", "file_name", r"image 1 lacks \['file_name'\]"),
        ("images", "width", r"image 1 lacks \['width'\]"),
        ("annotations", "image_id", r"annotation 1 lacks \['image_id'\]"),
        ("annotations", "keypoints", r"annotation id 1 .* has no 'keypoints'"),
        ("annotations", "bbox", r"annotation id 1 .* has no 'bbox'"),
    ],
)
def test_missing_keys_name_the_entry_and_the_field(layout, where, field, message):
    del layout["data"][where][0][field]
    _write(layout)
    with pytest.raises(ValueError, match=message):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


def test_wrong_keypoint_count_names_the_annotation_id(layout):
    layout["data"]["annotations"].append(_ann(4242, keypoints=[1, 2, 2] * 16))
    _write(layout)
    with pytest.raises(ValueError, match=r"annotation id 4242 .* 48 keypoint values; expected 51"):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


def test_zero_area_negative_and_invisible_instances_are_filtered_and_counted(layout, caplog):
    layout["data"]["annotations"] += [
        _ann(2, bbox=[10, 10, 0, 40]),  # zero width
        _ann(3, bbox=[50, 50, -20, -10]),  # negative size
        _ann(4, keypoints=[0, 0, 0] * 17, num_keypoints=0),  # no keypoint labelled
        _ann(5, iscrowd=1),
    ]
    _write(layout)
    with caplog.at_level(logging.INFO, logger="mobilevitpose.data.instances"):
        instances = load_gt_instances(layout["ann_file"], layout["image_dir"])
    assert [i.instance_id for i in instances] == [1]
    assert "1 person instances; filtered out 1 crowd, 2 empty box" in caplog.text
    assert "1 no labelled keypoints" in caplog.text


def test_detection_file_naming_unknown_images_is_an_error(layout):
    _write(layout)
    bbox_file = layout["root"] / "dets.json"
    bbox_file.write_text(json.dumps([{"image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4],
                                      "score": 0.5}]))  # fmt: skip
    with pytest.raises(ValueError, match=r"dets\.json names 1 image id.*\[9\]"):
        load_detection_instances(layout["ann_file"], layout["image_dir"], bbox_file)


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"xxxl.*available: .*mobilevitpose_s.*vgg16"):
        build_model("mobilevitpose_xxxl")


def test_an_init_file_that_is_not_a_weight_file_names_it(tmp_path):
    bad = tmp_path / "weights.safetensors"
    bad.write_text("not weights")
    with pytest.raises(ValueError, match=r"weights\.safetensors"):
        build_model("mobilevitpose_xxs", [f"init.file={bad}"], init="imagenet")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("keypoints", ["x"] * 51, r"annotation id 7 .*'keypoints' must hold numbers"),
        ("keypoints", [40, 30, 2] * 16 + [float("nan")] * 3, r"annotation id 7 .*not finite"),
        ("bbox", [10, float("nan"), 60, 50], r"annotation id 7 .*'bbox' holds a value that is not"),
        ("bbox", [10, 10, 60], r"annotation id 7 .*'bbox' must be 4 numbers"),
    ],
)
def test_annotation_values_that_are_not_finite_numbers_are_named_when_loaded(
    layout, field, value, message
):
    layout["data"]["annotations"].append(_ann(7, **{field: value}))
    _write(layout)
    with pytest.raises(ValueError, match=message):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ({"bbox": [1, 2, float("nan"), 4]}, r"detection #0 \(image_id 1\).*not finite"),
        ({"score": 1.5}, r"detection #0 \(image_id 1\).*'score' must be in \[0, 1\]; got 1\.5"),
        ({"score": -0.1}, r"'score' must be in \[0, 1\]; got -0\.1"),
        ({"bbox": "1 2 3 4"}, r"'bbox' must hold numbers"),
    ],
)
def test_detection_values_out_of_range_are_named(layout, detection, message):
    _write(layout)
    bbox_file = layout["root"] / "dets.json"
    good = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.5}
    bbox_file.write_text(json.dumps([{**good, **detection}]))
    with pytest.raises(ValueError, match=message):
        load_detection_instances(layout["ann_file"], layout["image_dir"], bbox_file)


def test_an_annotation_file_is_no_detection_file(layout):
    _write(layout)
    with pytest.raises(ValueError, match=r"is a COCO annotation file; a detection-results file"):
        load_detection_instances(layout["ann_file"], layout["image_dir"], layout["ann_file"])


def test_an_annotation_files_boxes_are_the_ground_truth_instances_validation_uses(layout):
    from mobilevitpose.coco import read_person_boxes

    layout["data"]["annotations"] += [
        _ann(2, bbox=[50, 40, 80, 80]),  # clipped to the 100x80 image
        _ann(3, keypoints=[0, 0, 0] * 17, num_keypoints=0),  # no keypoint: not an instance
        _ann(4, iscrowd=1),
    ]
    _write(layout)
    boxes = read_person_boxes(layout["ann_file"])
    instances = load_gt_instances(layout["ann_file"], layout["image_dir"])
    assert boxes.instance_ids.tolist() == [i.instance_id for i in instances] == [1, 2]
    np.testing.assert_array_equal(boxes.boxes_xyxy, np.stack([i.bbox_xyxy for i in instances]))
    assert boxes.boxes_xyxy[1].tolist() == [50, 40, 99, 79]


def test_a_box_only_annotation_file_gives_its_person_boxes(layout):
    from mobilevitpose.coco import read_person_boxes

    # Like instances_val2017.json: person boxes without keypoints; crowd and empty ones skipped.
    layout["data"]["annotations"] = [
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [10, 10, 200, 50]},
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 1},
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [120, 10, 20, 20]},
        {"id": 8, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]},
    ]
    _write(layout)
    boxes = read_person_boxes(layout["ann_file"])
    assert boxes.instance_ids.tolist() == [5]
    assert boxes.boxes_xyxy.tolist() == [[10, 10, 99, 60]]


def test_an_image_record_whose_size_disagrees_with_the_file_is_named_when_loaded(layout):
    layout["data"]["images"][0]["width"] = 120
    _write(layout)
    with pytest.raises(
        ValueError, match=r"a\.jpg is 100x80 px but its 'width' and 'height' say 120x80"
    ):
        load_gt_instances(layout["ann_file"], layout["image_dir"])


def test_the_size_check_reads_an_exif_rotated_image_as_it_decodes(layout):
    from PIL import Image

    image = Image.fromarray(np.zeros((80, 100, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: decoded 80 wide, 100 high
    image.save(layout["image_dir"] / "a.jpg", exif=exif.tobytes())
    layout["data"]["images"][0].update(width=80, height=100)
    _write(layout)
    assert len(load_gt_instances(layout["ann_file"], layout["image_dir"])) == 1
