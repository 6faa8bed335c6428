"""Writing the synthetic dataset to disk in the COCO 2017 layout: images, annotation files and a
person-detection file for the val split.

Images are rendered from per-image seeds ``(seed, split, index)`` so the result does not depend
on how the work is chunked over processes; annotation JSON is written with sorted keys and
rounded floats, so the same seed gives byte-identical files.

A folder belongs to its data: the writer renders only into a new or empty folder or over a
dataset it wrote itself (`MARKER_FILE`, or the annotation files' `info`), and `ensure_dataset`
reads a COCO dataset someone else put at its root as it is.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mobilevitpose.coco import DETECTION_FILE, LAYOUT_HINT, SPLITS, coco_paths
from mobilevitpose.data.synthetic.render import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_MAX_PEOPLE,
    MIN_AREA,
    RenderedPerson,
    image_rng,
    render_image,
)
from mobilevitpose.files import write_json
from mobilevitpose.keypoints import KEYPOINT_NAMES, PERSON_CATEGORY_ID, SKELETON

log = logging.getLogger(__name__)

JPEG_QUALITY = 90
MAX_IMAGES_PER_SPLIT = 10**6  # image ids are split * 10**6 + index + 1
MAX_PEOPLE_LIMIT = 20
DEFAULT_NUM_TRAIN = 1500
DEFAULT_NUM_VAL = 150
DESCRIPTION = "mobilevitpose synthetic COCO people"
# Written before the first image, so that the files of an interrupted run are known as ours
# too (and rendered over on the next run) while nobody else's files ever are.
MARKER_FILE = ".mvp-synth.json"


# --------------------------------------------------------------------------- COCO records


def _detections(
    rng: np.random.Generator,
    image_id: int,
    people: list[RenderedPerson],
    image_size: tuple[int, int],
) -> list[dict[str, Any]]:
    """Jittered GT boxes (sometimes twice, like an un-suppressed detector) and false positives."""
    width, height = image_size
    boxes: list[tuple[np.ndarray, float]] = []
    for person in people:
        # Only annotated people come here; they have area >= min_area >= 1, hence a box.
        assert person.bbox_xywh is not None
        x, y, w, h = person.bbox_xywh
        for attempt in range(2 if rng.random() < 0.15 else 1):
            spread = 0.04 if attempt == 0 else 0.12
            center = np.array([x + w / 2, y + h / 2]) + rng.normal(0, spread, 2) * (w, h)
            size = np.array([w, h]) * np.exp(rng.normal(0, spread * 1.5, 2))
            score = rng.uniform(0.7, 1.0) if attempt == 0 else rng.uniform(0.05, 0.4)
            boxes.append((np.concatenate([center - size / 2, center + size / 2]), score))
    for _ in range(int(rng.poisson(0.5))):
        h = rng.uniform(0.15, 0.8) * height
        w = h * rng.uniform(0.3, 0.9)
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append((np.array([x0, y0, x0 + w, y0 + h]), rng.uniform(0.01, 0.3)))
    out = []
    for xyxy, score in boxes:
        x0, x1 = np.clip(xyxy[[0, 2]], 0, width)
        y0, y1 = np.clip(xyxy[[1, 3]], 0, height)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out.append(
            {
                "image_id": image_id,
                "category_id": PERSON_CATEGORY_ID,
                "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "score": round(float(score), 4),
            }
        )
    return out


def _annotation(person: RenderedPerson, image_id: int, ann_id: int) -> dict[str, Any]:
    assert person.bbox_xywh is not None  # annotated people have area >= min_area >= 1
    keypoints = np.concatenate([person.keypoints_img, person.visibility[:, None]], axis=1)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": PERSON_CATEGORY_ID,
        "iscrowd": 0,
        "keypoints": [
            round(float(v), 2) if i % 3 != 2 else int(v) for i, v in enumerate(keypoints.ravel())
        ],
        "num_keypoints": person.num_keypoints,
        "bbox": list(person.bbox_xywh),
        "area": float(person.area),
    }


def _image_id(split: str, index: int) -> int:
    return SPLITS.index(split) * MAX_IMAGES_PER_SPLIT + index + 1


def _render_chunk(
    indices: Sequence[int],
    root: str,
    split: str,
    seed: int,
    image_size: tuple[int, int],
    max_people: int,
    min_area: int,
) -> list[tuple[dict, list[dict], list[dict], int]]:
    """Render and write some images; their image record, annotations, detections, people."""
    cv2.setNumThreads(1)  # the pool already uses every core
    _, folder = coco_paths(root, split)
    results = []
    for index in indices:
        image_id = _image_id(split, index)
        rendered = render_image(image_rng(seed, split, index), image_size, max_people, min_area)
        file_name = f"{image_id:012d}.jpg"
        if not cv2.imwrite(
            str(folder / file_name), rendered.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ):
            raise OSError(f"could not write {folder / file_name}")
        annotated = [p for p in rendered.people if p.annotated]
        record = {
            "id": image_id,
            "file_name": file_name,
            "width": image_size[0],
            "height": image_size[1],
        }
        anns = [_annotation(p, image_id, image_id * 100 + k) for k, p in enumerate(annotated)]
        dets = []
        if split == "val":
            det_rng = np.random.default_rng([seed, SPLITS.index(split), index, 1])
            dets = _detections(det_rng, image_id, annotated, image_size)
        results.append((record, anns, dets, len(rendered.people)))
    return results


def _check_args(num_train, num_val, image_size, seed, max_people, min_area) -> tuple[int, int]:
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not 0 < value <= MAX_IMAGES_PER_SPLIT - 1:
            raise ValueError(f"{name}={value}: expected 1..{MAX_IMAGES_PER_SPLIT - 1} images")
    if len(image_size) != 2 or min(image_size) < 32:
        raise ValueError(f"image_size={image_size!r}: expected (width, height), each >= 32 px")
    if seed < 0:
        raise ValueError(f"seed={seed}: expected a non-negative integer")
    if not 1 <= max_people <= MAX_PEOPLE_LIMIT:
        raise ValueError(f"max_people={max_people}: expected 1..{MAX_PEOPLE_LIMIT}")
    if min_area < 1:
        raise ValueError(f"min_area={min_area}: expected >= 1 pixel")
    return int(image_size[0]), int(image_size[1])


# Sorted keys, no whitespace, no trailing newline: the same seed gives byte-identical files.
_JSON_FORMAT: dict[str, Any] = {"indent": None, "sort_keys": True, "separators": (",", ":")}
_SETTINGS = ("num_train", "num_val", "image_size", "seed", "max_people", "min_area")


# Bumped when the same settings render other pixels: 2 dropped the left/right colour tint
# (a mirror image contradicted it) for front/back cues (a chest emblem, a two-tone shirt).
RENDERER_VERSION = 2


def _settings(num_train, num_val, image_size, seed, max_people, min_area) -> dict[str, Any]:
    """What determines the dataset's content, as stored in (and compared with) its `info`."""
    return {
        "renderer": RENDERER_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": [int(v) for v in image_size],
        "seed": int(seed),
        "max_people": int(max_people),
        "min_area": int(min_area),
    }


def _some_files(root: Path, limit: int) -> list[str]:
    """Up to `limit` files under `root`, as paths relative to it; [] when there are none."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        # A link to a folder is not walked into, but it is something in `root` all the same.
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in sorted(files + links):
            found.append(os.path.relpath(os.path.join(folder, name), root))
            if len(found) == limit:
                return found
    return found


def _listed(files: list[str], limit: int) -> str:
    return ", ".join(files[:limit]) + (", ..." if len(files) > limit else "")


def _our_info(ann_file: Path) -> dict[str, Any] | None:
    """The `info` of an annotation file this writer made; None for any other file or none."""
    if not ann_file.is_file():
        return None
    try:
        data = json.loads(ann_file.read_bytes())
    except (OSError, ValueError):
        return None  # not ours; whoever reads it as data reports what is wrong with it
    info = data.get("info") if isinstance(data, dict) else None
    return info if isinstance(info, dict) and info.get("description") == DESCRIPTION else None


def _is_ours(root: Path) -> bool:
    # Datasets written before the marker existed are known by their val annotation file.
    return (root / MARKER_FILE).is_file() or _our_info(coco_paths(root, "val")[0]) is not None


def _check_writable(root: Path) -> None:
    """Refuse a folder that holds files this writer did not make: rendering would replace
    images and annotation files of the same names."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(
            f"{root} is a file, not a folder; choose an empty or new folder for the synthetic "
            "dataset"
        )
    found = _some_files(root, 4)
    if found and not _is_ours(root):
        raise FileExistsError(
            f"{root} holds files that mvp-synth did not write ({_listed(found, 3)}); nothing "
            "was written there: choose an empty or new folder for the synthetic dataset"
        )


def _is_coco_layout(root: Path) -> bool:
    return all(
        ann.is_file() and images.is_dir()
        for ann, images in (coco_paths(root, split) for split in SPLITS)
    )


def generate(
    root: str | Path,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    max_people: int = DEFAULT_MAX_PEOPLE,
    min_area: int = MIN_AREA,
    workers: int | None = None,
) -> Path:
    """Render a synthetic dataset into `root` in the COCO 2017 layout; returns `root`.

    `workers` processes render in parallel (default: every CPU core, but one per 200 images);
    the output does not depend on it. The val annotation file is written last, so its
    presence marks a complete dataset. `root` must be new, empty, or hold a dataset written
    here before (replaced in place); a folder holding anything else raises FileExistsError
    before anything is written.
    """
    image_size = _check_args(num_train, num_val, image_size, seed, max_people, min_area)
    root = Path(root).expanduser()
    if workers is None:
        # A spawned worker costs seconds to start; small sets render faster in-process.
        workers = min(os.cpu_count() or 1, max(1, (num_train + num_val) // 200))
    if workers < 1:
        raise ValueError(f"workers={workers}: expected >= 1")
    _check_writable(root)
    info = {
        "description": DESCRIPTION,
        **_settings(num_train, num_val, image_size, seed, max_people, min_area),
    }
    write_json(root / MARKER_FILE, info, **_JSON_FORMAT)
    # The JSON files make their own folders when written; the images need theirs first.
    for split in SPLITS:
        coco_paths(root, split)[1].mkdir(parents=True, exist_ok=True)
    category = {
        "id": PERSON_CATEGORY_ID,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
    }
    start = time.perf_counter()
    # spawn: the caller may hold threads (torch, OpenCV) that a forked child would inherit locked.
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        if workers > 1
        else None
    )
    try:
        # val last: its annotation file marks a complete dataset (`ensure_dataset`).
        for split, count in (("train", num_train), ("val", num_val)):
            render = partial(
                _render_chunk,
                root=str(root),
                split=split,
                seed=seed,
                image_size=image_size,
                max_people=max_people,
                min_area=min_area,
            )
            step = max(1, math.ceil(count / (4 * workers)))
            index_chunks = [range(i, min(i + step, count)) for i in range(0, count, step)]
            chunks = pool.map(render, index_chunks) if pool else map(render, index_chunks)
            results = [r for chunk_results in chunks for r in chunk_results]
            images = [r[0] for r in results]
            annotations = [a for r in results for a in r[1]]
            drawn = sum(r[3] for r in results)
            dataset = {
                "info": {**info, "split": split},
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": [category],
            }
            if split == "val":
                detections = [d for r in results for d in r[2]]
                write_json(root / DETECTION_FILE, detections, **_JSON_FORMAT)
            write_json(coco_paths(root, split)[0], dataset, **_JSON_FORMAT)
            log.info(
                "%s: %d images, %d annotated of %d drawn people",
                split, len(images), len(annotations), drawn,
            )  # fmt: skip
    finally:
        if pool:
            pool.shutdown()
    log.info("synthetic dataset in %s (%.1f s)", root, time.perf_counter() - start)
    return root


def ensure_dataset(root: str | Path, **kwargs: Any) -> Path:
    """Generate the dataset into `root` unless a complete one is already there (left untouched).

    A dataset `generate` wrote is checked against `kwargs` (a warning for other settings, an
    error for an earlier renderer); a complete COCO 2017 layout that it did not write is read
    as it is, and any other content of `root` raises FileExistsError: nothing is written over.
    """
    root = Path(root).expanduser()
    # The val annotation file is written last: ours and there means complete.
    stored = _our_info(coco_paths(root, "val")[0])
    if stored is None:
        found = _some_files(root, 4)
        if not found or (root / MARKER_FILE).is_file():
            return generate(root, **kwargs)  # nothing there yet, or an interrupted run of ours
        if _is_coco_layout(root):
            log.warning(
                "%s holds a COCO dataset that mvp-synth did not write: it is used as it is, "
                "and the synthetic data settings do not apply to it", root,
            )  # fmt: skip
            return root
        raise FileExistsError(
            f"{root} holds files that mvp-synth did not write ({_listed(found, 3)}) and is not "
            f"a complete COCO dataset ({LAYOUT_HINT}); point data.root at an empty or new "
            "folder for synthetic data, or at a complete COCO 2017 layout"
        )
    log.info("using the synthetic dataset already in %s", root)
    defaults = {
        name: param.default
        for name, param in inspect.signature(generate).parameters.items()
        if name in _SETTINGS
    }
    wanted = _settings(**{**defaults, **{k: v for k, v in kwargs.items() if k in _SETTINGS}})
    if stored.get("renderer") != RENDERER_VERSION:
        # Other pixels for the same labels: e.g. renderer 1 marked the left side with a colour
        # that flips contradict, so training on it now would learn against its own labels.
        raise ValueError(
            f"{root} was rendered by an earlier version of the synthetic people (renderer "
            f"{stored.get('renderer', 1)}, now {RENDERER_VERSION}); delete it and run again "
            "to regenerate it"
        )
    changed = sorted(k for k, v in wanted.items() if stored.get(k) != v)
    if changed:
        log.warning(
            "%s was generated with other settings (%s); delete it to regenerate",
            root, ", ".join(f"{k}: {stored.get(k)} -> {wanted[k]}" for k in changed),
        )  # fmt: skip
    return root
