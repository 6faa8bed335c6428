"""Keypoints of every person in an image, a folder of images or a video, written to a folder
(what `mvp-predict` runs).

Person boxes come from a COCO detection-results file, from a COCO annotation file (its person
boxes), or are the whole image. The output folder gets `results.keypoints.json` (COCO keypoint
results), `images.json` (image id -> file, so the results can be read back) and the images, or
the video, with skeletons drawn (the paper's Fig. 4 style). A PyTorch checkpoint and the files
exported from it (ONNX, ExecuTorch) go through the same crop, flip-test and decoding code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from mobilevitpose.coco import PersonBoxes, read_person_boxes
from mobilevitpose.evaluation.results import coco_results
from mobilevitpose.files import write_json
from mobilevitpose.inference.draw import draw_skeleton
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.inference.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    check_boxes_match,
    image_ids,
    list_images,
    open_video,
    read_images,
    read_video,
)

log = logging.getLogger(__name__)

RESULTS_FILE = "results.keypoints.json"
IMAGES_FILE = "images.json"  # image id -> file, so that the results can be read back
VIS_DIR = "vis"  # the images with skeletons drawn
NO_BOXES = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def predict(
    model: str | Path,
    source: str | Path,
    out_dir: str | Path,
    boxes_file: str | Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    evaluation: Mapping[str, Any] | None = None,
    bbox_score_thr: float = 0.0,
    keypoint_draw_thr: float = 0.3,
    render: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Predict every person of `source` (an image, a folder of images or a video) and write the
    results into `out_dir`; returns the COCO keypoint results.

    The flip test, rescoring and OKS-NMS follow the model's evaluation settings (stored by
    mvp-train and mvp-export), changed by `evaluation` (e.g. {"nms_mode": "none"}).
    """
    source, out_dir = Path(source).expanduser(), Path(out_dir).expanduser()
    results_path, index_path = out_dir / RESULTS_FILE, out_dir / IMAGES_FILE
    for path in (results_path, index_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pick another --out or pass --overwrite")
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source} (an image, a folder or a video)")
    _check_outputs_stay_out_of(source, out_dir)
    estimator = PoseEstimator.load(model, backend, device).with_evaluation(**(evaluation or {}))
    boxes = read_person_boxes(boxes_file) if boxes_file else None
    boxes_by_image = _usable_boxes(boxes) if boxes is not None else {}

    writer: cv2.VideoWriter | None = None
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        files = list_images(source) if source.is_dir() else [source]
        ids = image_ids(files, boxes)
        if boxes is not None:
            check_boxes_match(boxes_by_image, boxes.source, ids, f"{len(files)} input images")
        frames, total, kind = read_images(files, ids), len(files), "images"
        drawings = [out_dir / VIS_DIR / path.name for path in files] if render else []
        existing = [path for path in drawings if path.exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"{existing[0]} exists ({len(existing)} drawings would be replaced); pick another "
                "--out or pass --overwrite"
            )
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        video = out_dir / f"{source.stem}.pose.mp4"
        if render and video.exists() and not overwrite:
            raise FileExistsError(f"{video} exists; pick another --out or pass --overwrite")
        capture, total, fps = open_video(source)
        frames, kind = read_video(capture, source.stem), "frames"
    else:
        raise ValueError(
            f"{source} is neither an image ({', '.join(IMAGE_SUFFIXES)}), a video "
            f"({', '.join(VIDEO_SUFFIXES)}) nor a folder"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    results, index = [], []
    for frame in tqdm(
        frames, total=total, unit=kind[:-1], desc="mvp-predict", disable=not progress
    ):
        height, width = frame.image_bgr.shape[:2]
        if boxes is None:
            frame_boxes = np.array([[0, 0, width, height]], np.float32)
            frame_scores = np.ones(1, np.float32)
            frame_ids = np.zeros(1, np.int64)
        else:
            frame_boxes, frame_scores, frame_ids = boxes_by_image.get(frame.image_id, NO_BOXES)
            keep = frame_scores >= bbox_score_thr
            frame_boxes, frame_scores, frame_ids = (
                frame_boxes[keep],
                frame_scores[keep],
                frame_ids[keep],
            )
        predicted = estimator(frame.image_bgr, frame_boxes)
        frame_results = coco_results(
            image_ids=np.full(len(frame_boxes), frame.image_id),
            instance_ids=frame_ids,
            bbox_scores=frame_scores,
            settings=estimator.evaluation,
            **predicted,
        )
        results.extend(frame_results)
        index.append({"id": frame.image_id, "file_name": frame.file_name,
                      "width": width, "height": height})  # fmt: skip
        if render:
            drawn = _draw(frame.image_bgr, frame_results, keypoint_draw_thr)
            if kind == "frames":
                if writer is None:
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
                    writer = cv2.VideoWriter(str(video), fourcc, fps, (width, height))
                    if not writer.isOpened():
                        raise OSError(f"OpenCV cannot write {video} (mp4v codec missing?)")
                writer.write(drawn)
            else:
                (out_dir / VIS_DIR).mkdir(exist_ok=True)
                cv2.imwrite(str(out_dir / VIS_DIR / frame.file_name), drawn)
    if writer is not None:
        writer.release()
    if kind == "frames" and boxes is not None:  # a video's frame count is known only now
        video_ids = [entry["id"] for entry in index]
        check_boxes_match(boxes_by_image, boxes.source, video_ids, f"{len(index)} video frames")
    write_json(results_path, results, overwrite=overwrite, indent=None)
    write_json(index_path, index, indent=1)
    return results


def _draw(image_bgr: np.ndarray, results: list[dict], score_thr: float) -> np.ndarray:
    if not results:
        return image_bgr
    flat = np.asarray([r["keypoints"] for r in results], dtype=np.float32).reshape(
        len(results), -1, 3
    )
    return draw_skeleton(image_bgr, flat[..., :2], flat[..., 2], score_thr=score_thr)


def _check_outputs_stay_out_of(source: Path, out_dir: Path) -> None:
    """Refuse an output folder that is, or is inside, the input folder, or for an image or a
    video, is its own folder: drawn images and results must never land among, or replace, the
    user's inputs."""
    inputs = (source if source.is_dir() else source.parent).resolve()
    for folder in (out_dir, out_dir / VIS_DIR):
        resolved = folder.resolve()
        if resolved == inputs or (source.is_dir() and inputs in resolved.parents):
            raise ValueError(
                f"--out {out_dir} would write into the input folder {inputs}; pick an output "
                "folder outside it"
            )


def _usable_boxes(boxes: PersonBoxes) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes and float32 scores per image id, without boxes of zero or negative size: no crop
    can be cut there."""
    by_image = boxes.by_image()
    usable, empty = {}, 0
    for image_id, (xyxy, scores, ids) in by_image.items():
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        empty += int((~keep).sum())
        if keep.any():
            usable[image_id] = (xyxy[keep], scores[keep].astype(np.float32), ids[keep])
    if empty:
        log.info("%s: skipped %d boxes of zero or negative size", boxes.source, empty)
    return usable
