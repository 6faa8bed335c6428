"""Person crops of a COCO-format set, cut as validation cuts them: what INT8 calibration sees,
and what the deployment report compares an artifact with its checkpoint on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobilevitpose.coco import coco_paths, read_person_boxes
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.image_io import person_crops, read_image

DEFAULT_CALIBRATION_CROPS = 256


@dataclass(frozen=True)
class CropSet:
    """uint8 RGB crops (N, 3, h, w) with their centres and scales (N, 2) in image px."""

    source: str
    crops: np.ndarray
    centers: np.ndarray
    scales: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


def annotated_crops(
    ann_file: str | Path,
    image_dir: str | Path,
    codec: HeatmapCodec,
    count: int | None = DEFAULT_CALIBRATION_CROPS,
    seed: int = 0,
) -> CropSet:
    """The crops of `count` ground-truth person boxes of a COCO annotation file (drawn without
    replacement with `seed`; None: all of them), through the evaluation crop of `codec`."""
    ann_file, image_dir = Path(ann_file).expanduser(), Path(image_dir).expanduser()
    if count is not None and count < 1:
        raise ValueError(f"the crop count must be >= 1; got {count}")
    boxes = read_person_boxes(ann_file)
    if not boxes.ids_by_file:
        raise ValueError(f"{ann_file} is not a COCO annotation file (crops need its image files)")
    sized = (boxes.boxes_xyxy[:, 2] > boxes.boxes_xyxy[:, 0]) & (
        boxes.boxes_xyxy[:, 3] > boxes.boxes_xyxy[:, 1]
    )
    picked = np.flatnonzero(sized)
    if len(picked) == 0:
        raise ValueError(f"{ann_file} holds no person box to crop")
    if count is not None and count < len(picked):
        picked = np.sort(np.random.default_rng(seed).choice(picked, count, replace=False))
    file_of = {image_id: name for name, image_id in boxes.ids_by_file.items()}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for image_id in dict.fromkeys(boxes.image_ids[picked].tolist()):
        mine = picked[boxes.image_ids[picked] == image_id]
        image = read_image(image_dir / file_of[image_id])
        parts.append(
            person_crops(image, boxes.boxes_xyxy[mine], codec.input_size, codec.kind == "udp")
        )
    crops, centers, scales = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    return CropSet(f"{len(crops)} person crops of {ann_file}", crops, centers, scales)


def split_crops(
    root: str | Path,
    split: str,
    codec: HeatmapCodec,
    count: int | None = DEFAULT_CALIBRATION_CROPS,
    seed: int = 0,
) -> CropSet:
    """`annotated_crops` of the `split` ("train" or "val") of a COCO-layout data root."""
    ann_file, image_dir = coco_paths(root, split)
    if not ann_file.is_file():
        raise FileNotFoundError(
            f"no {split} annotation file at {ann_file}: crops need a COCO-layout data root"
        )
    return annotated_crops(ann_file, image_dir, codec, count, seed)
