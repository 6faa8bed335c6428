"""Photo to poses on CPU: where mvp-predict's time goes without a box file.

Per image, for each detector and pose model: the person detector alone, the pose estimator on
`people` person boxes alone (crops, network with the model's flip test, decoding), and both in a
row, as `mvp-predict CKPT photo.jpg` runs them. The pose part always gets the same boxes (a row
of `people` upright boxes across the photo), so that its time does not depend on what the
detector's weights find. A detector's COCO weights come through torchvision's download-and-cache
code; `weights="random"` times seeded random ones (offline: the networks cost the same, but the
boxes kept before non-maximum suppression, and so its time, differ from trained weights').
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mobilevitpose.benchmarks import input_size_overrides
from mobilevitpose.benchmarks.timing import Backend, summarise, time_interleaved
from mobilevitpose.inference.detector import PersonDetector, detector_spec
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.training.config import build_model_bundle

WEIGHTS = ("coco", "random")
PARTS = ("detector", "pose", "detector + pose")
PHOTO_SIZE = (640, 480)  # (w, h) of the stand-in photo: a typical COCO image


@dataclass(frozen=True)
class PipelineSettings:
    detectors: list[str]
    models: list[str]
    weights: str  # "coco" | "random"
    people: int
    runs: int
    warmup: int
    photo: Path | None = None
    input_size: list[int] | None = None


def read_photo(path: Path | None) -> np.ndarray:
    """The photo (BGR), or a seeded noise image of PHOTO_SIZE."""
    if path is None:
        width, height = PHOTO_SIZE
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read the photo {path} (--photo)")
    return image


def person_boxes(image: np.ndarray, people: int) -> np.ndarray:
    """`people` upright boxes (xyxy, image px) side by side across the image."""
    height, width = image.shape[:2]
    step = width / people
    left = np.arange(people) * step
    return np.stack(
        [left + 0.1 * step, np.full(people, 0.1 * height),
         left + 0.9 * step, np.full(people, 0.9 * height)], axis=1,
    ).astype(np.float32)  # fmt: skip


def build_detector(name: str, weights: str, folder: Path) -> PersonDetector:
    if weights not in WEIGHTS:
        raise ValueError(f"detector weights {weights!r}; allowed: {', '.join(WEIGHTS)}")
    if weights == "coco":
        return PersonDetector(name)
    torch.manual_seed(0)
    model = detector_spec(name).builder(weights=None, weights_backbone=None, num_classes=91)
    path = folder / f"{name}-random.pth"
    torch.save(model.state_dict(), path)
    return PersonDetector(name, weights_file=path)


def _parts(
    detector: PersonDetector, estimator: PoseEstimator, image: np.ndarray, boxes: np.ndarray
) -> list[Backend]:
    def both() -> object:
        detector(image)
        return estimator(image, boxes)

    calls = (lambda: detector(image), lambda: estimator(image, boxes), both)
    return [
        Backend(part, "cpu", "fp32", "NCHW", call) for part, call in zip(PARTS, calls, strict=True)
    ]


def bench_pipeline(settings: PipelineSettings) -> dict[str, Any]:
    """The settings as the report states them, and one row per (detector, pose model): the
    median latency of each part and of both."""
    image = read_photo(settings.photo)
    boxes = person_boxes(image, settings.people)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        detectors = [build_detector(n, settings.weights, Path(tmp)) for n in settings.detectors]
        for model_name in settings.models:
            model, codec, evaluation = build_model_bundle(
                model_name, input_size_overrides(settings.input_size)
            )
            estimator = PoseEstimator.from_model(model.eval(), codec, evaluation)
            for detector in detectors:
                parts = _parts(detector, estimator, image, boxes)
                times = time_interleaved(parts, settings.runs, settings.warmup, lambda: None)
                medians = {p.name: summarise(t, 1) for p, t in zip(parts, times, strict=True)}
                rows.append(
                    {
                        "detector": detector.name,
                        "model": model_name,
                        "input_size": list(model.input_size),
                        "flip_test": evaluation.flip_test,
                        "latency": medians,
                    }
                )
    return {"settings": describe(settings, image), "rows": rows}


def describe(settings: PipelineSettings, image: np.ndarray) -> dict[str, Any]:
    """The settings as the report states them."""
    height, width = image.shape[:2]
    return {
        "photo": str(settings.photo) if settings.photo else f"{width}x{height} noise",
        "image_size": [width, height],
        "people": settings.people,
        "detector_weights": settings.weights,
        "runs": settings.runs,
        "warmup": settings.warmup,
    }


def to_markdown(rows: list[dict[str, Any]], described: dict[str, Any]) -> str:
    lines = [
        "| Detector | Pose model | Input | Detector ms | Pose ms "
        f"({described['people']} people) | Detector + pose ms | Detector share |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        det, pose, both = (row["latency"][k]["median_ms"] for k in PARTS)
        width, height = row["input_size"]
        lines.append(
            f"| {row['detector']} | {row['model']} | {width}x{height} | {det:.1f} | {pose:.1f} "
            f"| {both:.1f} | {det / both:.0%} |"
        )
    weights = (
        "torchvision's COCO weights"
        if described["detector_weights"] == "coco"
        else "seeded random weights (trained weights keep other boxes before NMS)"
    )
    lines += [
        "",
        f"- Per image: {described['photo']}; detector with {weights}; pose estimator on "
        f"{described['people']} fixed person boxes (crops, network with flip test as the "
        "model's defaults, decoding), random pose weights.",
        f"- Median of {described['runs']} calls after {described['warmup']} warm-up calls; the "
        "three take turns in blocks.",
    ]
    return "\n".join(lines) + "\n"
