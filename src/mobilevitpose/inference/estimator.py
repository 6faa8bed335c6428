"""The pose estimator: person boxes in an image -> keypoints in image pixels.

The checkpoint and its exported ONNX file go through the same crop, flip-test and decoding
code as validation, so they agree with it and with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.image_io import to_rgb_tensor, warp_crop
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.geometry import val_crop
from mobilevitpose.inference.checkpoint import load_pose_model
from mobilevitpose.inference.onnx import INPUT_NAME, OUTPUT_NAME, evaluation_of, load_onnx
from mobilevitpose.keypoints import NUM_KEYPOINTS
from mobilevitpose.models.flip import predict_heatmaps
from mobilevitpose.models.pose_model import normalise_images

BACKENDS = ("auto", "torch", "onnx")


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
    checkpoint); `from_checkpoint` and `from_onnx` build one from a mvp-train checkpoint or a
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
        target = _device(device)
        model, codec, evaluation = load_pose_model(path)
        model = model.to(target)

        @torch.inference_mode()
        def network(crops: np.ndarray) -> np.ndarray:
            images = model.normalise(torch.from_numpy(crops).to(target))
            return model(images).float().cpu().numpy()

        return cls(network, codec, evaluation)

    @classmethod
    def from_onnx(cls, path: str | Path) -> PoseEstimator:
        """A mvp-export ONNX file in ONNX Runtime, with the codec and evaluation settings
        stored in its metadata."""
        session, metadata = load_onnx(path)
        if "codec" not in metadata:
            raise ValueError(
                f"{path} carries no codec metadata; export it from a checkpoint with mvp-export"
            )
        mean, std = metadata["mean"], metadata["std"]

        def network(crops: np.ndarray) -> np.ndarray:
            # The graph takes normalised float crops, as a device runtime feeds it.
            images = normalise_images(torch.from_numpy(crops), mean, std).numpy()
            return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

        return cls(network, HeatmapCodec(**metadata["codec"]), evaluation_of(metadata))

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", device: str = "cpu") -> PoseEstimator:
        """A checkpoint (backend torch) or an exported ONNX file (backend onnx); `auto` tells
        them apart by the file's suffix."""
        path = Path(path).expanduser()
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path} (a .ckpt or .onnx file)")
        if backend == "auto":
            backend = "onnx" if path.suffix == ".onnx" else "torch"
        if backend == "onnx":
            if path.suffix != ".onnx":
                raise ValueError(f"backend=onnx needs an exported .onnx file; got {path}")
            return cls.from_onnx(path)
        if path.suffix == ".onnx":
            raise ValueError(f"{path} is an ONNX file; use backend=onnx (or auto)")
        return cls.from_checkpoint(path, device)

    def with_evaluation(self, **changes: Any) -> PoseEstimator:
        """This estimator with some evaluation settings changed (e.g. flip_test=False)."""
        evaluation = EvaluationSettings.from_dict({**self.evaluation.to_dict(), **changes})
        return PoseEstimator(self.network, self.codec, evaluation, self.batch_size)

    def crops(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, ...]:
        """uint8 RGB crops (N, 3, h, w) and their centres and scales (N, 2) in image px."""
        udp = self.codec.kind == "udp"
        crops, centers, scales = [], [], []
        for box in boxes_xyxy:
            crop = val_crop(np.asarray(box, dtype=np.float32), self.input_size)
            pixels = warp_crop(image_bgr, crop.image_matrix(self.input_size, udp), self.input_size)
            crops.append(to_rgb_tensor(pixels).numpy())
            centers.append(crop.center)
            scales.append(crop.scale)
        return np.stack(crops), np.stack(centers), np.stack(scales)

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
