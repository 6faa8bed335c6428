"""Keypoints of every person in an image, a folder of images or a video, written to a folder
(what `mvp-predict` runs).

Person boxes come from a COCO detection-results file, from a COCO annotation file (its person
boxes), or are the whole image. The output folder gets `results.keypoints.json` (COCO keypoint
results), `images.json` (image id -> file, so the results can be read back) and the images, or
the video, with skeletons drawn (the paper's Fig. 4 style). A PyTorch checkpoint and the files
exported from it (ONNX, ExecuTorch) go through the same crop, flip-test and decoding code.

A run keeps what it finished: unreadable images are skipped and named at the end, a stopped run
writes the results it has, and `--resume` adds what an earlier run into the folder lacks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from mobilevitpose.coco import PersonBoxes, read_person_boxes
from mobilevitpose.data.image_io import ImageReadError, check_recorded_size
from mobilevitpose.evaluation.results import coco_results
from mobilevitpose.files import write_json
from mobilevitpose.geometry import bbox_xyxy_to_xywh
from mobilevitpose.inference.draw import draw_boxes, draw_skeleton
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.inference.smoothing import TrackSmoother
from mobilevitpose.inference.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Frame,
    Unreadable,
    check_boxes_match,
    check_frames_exist,
    image_ids,
    list_images,
    open_video,
    read_each_image,
    read_video,
)
from mobilevitpose.inference.tracking import PoseTracker

log = logging.getLogger(__name__)

RESULTS_FILE = "results.keypoints.json"
IMAGES_FILE = "images.json"  # image id -> file, so that the results can be read back
VIS_DIR = "vis"  # the images with skeletons drawn
# A BGR image -> its person boxes (N, 4) xyxy in image px and their scores (N,).
Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
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
    resume: bool = False,
    detector: Callable[[], Detector] | None = None,
    track: str = "iou",
    smooth: Mapping[str, float] | None = None,
) -> list[dict]:
    """Predict every person of `source` (an image, a folder of images or a video) and write the
    results into `out_dir`; returns the COCO keypoint results.

    The flip test, rescoring and OKS-NMS follow the model's evaluation settings (stored by
    mvp-train and mvp-export), changed by `evaluation` (e.g. {"nms_mode": "none"}).

    Person boxes come from `boxes_file` when given, else from the detector that `detector`
    builds (once the inputs and the model have been checked), else the whole image is one box.
    Each result carries its `bbox` (xywh) and `bbox_score`; in a video, also its `frame` and its
    `track_id` (`tracking.PoseTracker` by box IoU or keypoint OKS, `track`), and with `smooth`
    (One-Euro settings: `min_cutoff`, `beta`) each track's keypoints are smoothed.

    What was finished is kept: an image that cannot be read is skipped, the results of the
    others are written, then an `ImageReadError` names the skipped files; a run stopped by any
    other error or Ctrl-C writes the results it has before the error propagates. `resume=True`
    then predicts only the images that `out_dir`'s `images.json` lacks and adds them to the
    earlier results (folders and images; a video is redone whole, with `overwrite=True`).
    """
    if resume and overwrite:
        raise ValueError("--resume keeps earlier results and --overwrite replaces them; pass one")
    source, out_dir = Path(source).expanduser(), Path(out_dir).expanduser()
    results_path, index_path = out_dir / RESULTS_FILE, out_dir / IMAGES_FILE
    for path in (results_path, index_path):
        if path.exists() and not (overwrite or resume):
            raise FileExistsError(
                f"{path} exists; pick another --out, pass --resume to add the images it lacks, "
                "or --overwrite to redo all"
            )
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source} (an image, a folder or a video)")
    _check_outputs_stay_out_of(source, out_dir)
    estimator = PoseEstimator.load(model, backend, device).with_evaluation(**(evaluation or {}))
    boxes = read_person_boxes(boxes_file) if boxes_file else None
    boxes_by_image = _usable_boxes(boxes) if boxes is not None else {}
    detect = detector() if detector is not None and boxes is None else None

    writer: cv2.VideoWriter | None = None
    capture: cv2.VideoCapture | None = None
    files: list[Path] = []
    done: dict[str, _Done] = {}
    frames: Iterator[Frame | Unreadable]
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        files = list_images(source) if source.is_dir() else [source]
        ids = image_ids(files, boxes)
        if boxes is not None:
            check_boxes_match(boxes_by_image, boxes.source, ids, f"{len(files)} input images")
            _check_image_sizes(boxes, files, ids)
        if resume:
            done = _earlier_results(results_path, index_path, files, ids)
        todo = [(path, i) for path, i in zip(files, ids, strict=True) if path.name not in done]
        # Drawings of images an earlier run finished stay as they are; any other would be
        # replaced, and may be the user's.
        drawings = [out_dir / VIS_DIR / path.name for path, _ in todo] if render else []
        existing = [path for path in drawings if path.exists()]
        if existing and not overwrite:
            raise FileExistsError(
                f"{existing[0]} exists ({len(existing)} drawings would be replaced); pick another "
                "--out or pass --overwrite"
            )
        frames = read_each_image([path for path, _ in todo], [i for _, i in todo])
        total, kind = len(todo), "images"
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        video = out_dir / f"{source.stem}.pose.mp4"
        if resume and (results_path.exists() or index_path.exists()):
            raise FileExistsError(
                f"{results_path} exists and a video's frames are not resumed; pick another --out "
                "or pass --overwrite to redo it"
            )
        if render and video.exists() and not overwrite:
            raise FileExistsError(f"{video} exists; pick another --out or pass --overwrite")
        capture, total, fps = open_video(source)
        tracker = PoseTracker(mode=track)
        smoother = TrackSmoother(fps=fps, **smooth) if smooth is not None else None
        # The container's count, where it states one, catches boxes of another video before a
        # long run; where it does not, the frames read are checked at the end.
        if boxes is not None and total > 0:
            try:
                check_frames_exist(boxes_by_image, boxes.source, source, total)
            except ValueError:
                capture.release()
                raise
        frames, kind = read_video(capture, source.stem), "frames"
    else:
        raise ValueError(
            f"{source} is neither an image ({', '.join(IMAGE_SUFFIXES)}), a video "
            f"({', '.join(VIDEO_SUFFIXES)}) nor a folder"
        )

    results: list[dict] = []
    index: list[dict] = []
    failed: list[Unreadable] = []

    def write_outputs() -> tuple[list[dict], list[dict]]:
        all_results, all_index = _merged(done, results, index, files)
        # With resume the files replaced are this tool's own earlier outputs, read above.
        replace = overwrite or resume
        write_json(results_path, all_results, overwrite=replace, indent=None)
        write_json(index_path, all_index, overwrite=replace, indent=1)
        return all_results, all_index

    try:
        for frame in tqdm(
            frames, total=total, unit=kind[:-1], desc="mvp-predict", disable=not progress
        ):
            if isinstance(frame, Unreadable):
                failed.append(frame)
                continue
            height, width = frame.image_bgr.shape[:2]
            if detect is not None:
                frame_boxes, frame_scores = detect(frame.image_bgr)
                frame_ids = np.arange(len(frame_boxes), dtype=np.int64)
            elif boxes is None:
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
            extras: dict[str, list] = {
                "bbox": bbox_xyxy_to_xywh(frame_boxes).tolist(),
                "bbox_score": frame_scores.tolist(),
            }
            if kind == "frames":
                extras["frame"] = [frame.image_id] * len(frame_boxes)
                track_ids = tracker.update(frame_boxes, **predicted)
                extras["track_id"] = track_ids.tolist()
                if smoother is not None:
                    smoother.retain(tracker.live_ids)
                    predicted["keypoints_img"] = smoother(
                        track_ids, predicted["keypoints_img"], predicted["keypoint_scores"],
                        frame_index=frame.image_id,
                    )  # fmt: skip
            frame_results = coco_results(
                image_ids=np.full(len(frame_boxes), frame.image_id),
                instance_ids=frame_ids,
                bbox_scores=frame_scores,
                settings=estimator.evaluation,
                extras=extras,
                **predicted,
            )
            if render:
                drawn = _draw(frame.image_bgr, frame_results, keypoint_draw_thr)
                if kind == "frames":
                    if writer is None:
                        out_dir.mkdir(parents=True, exist_ok=True)
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
                        writer = cv2.VideoWriter(str(video), fourcc, fps, (width, height))
                        if not writer.isOpened():
                            raise OSError(f"OpenCV cannot write {video} (mp4v codec missing?)")
                    writer.write(drawn)
                else:
                    drawing = out_dir / VIS_DIR / frame.file_name
                    drawing.parent.mkdir(parents=True, exist_ok=True)
                    if not cv2.imwrite(str(drawing), drawn):  # it returns False, never raises
                        raise OSError(
                            f"OpenCV cannot write {drawing} (disk full? no write access?)"
                        )
            # Counted as finished only once drawn, so that a resumed run draws it if not.
            results.extend(frame_results)
            index.append({"id": frame.image_id, "file_name": frame.file_name,
                          "width": width, "height": height})  # fmt: skip
    except BaseException:
        if index:
            try:
                write_outputs()
            except Exception:  # the error that stopped the run is the one to report
                log.exception("could not write the results finished so far")
            else:
                log.warning(
                    "stopped after %d %s; their results are in %s%s", len(index), kind,
                    results_path, "; --resume adds the rest" if kind == "images" else "",
                )  # fmt: skip
        raise
    finally:
        if writer is not None:
            writer.release()
        if capture is not None:
            capture.release()

    if failed and not index and not done:  # nothing to keep: write nothing
        raise ImageReadError(_unreadable_message(failed, len(files), None)) from failed[0].error
    all_results, all_index = write_outputs()
    if failed:
        raise ImageReadError(
            _unreadable_message(failed, len(files), (len(all_index), results_path, index_path))
        ) from failed[0].error
    if kind == "frames" and boxes is not None:  # the frames the video really has are known now
        try:
            check_frames_exist(boxes_by_image, boxes.source, source, len(index))
        except ValueError as err:
            raise ValueError(
                f"{err} (the results of the {len(index)} frames are in {results_path})"
            ) from None
    return all_results


class _Done(NamedTuple):
    """An image an earlier run finished: its images.json entry and results, under this run's
    image id."""

    entry: dict
    results: list[dict]


def _earlier_results(
    results_path: Path, index_path: Path, files: Sequence[Path], ids: Sequence[int]
) -> dict[str, _Done]:
    """The images of `files` that an earlier run into the same folder finished, by file name.

    Matched by name, not id: ids by position shift when a failed file is removed."""
    if not results_path.exists() and not index_path.exists():
        return {}
    for path, other in ((results_path, index_path), (index_path, results_path)):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing beside {other}, so the earlier run cannot be resumed; pass "
                "--overwrite to redo all"
            )
    new_ids = {path.name: image_id for path, image_id in zip(files, ids, strict=True)}
    done: dict[str, _Done] = {}
    try:
        index = json.loads(index_path.read_text())
        by_id: dict[int, list[dict]] = {}
        for result in json.loads(results_path.read_text()):
            by_id.setdefault(result["image_id"], []).append(result)
        gone = 0
        for entry in index:
            new_id = new_ids.get(entry["file_name"])
            if new_id is None:
                gone += 1
                continue
            earlier = by_id.get(entry["id"], [])
            done[entry["file_name"]] = _Done(
                {**entry, "id": new_id}, [{**r, "image_id": new_id} for r in earlier]
            )
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(
            f"cannot resume from {index_path} and {results_path} ({type(err).__name__}: {err}); "
            "were they written by mvp-predict? Pass --overwrite to redo all"
        ) from err
    if gone:
        log.warning("%s: dropped %d images that are no longer among the inputs", index_path, gone)
    return done


def _merged(
    done: Mapping[str, _Done], results: list[dict], index: list[dict], files: Sequence[Path]
) -> tuple[list[dict], list[dict]]:
    """Earlier and new results in input order, as one uninterrupted run would write them."""
    if not done:
        return results, index
    new = {entry["file_name"]: entry for entry in index}
    new_results: dict[int, list[dict]] = {}
    for result in results:
        new_results.setdefault(result["image_id"], []).append(result)
    all_results, all_index = [], []
    for path in files:
        if path.name in done:
            entry, earlier = done[path.name]
            all_index.append(entry)
            all_results.extend(earlier)
        elif path.name in new:
            all_index.append(new[path.name])
            all_results.extend(new_results.get(new[path.name]["id"], []))
    return all_results, all_index


def _unreadable_message(
    failed: Sequence[Unreadable], inputs: int, written: tuple[int, Path, Path] | None
) -> str:
    shown = "; ".join(str(f.error) for f in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    message = f"{len(failed)} of {inputs} images could not be read: {shown}{more}"
    if written is None:
        return message
    count, results_path, index_path = written
    return (
        f"{message}. The results of the other {count} images are in {results_path} and "
        f"{index_path}; fix or remove the files that failed and rerun with --resume to add "
        "them (--overwrite redoes all)"
    )


def _draw(image_bgr: np.ndarray, results: list[dict], score_thr: float) -> np.ndarray:
    if not results:
        return image_bgr
    flat = np.asarray([r["keypoints"] for r in results], dtype=np.float32).reshape(
        len(results), -1, 3
    )
    drawn = draw_skeleton(image_bgr, flat[..., :2], flat[..., 2], score_thr=score_thr)
    return draw_boxes(
        drawn,
        np.asarray([r["bbox"] for r in results], np.float32).reshape(-1, 4),
        [r.get("track_id") for r in results],
    )


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


def _check_image_sizes(boxes: PersonBoxes, files: Sequence[Path], ids: Sequence[int]) -> None:
    """Images against the records of the annotation file their boxes come from, before the
    first prediction."""
    for path, image_id in zip(files, ids, strict=True):
        if image_id in boxes.sizes:
            check_recorded_size(path, boxes.sizes[image_id], boxes.source)
