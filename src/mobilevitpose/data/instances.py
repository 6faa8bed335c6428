"""COCO person annotations and detections -> one `Instance` per person box, as the reference
toolbox reads them.

Ground-truth boxes (training, and validation with GT boxes) follow MMPose's
`BaseCocoStyleDataset.parse_data_info` and `_is_valid_instance`: boxes clipped to the image,
visibility min(1, v), and crowd / keypoint-less / empty-box instances dropped. Detected boxes
(the published validation protocol) follow `_load_detection_results`: every person detection,
unclipped, scored by the detector, with no threshold unless one is asked for.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from mobilevitpose.data.coco import (
    LAYOUT_HINT,
    check_fields,
    parse_gt_annotation,
    read_json,
    read_person_boxes,
)
from mobilevitpose.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Instance:
    """One person box of one image; coordinates in image pixels, sizes (width, height)."""

    image_id: int
    image_path: str
    image_size: tuple[int, int]
    instance_id: int
    bbox_xyxy: np.ndarray  # (4,) f32
    bbox_score: float
    keypoints_img: np.ndarray  # (K, 2) f32
    keypoints_visible: np.ndarray  # (K,) f32 in {0, 1}


def _load_coco(ann_file: str | Path, image_dir: str | Path) -> tuple[COCO, Path, Path]:
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file not found: {ann_file} ({LAYOUT_HINT})")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir} ({LAYOUT_HINT})")
    data = read_json(ann_file, "annotation file")
    if not isinstance(data, dict) or not {"images", "annotations"} <= data.keys():
        raise ValueError(
            f"annotation file {ann_file} is not a COCO annotation file: it needs the "
            "'images' and 'annotations' fields"
        )
    check_fields(data["images"], ("id", "file_name", "width", "height"), "image", ann_file)
    check_fields(data["annotations"], ("id", "image_id"), "annotation", ann_file)
    coco = COCO()
    coco.dataset = data
    # pycocotools reports its progress on stdout; keep library calls quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco, ann_file, image_dir


def _image_record(coco: COCO, image_id: int, image_dir: Path) -> tuple[str, tuple[int, int]]:
    image = coco.imgs[image_id]
    return str(image_dir / image["file_name"]), (int(image["width"]), int(image["height"]))


def load_gt_instances(ann_file: str | Path, image_dir: str | Path) -> list[Instance]:
    """Valid person instances with ground-truth boxes (score 1, id = annotation id)."""
    coco, ann_file, image_dir = _load_coco(ann_file, image_dir)
    instances: list[Instance] = []
    filtered: Counter[str] = Counter()
    for image_id in coco.getImgIds():
        image_path, image_size = _image_record(coco, image_id, image_dir)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            parsed = parse_gt_annotation(ann, image_size, ann_file)
            if isinstance(parsed, str):
                filtered[parsed] += 1
                continue
            bbox, keypoints, visible = parsed
            instances.append(
                Instance(
                    image_id=int(image_id),
                    image_path=image_path,
                    image_size=image_size,
                    instance_id=int(ann["id"]),
                    bbox_xyxy=bbox,
                    bbox_score=1.0,
                    keypoints_img=keypoints,
                    keypoints_visible=visible,
                )
            )
    if filtered:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(filtered.items()))
        log.info("%s: %d person instances; filtered out %s", ann_file, len(instances), reasons)
    return instances


def load_detection_instances(
    ann_file: str | Path,
    image_dir: str | Path,
    bbox_file: str | Path,
    score_threshold: float = 0.0,
) -> list[Instance]:
    """Person detections as instances: xywh -> xyxy unclipped, score = detector score.

    Keypoints are zero and invisible. `instance_id` is a running index over the person
    detections in file order (assigned before the score threshold, as the reference does);
    detections with score < `score_threshold` are dropped.
    """
    coco, ann_file, image_dir = _load_coco(ann_file, image_dir)
    boxes = read_person_boxes(bbox_file, detections_only=True)
    unknown = sorted(set(boxes.image_ids.tolist()) - set(coco.imgs))
    if unknown:
        raise ValueError(
            f"detection file {boxes.source} names {len(unknown)} image id(s) absent from "
            f"{ann_file}: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
        )
    instances = []
    for image_id, instance_id, box, score in zip(
        boxes.image_ids.tolist(),
        boxes.instance_ids.tolist(),
        boxes.boxes_xyxy,
        boxes.scores.tolist(),
        strict=True,
    ):
        if score < score_threshold:
            continue
        image_path, image_size = _image_record(coco, image_id, image_dir)
        instances.append(
            Instance(
                image_id=image_id,
                image_path=image_path,
                image_size=image_size,
                instance_id=instance_id,
                bbox_xyxy=box,
                bbox_score=score,
                keypoints_img=np.zeros((NUM_KEYPOINTS, 2), dtype=np.float32),
                keypoints_visible=np.zeros(NUM_KEYPOINTS, dtype=np.float32),
            )
        )
    return instances
