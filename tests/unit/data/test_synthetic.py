import dataclasses
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from mobilevitpose.cli import synth
from mobilevitpose.coco import DETECTION_FILE
from mobilevitpose.data.synthetic import (
    KEYPOINT_PARTS,
    MARKER_FILE,
    MIN_AREA,
    MIN_KEYPOINTS,
    OCCLUDER_LABEL,
    Part,
    ensure_dataset,
    generate,
    image_rng,
    render_image,
)
from mobilevitpose.data.synthetic.body import place_people
from mobilevitpose.data.synthetic.render import chest_emblem
from mobilevitpose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

SIZE = (320, 256)
SMALL = {"num_train": 6, "num_val": 4, "image_size": SIZE, "workers": 1}
FILES = (
    "annotations/person_keypoints_train2017.json",
    "annotations/person_keypoints_val2017.json",
    DETECTION_FILE,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "seed0", seed=0, **SMALL)


def _bytes(root: Path) -> list[bytes]:
    return [(root / name).read_bytes() for name in FILES]


def _pixels(xy: np.ndarray) -> tuple[int, int]:
    col, row = np.floor(np.asarray(xy) + 0.5).astype(int)
    return int(row), int(col)


def test_same_seed_is_byte_identical_whatever_the_chunking(dataset, tmp_path):
    again = generate(tmp_path / "again", seed=0, **SMALL)
    assert _bytes(again) == _bytes(dataset)
    other = generate(tmp_path / "seed1", seed=1, **SMALL)
    assert all(a != b for a, b in zip(_bytes(other), _bytes(dataset), strict=True))


def test_parallel_workers_give_the_same_files(dataset, tmp_path):
    parallel = generate(tmp_path / "parallel", seed=0, **{**SMALL, "workers": 2})
    assert _bytes(parallel) == _bytes(dataset)


@pytest.mark.parametrize("split", ["train", "val"])
def test_annotations_are_valid_coco(dataset, split):
    coco = COCO(str(dataset / f"annotations/person_keypoints_{split}2017.json"))
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["id"] == 1 and category["name"] == "person"
    assert category["keypoints"] == list(KEYPOINT_NAMES)
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in SKELETON]
    assert len(coco.getImgIds()) == SMALL[f"num_{split}"]
    assert len(coco.getAnnIds()) > 0
    for image in coco.loadImgs(coco.getImgIds()):
        decoded = cv2.imread(str(dataset / f"{split}2017" / image["file_name"]))
        assert decoded is not None
        assert (decoded.shape[1], decoded.shape[0]) == (image["width"], image["height"]) == SIZE
    for ann in coco.loadAnns(coco.getAnnIds()):
        kpts = np.array(ann["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
        assert len(ann["keypoints"]) == 3 * NUM_KEYPOINTS
        assert set(np.unique(kpts[:, 2])) <= {0, 1, 2}
        assert ann["num_keypoints"] == int(np.count_nonzero(kpts[:, 2])) >= MIN_KEYPOINTS
        assert np.all(kpts[kpts[:, 2] == 0, :2] == 0)
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= SIZE[0] and y + h <= SIZE[1]
        assert MIN_AREA <= ann["area"] <= w * h
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1


def _rendered_val(index: int):
    return render_image(image_rng(0, "val", index), SIZE)


def test_annotations_and_images_are_the_rendered_scenes(dataset):
    coco = COCO(str(dataset / "annotations/person_keypoints_val2017.json"))
    for index, image_id in enumerate(sorted(coco.getImgIds())):
        rendered = _rendered_val(index)
        people = [p for p in rendered.people if p.annotated]
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=image_id)), key=lambda a: a["id"])
        assert len(anns) == len(people)
        for ann, person in zip(anns, people, strict=True):
            kpts = np.array(ann["keypoints"]).reshape(NUM_KEYPOINTS, 3)
            np.testing.assert_array_equal(kpts[:, 2], person.visibility)
            np.testing.assert_allclose(kpts[:, :2], person.keypoints_img, atol=1e-9)
            assert ann["area"] == person.area == np.count_nonzero(rendered.labels == person.label)
        (record,) = coco.loadImgs(image_id)
        decoded = cv2.imread(str(dataset / "val2017" / record["file_name"]))
        # JPEG at quality 90 drops much of the pixel noise: compare smoothed images.
        smooth = [
            cv2.GaussianBlur(im.astype(np.float32), (5, 5), 0) for im in (decoded, rendered.image)
        ]
        assert np.abs(smooth[0] - smooth[1]).mean() < 2.0


@pytest.mark.parametrize("index", range(6))
def test_visibility_flags_agree_with_the_label_buffer(index):
    rendered = render_image(image_rng(0, "train", index), SIZE)
    height, width = rendered.labels.shape
    for person in rendered.people:
        for k in range(NUM_KEYPOINTS):
            x, y = person.keypoints_img[k]
            v = person.visibility[k]
            if v == 0:
                continue
            assert 0 <= x <= width - 1 and 0 <= y <= height - 1
            row, col = _pixels((x, y))
            shows = (
                rendered.labels[row, col] == person.label
                and rendered.parts[row, col] in KEYPOINT_PARTS[k]
            )
            assert shows == (v == 2), (person.label, KEYPOINT_NAMES[k], v)
        bbox = person.bbox_xywh
        if bbox is not None:
            rows, cols = np.nonzero(rendered.labels == person.label)
            assert bbox == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)


def test_unlabelled_keypoints_are_outside_or_turned_away():
    for index in range(6):
        rendered = render_image(image_rng(0, "train", index), SIZE)
        for person in rendered.people:
            labelled = person.visibility > 0
            assert np.all(person.keypoints_img[~labelled] == 0)
            assert not np.any(labelled & person.turned_away)
            assert set(np.flatnonzero(person.turned_away)) <= {0, 1, 2, 3, 4}


def test_scenes_have_truncation_occlusion_and_sides_that_look_alike():
    flags = []
    occluder_hides_a_joint = False
    left_minus_right = []  # red - blue: sides of one colour, as a mirror image needs
    left_parts = [p for p in Part if p.name.startswith("LEFT")]
    right_parts = [p for p in Part if p.name.startswith("RIGHT")]
    for index in range(20):
        rendered = render_image(image_rng(7, "train", index), SIZE)
        image = rendered.image.astype(np.float64)
        for person in rendered.people:
            flags.extend(person.visibility.tolist())
            for k in np.flatnonzero(person.visibility == 1):
                row, col = _pixels(person.keypoints_img[k])
                occluder_hides_a_joint |= bool(rendered.labels[row, col] == OCCLUDER_LABEL)
            mine = rendered.labels == person.label
            left = mine & np.isin(rendered.parts, left_parts)
            right = mine & np.isin(rendered.parts, right_parts)
            if left.sum() > 200 and right.sum() > 200:
                red_blue = image[..., 2] - image[..., 0]
                left_minus_right.append(red_blue[left].mean() - red_blue[right].mean())
    counts = np.bincount(flags, minlength=3) / len(flags)
    assert counts[0] > 0.03 and counts[1] > 0.05 and counts[2] > 0.5, counts
    assert occluder_hides_a_joint
    # No colour marks a side (shading and occlusion still differ person by person).
    assert 0.2 < np.mean(np.array(left_minus_right) > 0) < 0.8


def test_front_and_back_are_told_apart_by_the_face_and_the_chest_emblem():
    person = place_people(np.random.default_rng(3), SIZE, 1)[0]
    front = dataclasses.replace(person, view=np.eye(3))  # the body faces the camera
    back = dataclasses.replace(person, view=np.diag([-1.0, 1.0, -1.0]))  # seen from behind
    assert len(chest_emblem(front)) == 1 and chest_emblem(back) == []
    face = [KEYPOINT_NAMES.index(n) for n in ("nose", "left_eye", "right_eye")]
    assert not front.turned_away()[face].any() and back.turned_away()[face].all()


def test_detection_file_names_existing_images(dataset):
    coco = COCO(str(dataset / "annotations/person_keypoints_val2017.json"))
    detections = json.loads((dataset / DETECTION_FILE).read_text())
    assert detections
    for det in detections:
        assert det["category_id"] == 1
        assert det["image_id"] in coco.imgs
        assert 0 < det["score"] <= 1
        x, y, w, h = det["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SIZE[0] and y + h <= SIZE[1]
    assert any(det["score"] < 0.3 for det in detections)  # false positives / duplicates
    # Every annotated person has a jittered box over it.
    for ann in coco.loadAnns(coco.getAnnIds()):
        boxes = [d["bbox"] for d in detections if d["image_id"] == ann["image_id"]]
        assert max(_iou(ann["bbox"], b) for b in boxes) > 0.5


def _iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_ensure_dataset_generates_once_and_leaves_existing_data_alone(tmp_path, caplog):
    root = tmp_path / "synthetic"
    small = {"num_train": 2, "num_val": 1, "workers": 1}
    assert ensure_dataset(root, seed=0, **small) == root
    before = _bytes(root)
    image = next((root / "train2017").iterdir())
    stamp = image.stat().st_mtime_ns
    with caplog.at_level("WARNING", logger="mobilevitpose.data.synthetic"):
        ensure_dataset(root, seed=0, **small)
        assert not caplog.records
        ensure_dataset(root, seed=3, **small)
    assert _bytes(root) == before
    assert image.stat().st_mtime_ns == stamp
    # Other settings keep the data but say so.
    assert "seed: 0 -> 3" in caplog.text
    # Data of an earlier renderer (other pixels for the same labels) is refused, untouched.
    marker = root / "annotations" / "person_keypoints_val2017.json"
    old = json.loads(marker.read_text())
    del old["info"]["renderer"]
    marker.write_text(json.dumps(old))
    before = _bytes(root)
    with pytest.raises(ValueError, match=r"earlier version .*renderer 1, now 2.*delete it"):
        ensure_dataset(root, seed=0, **small)
    assert _bytes(root) == before


def test_cli_writes_the_layout(tmp_path):
    synth.main([str(tmp_path), "--num-train", "2", "--num-val", "1", "--workers", "1"])
    assert all((tmp_path / name).is_file() for name in FILES)
    assert len(list((tmp_path / "val2017").glob("*.jpg"))) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_train": 0}, "num_train"),
        ({"num_val": -1}, "num_val"),
        ({"image_size": (16, 256)}, "image_size"),
        ({"max_people": 0}, "max_people"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=field):
        generate(tmp_path, **kwargs)
    assert not (tmp_path / "annotations").exists()


# --------------------------------------------------------------------------- folders of others

TINY = {"num_train": 2, "num_val": 1, "workers": 1}
TINY_ARGS = ["--num-train", "2", "--num-val", "1", "--workers", "1"]


def _coco_like(root: Path) -> None:
    """A real COCO download in miniature: its annotation files, images and detections."""
    category = {"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}
    for split, image_id in (("train", 9), ("val", 139)):
        name = f"{image_id:012d}.jpg"  # COCO's names are ours too: nothing may be rendered over
        (root / f"{split}2017").mkdir(parents=True)
        cv2.imwrite(str(root / f"{split}2017" / name), np.full((48, 64, 3), 127, np.uint8))
        dataset = {
            "info": {"description": "COCO 2017 Dataset", "version": "1.0"},
            "images": [{"id": image_id, "file_name": name, "width": 64, "height": 48}],
            "annotations": [],
            "categories": [category],
        }
        (root / "annotations").mkdir(exist_ok=True)
        (root / f"annotations/person_keypoints_{split}2017.json").write_text(json.dumps(dataset))
    (root / DETECTION_FILE).parent.mkdir()
    (root / DETECTION_FILE).write_text("[]")


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        synth.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_refuses_a_coco_folder_and_leaves_every_file_as_it_was(tmp_path, capsys):
    root = tmp_path / "coco"
    _coco_like(root)
    before = _checksums(root)
    message = _refused([str(root), *TINY_ARGS], capsys)
    assert _checksums(root) == before
    assert message.count("\n") == 1 and message.startswith("mvp-synth: error: ")
    assert str(root) in message and "annotations/person_keypoints_train2017.json" in message
    assert "empty or new folder" in message and "delete" not in message.lower()


@pytest.mark.parametrize("user_file", ["notes.txt", "train2017/000000000001.jpg"])
def test_generate_refuses_a_folder_holding_any_file_it_did_not_write(tmp_path, user_file):
    (tmp_path / user_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / user_file).write_bytes(b"mine")
    where = rf"{re.escape(str(tmp_path))}.*{re.escape(user_file)}.*empty or new folder"
    with pytest.raises(FileExistsError, match=where):
        generate(tmp_path, **TINY)
    assert _checksums(tmp_path) == {user_file: hashlib.sha256(b"mine").hexdigest()}


def test_generate_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "data").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=re.escape(f"{tmp_path / 'data'} is a file")):
        generate(tmp_path / "data", **TINY)
    assert (tmp_path / "data").read_bytes() == b"mine"


@pytest.mark.parametrize("folder", ["new/nested", "."])
def test_cli_writes_into_a_new_or_empty_folder_and_marks_it_as_its_own(tmp_path, folder):
    root = tmp_path / folder
    synth.main([str(root), *TINY_ARGS, "--seed", "4"])
    assert all((root / name).is_file() for name in FILES)
    marker = json.loads((root / MARKER_FILE).read_text())
    assert marker["seed"] == 4 and marker["num_train"] == 2


@pytest.mark.parametrize("with_marker", [True, False], ids=["marked", "made_before_the_marker"])
def test_cli_renders_over_its_own_earlier_dataset(tmp_path, with_marker):
    generate(tmp_path, seed=0, **TINY)
    if not with_marker:
        (tmp_path / MARKER_FILE).unlink()  # known by its annotation files' `info` alone
    synth.main([str(tmp_path), *TINY_ARGS, "--seed", "1"])
    assert _bytes(tmp_path) == _bytes(generate(tmp_path / "fresh", seed=1, **TINY))
    assert json.loads((tmp_path / MARKER_FILE).read_text())["seed"] == 1


def test_ensure_dataset_finishes_its_own_interrupted_run(tmp_path):
    generate(tmp_path, seed=0, **TINY)
    for name in FILES[1:]:  # killed before the val split's files were written
        (tmp_path / name).unlink()
    assert ensure_dataset(tmp_path, seed=0, **TINY) == tmp_path
    assert _bytes(tmp_path) == _bytes(generate(tmp_path / "fresh", seed=0, **TINY))


def test_ensure_dataset_reads_a_coco_layout_it_did_not_write_as_it_is(tmp_path, caplog):
    _coco_like(tmp_path)
    before = _checksums(tmp_path)
    with caplog.at_level("INFO", logger="mobilevitpose.data.synthetic"):
        assert ensure_dataset(tmp_path, seed=0, **TINY) == tmp_path
    assert _checksums(tmp_path) == before
    assert "did not write" in caplog.text and "used as it is" in caplog.text
    assert "delete" not in caplog.text.lower()


@pytest.mark.parametrize("user_file", ["notes.txt", "annotations/person_keypoints_val2017.json"])
def test_ensure_dataset_refuses_a_folder_of_other_files_without_writing(tmp_path, user_file):
    (tmp_path / user_file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / user_file).write_text("{}")
    with pytest.raises(FileExistsError) as error:
        ensure_dataset(tmp_path, seed=0, **TINY)
    message = str(error.value)
    assert str(tmp_path) in message and user_file in message
    assert "empty or new folder" in message and "complete COCO 2017 layout" in message
    assert "delete" not in message.lower()
    assert _checksums(tmp_path) == {user_file: hashlib.sha256(b"{}").hexdigest()}
