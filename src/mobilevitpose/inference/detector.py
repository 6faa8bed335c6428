"""Person boxes for a top-down pose model from a raw photo or frame: torchvision's COCO
detection models (BSD), person class only.

The weights come through torchvision's own download-and-cache code (the torch hub cache), or
from a local file. A top-down estimator is only as good as its boxes, so a detector is chosen
by name like the pose model, and `mvp-bench-infer` times it beside the pose network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.models import detection

from mobilevitpose.keypoints import PERSON_CATEGORY_ID


@dataclass(frozen=True)
class DetectorSpec:
    """A torchvision detection model and its COCO weights, by the names torchvision gives."""

    builder: Callable[..., torch.nn.Module]
    weights: Any  # a torchvision WeightsEnum member


DETECTORS: dict[str, DetectorSpec] = {
    "fasterrcnn_mobilenet_v3_large_fpn": DetectorSpec(
        detection.fasterrcnn_mobilenet_v3_large_fpn,
        detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": DetectorSpec(
        detection.fasterrcnn_mobilenet_v3_large_320_fpn,
        detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
    ),
    "ssdlite320_mobilenet_v3_large": DetectorSpec(
        detection.ssdlite320_mobilenet_v3_large,
        detection.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
    ),
    "retinanet_resnet50_fpn_v2": DetectorSpec(
        detection.retinanet_resnet50_fpn_v2,
        detection.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1,
    ),
    "fasterrcnn_resnet50_fpn_v2": DetectorSpec(
        detection.fasterrcnn_resnet50_fpn_v2,
        detection.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    ),
}
DEFAULT_DETECTOR = "fasterrcnn_mobilenet_v3_large_fpn"
NO_DETECTOR = "none"  # the whole image is one person box
# MMPose's inferencer keeps person boxes scored 0.3 and up; torchvision's detectors return at
# most 100 boxes an image.
DEFAULT_SCORE_THRESHOLD = 0.3
DEFAULT_MAX_PEOPLE = 100


def detector_spec(name: str) -> DetectorSpec:
    if name not in DETECTORS:
        raise ValueError(
            f"unknown detector {name!r} (--detector); allowed: {', '.join(DETECTORS)}, or "
            f"{NO_DETECTOR} (the whole image as one person)"
        )
    return DETECTORS[name]


def _state_dict(name: str, weights_file: str | Path | None) -> dict[str, torch.Tensor]:
    weights = detector_spec(name).weights
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"detector weights not found: {path} (--detector-weights)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for a file that is not its own
            raise ValueError(f"cannot read detector weights {path}: {err}") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds no state dict for detector {name!r}")
        return state
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # urllib's URLError and socket errors are OSErrors
        raise ConnectionError(
            f"detector {name!r}: its weights are not in the torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints) and could not be downloaded from "
            f"{weights.url} ({err}); download that file where you have internet and pass "
            f"--detector-weights FILE, or --detector {NO_DETECTOR}"
        ) from None


class PersonDetector:
    """Person boxes (xyxy, image px) and scores of a BGR image, best first."""

    def __init__(
        self,
        name: str = DEFAULT_DETECTOR,
        weights_file: str | Path | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        max_people: int = DEFAULT_MAX_PEOPLE,
        device: str = "cpu",
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"--det-score-thr must be in [0, 1]; got {score_threshold}")
        if max_people < 1:
            raise ValueError(f"--max-people must be >= 1; got {max_people}")
        spec = detector_spec(name)
        # Built without weights (no download), then given the COCO ones; the detector's own
        # threshold stays low so that `score_threshold` alone decides.
        model = spec.builder(weights=None, weights_backbone=None, num_classes=91)
        try:
            model.load_state_dict(_state_dict(name, weights_file))
        except RuntimeError as err:
            raise ValueError(
                f"the weights given for detector {name!r} are another model's: "
                f"{str(err).splitlines()[0]}"
            ) from None
        self.name = name
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.score_threshold = score_threshold
        self.max_people = max_people

    @torch.inference_mode()
    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        image = torch.from_numpy(rgb).permute(2, 0, 1).to(self.device, torch.float32) / 255.0
        (found,) = self.model([image])
        labels, scores = found["labels"].cpu().numpy(), found["scores"].cpu().numpy()
        keep = (labels == PERSON_CATEGORY_ID) & (scores >= self.score_threshold)
        order = np.argsort(-scores[keep], kind="stable")[: self.max_people]
        boxes = found["boxes"].cpu().numpy()[keep][order].astype(np.float32)
        return boxes.reshape(-1, 4), scores[keep][order].astype(np.float32)
