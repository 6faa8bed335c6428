"""The pose estimator: person boxes in an image -> keypoints in image pixels.

The checkpoint and the files exported from it go through the same crop, flip-test and decoding
code as validation, so they agree with it and with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.image_io import person_crops
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.inference.artifacts import BACKEND_OF_SUFFIX, load_artifact
from mobilevitpose.inference.checkpoint import load_pose_model
from mobilevitpose.inference.metadata import codec_of, evaluation_of
from mobilevitpose.keypoints import NUM_KEYPOINTS
from mobilevitpose.models.flip import predict_heatmaps
from mobilevitpose.models.pose_model import PoseModel, normalise_images

BACKENDS = ("auto", "torch", *dict.fromkeys(BACKEND_OF_SUFFIX.values()))


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: no CUDA GPU is available here; use the CPU (cpu)")
    return device


class PoseEstimator:
    """A trained pose network and what turns person boxes into keypoints in image pixels: the
    crop (the evaluation crop: padded, aspect-fixed box), flip test, decoding.

    `network` maps uint8 RGB crops (B, 3, h, w), as the data pipeline delivers them, to heatmaps
    (B, K, h/4, w/4) float32, normalising them where it runs (on the model's device for a
    checkpoint); `from_checkpoint` and `from_export` build one from a mvp-train checkpoint or a
    mvp-export file.
    """

    def __init__(
        self,
        network: Callable[[np.ndarray], np.ndarray],
        codec: HeatmapCodec,
        evaluation: EvaluationSettings,
        batch_size: int = 32,
    ) -> None:
        self.network = network
        self.codec = codec
        self.input_size = codec.input_size
        self.evaluation = evaluation
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> PoseEstimator:
        """The network of a mvp-train checkpoint on `device`, with the run's codec and
        evaluation settings."""
        _device(device)  # a device this machine lacks is named before the file is read
        return cls.from_model(*load_pose_model(path), device=device)

    @classmethod
    def from_model(
        cls,
        model: PoseModel,
        codec: HeatmapCodec,
        evaluation: EvaluationSettings,
        device: str = "cpu",
    ) -> PoseEstimator:
        """A pose model in memory on `device`, with its codec and evaluation settings."""
        target = _device(device)
        model = model.to(target)

        @torch.inference_mode()
        def network(crops: np.ndarray) -> np.ndarray:
            images = model.normalise(torch.from_numpy(crops).to(target))
            return model(images).float().cpu().numpy()

        return cls(network, codec, evaluation)

    @classmethod
    def from_export(cls, path: str | Path, threads: int = 0) -> PoseEstimator:
        """A mvp-export file (ONNX in ONNX Runtime, .pte in ExecuTorch), with the codec and
        evaluation settings stored in its metadata."""
        network, metadata = load_artifact(path, threads)
        codec = codec_of(metadata, str(path))
        mean, std = metadata["mean"], metadata["std"]

        def run(crops: np.ndarray) -> np.ndarray:
            # The graph takes normalised float crops, as a device runtime feeds it.
            return network(normalise_images(torch.from_numpy(crops), mean, std).numpy())

        return cls(run, codec, evaluation_of(metadata))

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", device: str = "cpu") -> PoseEstimator:
        """A checkpoint (backend torch) or an exported file (onnx: ONNX Runtime, executorch);
        `auto` tells them apart by the file's suffix."""
        path = Path(path).expanduser()
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
        if not path.is_file():
            suffixes = " or ".join(BACKEND_OF_SUFFIX)
            raise FileNotFoundError(f"model file not found: {path} (a .ckpt, or a {suffixes} file)")
        exported = BACKEND_OF_SUFFIX.get(path.suffix)
        if backend == "auto":
            backend = exported or "torch"
        if backend == "torch":
            if exported:
                raise ValueError(f"{path} is an exported file; use backend={exported} (or auto)")
            return cls.from_checkpoint(path, device)
        if exported != backend:
            suffix = next(s for s, b in BACKEND_OF_SUFFIX.items() if b == backend)
            raise ValueError(f"backend={backend} needs an exported {suffix} file; got {path}")
        return cls.from_export(path)

    def with_evaluation(self, **changes: Any) -> PoseEstimator:
        """This estimator with some evaluation settings changed (e.g. flip_test=False)."""
        evaluation = EvaluationSettings.from_dict({**self.evaluation.to_dict(), **changes})
        return PoseEstimator(self.network, self.codec, evaluation, self.batch_size)

    def crops(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, ...]:
        """uint8 RGB crops (N, 3, h, w) and their centres and scales (N, 2) in image px."""
        return person_crops(image_bgr, boxes_xyxy, self.input_size, udp=self.codec.kind == "udp")

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """Network heatmaps, flip-tested as validation does when the settings say so."""
        return predict_heatmaps(
            self.network, crops, self.evaluation.flip_test, shift=self.codec.flip_shift
        )

    def __call__(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> dict[str, np.ndarray]:
        """Keypoints (N, K, 2) in image px, their scores (N, K), and the crops' areas (N,)
        (OKS-NMS uses them) for N person boxes (N, 4) xyxy in image px."""
        k = NUM_KEYPOINTS
        if len(boxes_xyxy) == 0:
            empty = np.zeros((0, k), np.float32)
            return {"keypoints_img": np.zeros((0, k, 2), np.float32), "keypoint_scores": empty,
                    "areas": np.zeros(0, np.float32)}  # fmt: skip
        crops, centers, scales = self.crops(image_bgr, boxes_xyxy)
        heatmaps = np.concatenate(
            [self.heatmaps(crops[i : i + self.batch_size])
             for i in range(0, len(crops), self.batch_size)]
        )  # fmt: skip
        keypoints_img, scores = self.codec.decode_to_image(heatmaps, centers, scales)
        return {"keypoints_img": keypoints_img, "keypoint_scores": scores,
                "areas": np.prod(scales, axis=1)}  # fmt: skip
