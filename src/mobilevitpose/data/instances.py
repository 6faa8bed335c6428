"""COCO person annotations and detections -> one `Instance` per person box, as the reference
toolbox reads them.

Ground-truth boxes (training, and validation with GT boxes) follow MMPose's
`BaseCocoStyleDataset.parse_data_info` and `_is_valid_instance`: boxes clipped to the image,
visibility min(1, v), and crowd / keypoint-less / empty-box instances dropped. Detected boxes
(the published validation protocol) follow `_load_detection_results`: every person detection,
unclipped, scored by the detector, with no threshold unless one is asked for.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilevitpose.coco import (
    LAYOUT_HINT,
    CocoAnnotations,
    parse_gt_annotation,
    read_annotations,
    read_person_boxes,
)
from mobilevitpose.data.image_io import check_recorded_size
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


def _read(ann_file: str | Path, image_dir: str | Path) -> tuple[CocoAnnotations, Path]:
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file not found: {ann_file} ({LAYOUT_HINT})")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir} ({LAYOUT_HINT})")
    return read_annotations(ann_file), image_dir


def _image_record(image: dict, image_dir: Path) -> tuple[str, tuple[int, int]]:
    return str(image_dir / image["file_name"]), (int(image["width"]), int(image["height"]))


def check_image_sizes(instances: list[Instance], source: Path) -> None:
    """Every instance's image against its record, when the split is loaded (before training)."""
    for path, size in dict((i.image_path, i.image_size) for i in instances).items():
        check_recorded_size(path, size, source)


def load_gt_instances(ann_file: str | Path, image_dir: str | Path) -> list[Instance]:
    """Valid person instances with ground-truth boxes (score 1, id = annotation id), image by
    image and annotation by annotation in file order."""
    annotations, image_dir = _read(ann_file, image_dir)
    by_image = annotations.annotations_by_image()
    instances: list[Instance] = []
    filtered: Counter[str] = Counter()
    for image in annotations.images:
        image_path, image_size = _image_record(image, image_dir)
        for ann in by_image[int(image["id"])]:
            parsed = parse_gt_annotation(ann, image_size, annotations.source)
            if isinstance(parsed, str):
                filtered[parsed] += 1
                continue
            bbox, keypoints, visible = parsed
            instances.append(
                Instance(
                    image_id=int(image["id"]),
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
        log.info(
            "%s: %d person instances; filtered out %s",
            annotations.source, len(instances), reasons,
        )  # fmt: skip
    check_image_sizes(instances, annotations.source)
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
    annotations, image_dir = _read(ann_file, image_dir)
    images = {int(image["id"]): image for image in annotations.images}
    boxes = read_person_boxes(bbox_file, detections_only=True)
    unknown = sorted(set(boxes.image_ids.tolist()) - set(images))
    if unknown:
        raise ValueError(
            f"detection file {boxes.source} names {len(unknown)} image id(s) absent from "
            f"{annotations.source}: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
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
        image_path, image_size = _image_record(images[image_id], image_dir)
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
    check_image_sizes(instances, annotations.source)
    return instances
