import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from mobilevitpose.coco import read_person_boxes
from mobilevitpose.data.image_io import ImageReadError
from mobilevitpose.inference.sources import (
    check_boxes_match,
    coco_image_id,
    image_ids,
    list_images,
    open_video,
    read_each_image,
    read_video,
)


def _write_image(path, value=0, size=(8, 6)):
    image = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    image[0, 0] = (value + 1) % 256, 2, 3  # not flat: catches a channel swap
    assert cv2.imwrite(str(path), image)
    return image


def _annotation_file(path, names_to_ids):
    images = [{"id": i, "file_name": n, "width": 8, "height": 6} for n, i in names_to_ids.items()]
    annotations = [{"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [1, 1, 4, 3]}
                   for i in names_to_ids.values()]  # fmt: skip
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return read_person_boxes(path)


def _detection_file(path, ids):
    detections = [{"image_id": i, "category_id": 1, "bbox": [1, 1, 4, 3], "score": 0.9}
                  for i in ids]  # fmt: skip
    path.write_text(json.dumps(detections))
    return read_person_boxes(path)


# --- listing and ids ------------------------------------------------------------------------


def test_list_images_sorted_images_only_any_case(tmp_path):
    for name in ("b.png", "a.JPG", "c.jpeg", "notes.txt", "d.mp4", "e.tiff"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.jpeg", "e.tiff"]


def test_list_images_of_a_folder_without_images_names_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(
        FileNotFoundError, match=rf"no images .*\.jpg.* in folder {re.escape(str(tmp_path))}$"
    ):
        list_images(tmp_path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("000000000785.jpg", 785), ("12.png", 12), ("img_785.jpg", None), ("785b.jpg", None)],
)
def test_coco_image_id_from_file_name(name, expected):
    assert coco_image_id(Path(name)) == expected


def test_ids_without_boxes_are_coco_ids_when_every_name_is_a_number():
    files = [Path("000000000785.jpg"), Path("000000000139.jpg")]
    assert image_ids(files, None) == [785, 139]


def test_ids_without_boxes_are_positions_when_a_name_is_not_a_number():
    files = [Path("000000000785.jpg"), Path("holiday.jpg"), Path("7.jpg")]
    assert image_ids(files, None) == [1, 2, 3]


def test_ids_from_an_annotation_file_follow_its_file_names(tmp_path):
    boxes = _annotation_file(tmp_path / "ann.json", {"holiday.jpg": 42, "000000000001.jpg": 7})
    files = [Path("000000000001.jpg"), Path("holiday.jpg")]
    # The annotation file's ids win over the COCO-style name (which would say 1).
    assert image_ids(files, boxes) == [7, 42]


def test_image_missing_from_the_annotation_file_names_both(tmp_path):
    boxes = _annotation_file(tmp_path / "ann.json", {"holiday.jpg": 42})
    with pytest.raises(ValueError, match=r"image .*other\.jpg is not listed .* .*ann\.json"):
        image_ids([Path("holiday.jpg"), Path("folder/other.jpg")], boxes)


def test_ids_with_a_detection_file_come_from_coco_names(tmp_path):
    boxes = _detection_file(tmp_path / "dets.json", [785, 139])
    files = [Path("000000000785.jpg"), Path("000000000139.jpg")]
    assert image_ids(files, boxes) == [785, 139]


def test_detection_file_with_non_coco_names_says_how_to_fix_it(tmp_path):
    boxes = _detection_file(tmp_path / "dets.json", [785])
    with pytest.raises(ValueError) as err:
        image_ids([Path("000000000785.jpg"), Path("holiday.jpg")], boxes)
    message = str(err.value)
    assert "holiday.jpg" in message and str(tmp_path / "dets.json") in message
    assert "COCO annotation file" in message


@pytest.mark.parametrize("with_boxes", [False, True])
def test_two_files_with_one_id_are_refused(tmp_path, with_boxes):
    boxes = _detection_file(tmp_path / "dets.json", [1]) if with_boxes else None
    with pytest.raises(ValueError, match="same image id"):
        image_ids([Path("1.jpg"), Path("0001.png")], boxes)


# --- boxes for images that are not inputs ---------------------------------------------------


def test_boxes_of_known_images_pass():
    check_boxes_match({3, 5}, Path("dets.json"), [1, 3, 5, 7], "4 input images")
    check_boxes_match(set(), Path("dets.json"), [1], "1 input images")


def test_boxes_of_unknown_images_are_refused_naming_them():
    with pytest.raises(ValueError) as err:
        check_boxes_match({3, 9, 8}, Path("d/dets.json"), [1, 3], "2 input images")
    message = str(err.value)
    assert message.startswith("d/dets.json has boxes for 2 image id(s)")
    assert "not among the 2 input images: [8, 9];" in message
    assert "..." not in message


def test_many_unknown_images_are_listed_up_to_ten():
    with pytest.raises(ValueError) as err:
        check_boxes_match(range(100, 112), Path("dets.json"), [0], "5 video frames")
    message = str(err.value)
    assert "12 image id(s)" in message and "5 video frames" in message
    assert f"{list(range(100, 110))} ..." in message and "110" not in message


# --- reading --------------------------------------------------------------------------------


def test_read_each_image_yields_frames_with_their_ids_and_pixels(tmp_path):
    first = _write_image(tmp_path / "a.png", 10)
    second = _write_image(tmp_path / "b.png", 200, size=(5, 9))
    frames = list(read_each_image([tmp_path / "a.png", tmp_path / "b.png"], [7, 3]))
    assert [(f.image_id, f.file_name) for f in frames] == [(7, "a.png"), (3, "b.png")]
    np.testing.assert_array_equal(frames[0].image_bgr, first)
    np.testing.assert_array_equal(frames[1].image_bgr, second)
    assert frames[1].image_bgr.shape == (9, 5, 3)


def test_read_each_image_reports_a_corrupt_file_by_name(tmp_path):
    _write_image(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    good, bad = read_each_image([tmp_path / "good.png", tmp_path / "bad.jpg"], [1, 2])
    assert good.file_name == "good.png"
    assert isinstance(bad.error, ImageReadError) and "bad.jpg" in str(bad.error)


def test_read_each_image_needs_one_id_per_file(tmp_path):
    _write_image(tmp_path / "a.png")
    with pytest.raises(ValueError):
        list(read_each_image([tmp_path / "a.png"], [1, 2]))


# --- video ----------------------------------------------------------------------------------

GREYS = (20, 80, 140, 200, 250)


@pytest.fixture
def video(tmp_path):
    """A 5-frame 32x24 video at 12 fps, each frame one flat grey level."""
    for fourcc, suffix in (("MJPG", ".avi"), ("mp4v", ".mp4")):
        path = tmp_path / f"clip{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 12.0, (32, 24))
        if writer.isOpened():
            break
    else:
        pytest.skip("OpenCV cannot write MJPG or mp4v video here")
    for grey in GREYS:
        writer.write(np.full((24, 32, 3), grey, dtype=np.uint8))
    writer.release()
    return path


def test_video_frames_are_numbered_from_zero(video):
    capture, count, fps = open_video(video)
    try:
        frames = list(read_video(capture, "clip"))
    finally:
        capture.release()
    assert count == len(GREYS)
    assert fps == pytest.approx(12.0)
    assert [f.image_id for f in frames] == [0, 1, 2, 3, 4]
    assert [f.file_name for f in frames] == [f"clip_{i:06d}.jpg" for i in range(5)]
    assert all(f.image_bgr.shape == (24, 32, 3) for f in frames)
    # Lossy codec: the grey levels survive to a few units, in order.
    np.testing.assert_allclose([f.image_bgr.mean() for f in frames], GREYS, atol=6)


def test_video_that_cannot_be_opened_is_named(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=re.escape(f"cannot open video {broken}")):
        open_video(broken)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(ValueError, match=re.escape(f"cannot open video {missing}")):
        open_video(missing)


def test_a_name_of_non_ascii_digits_is_no_coco_id():
    from mobilevitpose.inference.sources import coco_image_id

    assert coco_image_id(Path("²³.jpg")) is None
    assert coco_image_id(Path("000000000785.jpg")) == 785
