"""What `mvp-predict` reads: images, folders of images and videos, each frame with an image id
that matches the person boxes given for it."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobilevitpose.coco import PersonBoxes
from mobilevitpose.data.image_io import ImageReadError, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class Frame:
    image_id: int
    file_name: str
    image_bgr: np.ndarray


@dataclass(frozen=True)
class Unreadable:
    """An input image that could not be read or decoded, and the error that says why."""

    image_id: int
    file_name: str
    error: ImageReadError | OSError


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def coco_image_id(path: Path) -> int | None:
    """COCO names images by id (000000000785.jpg -> 785)."""
    # isdigit() also takes digits such as '²' that int() refuses.
    return int(path.stem) if path.stem.isascii() and path.stem.isdigit() else None


def image_ids(files: Sequence[Path], boxes: PersonBoxes | None) -> list[int]:
    """An id per image: from the annotation file's file names, from COCO file names, or, when
    some name is not a number and no boxes need matching, each file's position (1-based)."""
    if boxes is None and any(coco_image_id(path) is None for path in files):
        return list(range(1, len(files) + 1))
    ids = []
    for path in files:
        if boxes is not None and boxes.ids_by_file:
            if path.name not in boxes.ids_by_file:
                raise ValueError(
                    f"image {path} is not listed in the annotation file {boxes.source}"
                )
            ids.append(boxes.ids_by_file[path.name])
        elif boxes is not None:
            image_id = coco_image_id(path)
            if image_id is None:
                raise ValueError(
                    f"cannot match {path.name} to the detection file {boxes.source}: detections "
                    "name images by id, so the files need COCO names (000000000785.jpg); pass the "
                    "COCO annotation file as --boxes instead"
                )
            ids.append(image_id)
        else:
            image_id = coco_image_id(path)
            assert image_id is not None  # no boxes: every name is a number (checked above)
            ids.append(image_id)
    if len(set(ids)) != len(ids):
        raise ValueError("two input images map to the same image id; rename them")
    return ids


def check_boxes_match(
    boxed_ids: Collection[int], source: Path, known_ids: Sequence[int], what: str
) -> None:
    """Refuse boxes (of the image ids `boxed_ids`, from `source`) for images not among the
    inputs: they would be dropped silently."""
    unknown = sorted(set(boxed_ids) - set(known_ids))
    if unknown:
        raise ValueError(
            f"{source} has boxes for {len(unknown)} image id(s) that are not among the "
            f"{what}: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; give the boxes of "
            "these inputs only"
        )


def read_each_image(files: Sequence[Path], ids: Sequence[int]) -> Iterator[Frame | Unreadable]:
    """The images as frames with their ids; one that cannot be read comes as `Unreadable`
    instead of ending the walk: one bad file of a large folder must not cost the others their
    results."""
    for path, image_id in zip(files, ids, strict=True):
        try:
            yield Frame(image_id, path.name, read_image(path))
        except (ImageReadError, OSError) as err:
            yield Unreadable(image_id, path.name, err)


def check_frames_exist(
    boxed_ids: Collection[int], boxes_source: Path, video: Path, frame_count: int
) -> None:
    """Refuse boxes (of the frame ids `boxed_ids`, from `boxes_source`) for frames the video
    does not have: a detection file of another, longer video, or numbered from 1."""
    beyond = sorted(i for i in boxed_ids if not 0 <= i < frame_count)
    if beyond:
        frames = f"{frame_count} frames" + (f", ids 0 to {frame_count - 1}" if frame_count else "")
        raise ValueError(
            f"{boxes_source} has boxes for {len(beyond)} frame id(s) that the video {video} "
            f"({frames}) does not have: {beyond[:10]}{' ...' if len(beyond) > 10 else ''}; "
            "give the boxes of this video"
        )


def open_video(path: Path) -> tuple[cv2.VideoCapture, int, float]:
    """The capture, its frame count as the container states it (0 where it does not), and its
    frame rate."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path} (corrupt, or a codec OpenCV lacks)")
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return capture, frames, capture.get(cv2.CAP_PROP_FPS) or 25.0


def read_video(capture: cv2.VideoCapture, stem: str) -> Iterator[Frame]:
    """Frames with ids 0, 1, ... (a detection file for a video names frames by these ids)."""
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield Frame(index, f"{stem}_{index:06d}.jpg", frame)
        index += 1
