"""COCO 2017 person-keypoint files: the folder layout, JSON files and person-box files.

The one owner of COCO's file knowledge: the layout (`coco_paths`), the detection file's name,
and the reader of person boxes (`read_person_boxes`) that validation and `mvp-predict` share.
Reading annotations into person instances (with pycocotools) is `instances`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilevitpose.geometry import bbox_xywh_to_xyxy
from mobilevitpose.keypoints import PERSON_CATEGORY_ID

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


@dataclass(frozen=True, eq=False)
class PersonBoxes:
    """The person boxes of a COCO detection-results file or annotation file, in file order.

    `image_ids` (N,), `boxes_xyxy` (N, 4) f32 image px (unclipped), `scores` (N,) f64 as the
    file gives them (1 for an annotation file's boxes); `ids_by_file` maps file names to image
    ids (annotation files only: detection results name images by id alone).
    """

    source: Path
    image_ids: np.ndarray
    boxes_xyxy: np.ndarray
    scores: np.ndarray
    ids_by_file: dict[str, int]

    def by_image(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """image id -> (boxes_xyxy (n, 4), scores (n,)) in file order."""
        grouped: dict[int, list[int]] = {}
        for index, image_id in enumerate(self.image_ids.tolist()):
            grouped.setdefault(image_id, []).append(index)
        return {k: (self.boxes_xyxy[v], self.scores[v]) for k, v in grouped.items()}


def read_person_boxes(path: str | Path, detections_only: bool = False) -> PersonBoxes:
    """Person boxes from a COCO detection-results list (`image_id`, `category_id`, xywh `bbox`,
    `score` per entry) or, unless `detections_only`, a COCO annotation file (its non-crowd
    person annotations, scored 1)."""
    path = Path(path).expanduser()
    data = read_json(path, "boxes file")
    if isinstance(data, dict) and {"images", "annotations"} <= data.keys() and detections_only:
        raise ValueError(
            f"{path} is a COCO annotation file; a detection-results file (a JSON list of "
            "image_id, category_id, bbox, score) is needed here"
        )
    if isinstance(data, dict) and {"images", "annotations"} <= data.keys():
        check_fields(data["images"], ("id", "file_name"), "image", path)
        check_fields(data["annotations"], ("id", "image_id", "bbox"), "annotation", path)
        entries = [
            {**a, "score": 1.0}
            for a in data["annotations"]
            if a.get("category_id", PERSON_CATEGORY_ID) == PERSON_CATEGORY_ID
            and not a.get("iscrowd", 0)
        ]
        ids_by_file = {im["file_name"]: int(im["id"]) for im in data["images"]}
    elif isinstance(data, list):
        check_fields(data, ("image_id", "category_id", "bbox", "score"), "detection", path)
        entries = [d for d in data if d["category_id"] == PERSON_CATEGORY_ID]
        ids_by_file = {}
    else:
        raise ValueError(
            f"boxes file {path} is neither a COCO detection-results list nor a COCO annotation "
            "file (a dict with 'images' and 'annotations')"
        )
    for i, entry in enumerate(entries):
        if not isinstance(entry["bbox"], list) or len(entry["bbox"]) != 4:
            name = entry.get("id", f"#{i}")
            raise ValueError(f"box {name} in {path} has bbox {entry['bbox']}; need xywh")
    boxes = np.asarray([e["bbox"] for e in entries], dtype=np.float32).reshape(-1, 4)
    return PersonBoxes(
        source=path,
        image_ids=np.asarray([int(e["image_id"]) for e in entries], dtype=np.int64),
        boxes_xyxy=bbox_xywh_to_xyxy(boxes),
        scores=np.asarray([float(e["score"]) for e in entries], dtype=np.float64),
        ids_by_file=ids_by_file,
    )
