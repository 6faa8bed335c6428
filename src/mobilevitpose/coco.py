"""COCO 2017 person-keypoint files: the folder layout, the annotation and person-box files.

The one owner of COCO's file knowledge: the layout (`coco_paths`), the detection file's name,
the reader of annotation files (`read_annotations`, whose checked values training,
validation, evaluation and `mvp-predict` all use) and the reader of person boxes
(`read_person_boxes`) that validation and `mvp-predict` share.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilevitpose.geometry import bbox_xywh_to_xyxy
from mobilevitpose.keypoints import NUM_KEYPOINTS, PERSON_CATEGORY_ID

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
# The detection file shipped with MMPose / HRNet (Faster R-CNN, person AP 56.4 on val2017).
DETECTION_DIR = "person_detection_results"
DETECTION_FILE = f"{DETECTION_DIR}/COCO_val2017_detections_AP_H_56_person.json"
LAYOUT_HINT = (
    "expected the COCO 2017 layout: root/annotations/person_keypoints_{split}2017.json "
    "and root/{split}2017/ holding the images"
)


def coco_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of `split` ("train" or "val") under a COCO 2017 root."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    root = Path(root).expanduser()
    return root / "annotations" / f"person_keypoints_{split}2017.json", root / f"{split}2017"


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from err


def check_fields(entries: Any, fields: tuple[str, ...], what: str, path: Path) -> None:
    if not isinstance(entries, list):
        raise ValueError(f"{path}: '{what}s' must be a list")
    for i, entry in enumerate(entries):
        missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
        if missing:
            name = entry.get("id", f"#{i}") if isinstance(entry, dict) else f"#{i}"
            raise ValueError(f"{path}: {what} {name} lacks {missing} (needs {list(fields)})")


def _numbers(values: Any, entry: str, field: str) -> np.ndarray:
    """A flat float64 array of `values`; an error naming the entry and field unless all are
    finite numbers."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{entry}: {field!r} must hold numbers; got {values!r:.80}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{entry}: {field!r} holds a value that is not finite: {values!r:.80}")
    return array


def _box(values: Any, entry: str) -> tuple[float, float, float, float]:
    box = _numbers(values, entry, "bbox")
    if box.shape != (4,):
        raise ValueError(f"{entry}: 'bbox' must be 4 numbers (x, y, w, h); got {values!r:.80}")
    x, y, w, h = (float(v) for v in box)
    return x, y, w, h


def _whole_number(value: Any, entry: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{entry}: {field!r} must be a whole number; got {value!r:.80}")
    return value


def _checked_values(ann: dict, entry: str) -> dict:
    """`ann` with its numeric fields checked, and numbers given as strings converted once."""
    checked = dict(ann)
    for field, count in (("keypoints", NUM_KEYPOINTS * 3), ("bbox", 4), ("area", 1)):
        if field not in ann:
            continue
        values = _numbers(ann[field], entry, field)
        if field == "keypoints" and values.size != count:
            raise ValueError(
                f"{entry} has {values.size} keypoint values; expected {count} "
                f"({NUM_KEYPOINTS} x (x, y, v))"
            )
        if field == "bbox" and values.shape != (4,):
            raise ValueError(
                f"{entry}: 'bbox' must be 4 numbers (x, y, w, h); got {ann[field]!r:.80}"
            )
        if field == "keypoints" and not np.isin(values[2::3], (0, 1, 2)).all():
            raise ValueError(
                f"{entry}: keypoint visibility must be 0 (not labelled), 1 (occluded) or 2 "
                f"(visible); got {sorted(set(values[2::3].tolist()) - {0.0, 1.0, 2.0})}"
            )
        raw = ann[field] if field != "area" else [ann[field]]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
            converted = values.tolist()
            checked[field] = converted[0] if field == "area" else converted
    return checked


@dataclass(frozen=True, eq=False)
class CocoAnnotations:
    """A checked COCO annotation file: `dataset` is its JSON with every image listed once
    (`id`, `file_name`, `width`, `height`), every annotation id unique and naming a listed
    image, and `keypoints`, `bbox` and `area` finite numbers of the right count (numbers written
    as strings converted), keypoint visibility 0, 1 or 2. Annotations of unlisted images are
    dropped and counted in `dropped`."""

    source: Path
    dataset: dict[str, Any]
    dropped: int = 0

    @property
    def images(self) -> list[dict[str, Any]]:
        return list(self.dataset["images"])

    def annotations_by_image(self) -> dict[int, list[dict[str, Any]]]:
        """image id -> its annotations in file order, for every listed image (in file order)."""
        grouped: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in self.images}
        for ann in self.dataset["annotations"]:
            grouped[ann["image_id"]].append(ann)
        return grouped


def read_annotations(path: str | Path) -> CocoAnnotations:
    """Read and check a COCO annotation file (keypoint or box-only): the one reader of them."""
    path = Path(path).expanduser()
    data = read_json(path, "annotation file")
    if not isinstance(data, dict) or not {"images", "annotations"} <= data.keys():
        raise ValueError(
            f"annotation file {path} is not a COCO annotation file: it needs the "
            "'images' and 'annotations' fields"
        )
    check_fields(data["images"], ("id", "file_name", "width", "height"), "image", path)
    check_fields(data["annotations"], ("id", "image_id"), "annotation", path)
    images: dict[int, dict[str, Any]] = {}
    for image in data["images"]:
        entry = f"image {image['id']!r} in {path}"
        image_id = _whole_number(image["id"], entry, "id")
        if image_id in images:
            raise ValueError(f"{path}: image id {image_id} is listed twice; ids must be unique")
        for field in ("width", "height"):
            if _whole_number(image[field], entry, field) <= 0:
                raise ValueError(f"{entry}: {field!r} must be positive; got {image[field]!r}")
        images[image_id] = image
    annotations, seen, orphans = [], set(), []
    for ann in data["annotations"]:
        entry = f"annotation id {ann['id']!r} in {path}"
        ann_id = _whole_number(ann["id"], entry, "id")
        if ann_id in seen:
            raise ValueError(f"{path}: annotation id {ann_id} occurs twice; ids must be unique")
        seen.add(ann_id)
        if _whole_number(ann["image_id"], entry, "image_id") not in images:
            orphans.append(ann_id)
            continue
        annotations.append(_checked_values(ann, entry))
    if orphans:
        log.warning(
            "%s: dropped %d annotation(s) of images absent from 'images' (ids %s%s)",
            path, len(orphans), orphans[:10], " ..." if len(orphans) > 10 else "",
        )  # fmt: skip
    return CocoAnnotations(path, {**data, "annotations": annotations}, dropped=len(orphans))


def parse_gt_annotation(
    ann: dict, image_size: tuple[int, int], ann_file: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(bbox_xyxy, keypoints, visible) of an annotation (as `read_annotations` checked it) the
    reference uses as a top-down instance, or why it filters the annotation out.

    As MMPose's `parse_data_info` and `_is_valid_instance`: boxes clipped to the image,
    visibility min(1, v), and crowd / keypoint-less / empty-box annotations dropped.
    """
    for field in ("bbox", "keypoints"):
        if field not in ann:
            raise ValueError(f"annotation id {ann.get('id')} in {ann_file} has no {field!r}")
    raw = np.asarray(ann["keypoints"], dtype=np.float32).reshape(NUM_KEYPOINTS, 3)
    keypoints, visible = raw[:, :2], np.minimum(1.0, raw[:, 2])
    # Without a num_keypoints field the reference counts keypoints with a nonzero coordinate.
    num_keypoints = ann.get("num_keypoints", np.count_nonzero(keypoints.max(axis=1)))
    if ann.get("iscrowd", 0):
        return "crowd"
    if num_keypoints == 0 or keypoints.max() <= 0:
        return "no labelled keypoints"
    bbox = _clipped_box(ann, image_size)
    if isinstance(bbox, str):
        return bbox
    return bbox, keypoints, visible.astype(np.float32)


@dataclass(frozen=True, eq=False)
class PersonBoxes:
    """The person boxes of a COCO detection-results or annotation file, as validation takes them.

    `image_ids`, `instance_ids` (N,) int64, `boxes_xyxy` (N, 4) f32 image px, `scores` (N,) f64,
    in file order. A detection file's boxes are all its person detections, unclipped, scored by
    the detector, numbered in file order; an annotation file's are the annotations the
    reference uses as ground-truth instances (`parse_gt_annotation`: clipped, scored 1, by
    annotation id). `ids_by_file` maps file names to image ids, and `sizes` image ids to the
    (width, height) the boxes were clipped to (annotation files only:
    detection results name images by id alone).
    """

    source: Path
    image_ids: np.ndarray
    instance_ids: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    ids_by_file: dict[str, int]
    sizes: dict[int, tuple[int, int]]

    def by_image(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """image id -> (boxes_xyxy (n, 4), scores (n,), instance_ids (n,)) in file order."""
        grouped: dict[int, list[int]] = {}
        for index, image_id in enumerate(self.image_ids.tolist()):
            grouped.setdefault(image_id, []).append(index)
        return {
            k: (self.boxes_xyxy[v], self.scores[v], self.instance_ids[v])
            for k, v in grouped.items()
        }


def read_person_boxes(path: str | Path, detections_only: bool = False) -> PersonBoxes:
    """Person boxes from a COCO detection-results list (`image_id`, `category_id`, xywh `bbox`,
    `score` per entry) or, unless `detections_only`, a COCO annotation file."""
    path = Path(path).expanduser()
    data = read_json(path, "boxes file")
    is_annotation_file = isinstance(data, dict) and {"images", "annotations"} <= data.keys()
    if is_annotation_file and detections_only:
        raise ValueError(
            f"{path} is a COCO annotation file; a detection-results file (a JSON list of "
            "image_id, category_id, bbox, score) is needed here"
        )
    if is_annotation_file:
        return _ground_truth_boxes(read_annotations(path))
    if not isinstance(data, list):
        raise ValueError(
            f"boxes file {path} is neither a COCO detection-results list nor a COCO annotation "
            "file (a dict with 'images' and 'annotations')"
        )
    check_fields(data, ("image_id", "category_id", "bbox", "score"), "detection", path)
    persons = [d for d in data if d["category_id"] == PERSON_CATEGORY_ID]
    for i, det in enumerate(persons):
        entry = f"person detection #{i} (image_id {det['image_id']}) in {path}"
        _box(det["bbox"], entry)
        (score,) = _numbers([det["score"]], entry, "score")
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"{entry}: 'score' must be in [0, 1]; got {det['score']!r}")
    boxes = np.asarray([d["bbox"] for d in persons], dtype=np.float32).reshape(-1, 4)
    return PersonBoxes(
        source=path,
        image_ids=np.asarray([int(d["image_id"]) for d in persons], dtype=np.int64),
        # Numbered before any score threshold, as the reference does.
        instance_ids=np.arange(len(persons), dtype=np.int64),
        boxes_xyxy=bbox_xywh_to_xyxy(boxes),
        scores=np.asarray([float(d["score"]) for d in persons], dtype=np.float64),
        ids_by_file={},
        sizes={},
    )


def _clipped_box(ann: dict, image_size: tuple[int, int]) -> np.ndarray | str:
    """An annotation's xywh box as xyxy clipped to the image, or why it is empty."""
    img_w, img_h = image_size
    x, y, w, h = (float(v) for v in np.asarray(ann["bbox"], dtype=np.float32))
    bbox = np.array(
        [
            np.clip(x, 0, img_w - 1),
            np.clip(y, 0, img_h - 1),
            np.clip(x + w, 0, img_w - 1),
            np.clip(y + h, 0, img_h - 1),
        ],
        dtype=np.float32,
    )
    # The reference tests for an empty box after clipping.
    if bbox[2] - bbox[0] <= 0 or bbox[3] - bbox[1] <= 0:
        return "empty box after clipping to the image"
    return bbox


def _plain_box(ann: dict, image_size: tuple[int, int], path: Path) -> tuple[np.ndarray] | str:
    """The clipped box of a person annotation without keypoints, or why it is skipped."""
    if "bbox" not in ann:
        raise ValueError(f"annotation id {ann.get('id')} in {path} has no 'bbox'")
    if ann.get("iscrowd", 0):
        return "crowd"
    bbox = _clipped_box(ann, image_size)
    return bbox if isinstance(bbox, str) else (bbox,)


def _ground_truth_boxes(annotations: CocoAnnotations) -> PersonBoxes:
    path = annotations.source
    sizes = {int(im["id"]): (int(im["width"]), int(im["height"])) for im in annotations.images}
    image_ids, instance_ids, boxes = [], [], []
    skipped: Counter[str] = Counter()
    for ann in annotations.dataset["annotations"]:
        if ann.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
            continue
        image_id = int(ann["image_id"])
        # A box-only annotation file (e.g. instances_val2017.json) gives its person boxes.
        parsed = (
            parse_gt_annotation(ann, sizes[image_id], path)
            if "keypoints" in ann
            else _plain_box(ann, sizes[image_id], path)
        )
        if isinstance(parsed, str):
            skipped[parsed] += 1
            continue
        image_ids.append(image_id)
        instance_ids.append(int(ann["id"]))
        boxes.append(parsed[0])
    if skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        log.info("%s: %d person boxes; skipped %s", path, len(boxes), reasons)
    return PersonBoxes(
        source=path,
        image_ids=np.asarray(image_ids, dtype=np.int64),
        instance_ids=np.asarray(instance_ids, dtype=np.int64),
        boxes_xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.ones(len(boxes), dtype=np.float64),
        ids_by_file={im["file_name"]: int(im["id"]) for im in annotations.images},
        sizes=sizes,
    )
