"""How closely an exported network follows its PyTorch source: heatmap parity for fp32 artifacts,
keypoint deviation for INT8 ones (whose heatmaps differ by design, while their peaks should not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.models.pose_model import PoseModel, normalise_images

# A normalised float crop batch (B, 3, h, w) -> heatmaps (B, K, h / 4, w / 4), as numpy arrays.
Network = Callable[[np.ndarray], np.ndarray]

PARITY_ATOL = 1e-4
# Two batch sizes, one of them not the traced one, prove the batch axis really is dynamic.
PARITY_BATCH_SIZES = (1, 3)
# Keypoints the fp32 network itself scores this low are noise in both; they are not judged.
CONFIDENT_SCORE = 0.3


def random_inputs(model: PoseModel, batch_size: int, seed: int = 0) -> torch.Tensor:
    """Uniform-random RGB crops normalised as the network expects: (B, 3, h, w) float32."""
    width, height = model.input_size
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (batch_size, 3, height, width), generator=generator)
    return normalise_images(pixels.to(torch.uint8), model.mean, model.std)


def parity(
    model: PoseModel,
    network: Network,
    batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
    runtime: str = "the runtime",
) -> dict[str, Any]:
    """Max abs difference of `network`'s and PyTorch's heatmaps on random crops per batch size,
    plus the largest heatmap magnitude (a diff means little against all-but-zero heatmaps of a
    fresh head)."""
    if model.training:
        raise ValueError("parity needs the model in eval mode (BatchNorm running statistics)")
    max_abs_diff: dict[str, float] = {}
    max_abs_heatmap = 0.0
    for seed, batch_size in enumerate(batch_sizes):
        inputs = random_inputs(model, batch_size, seed=seed)
        with torch.inference_mode():
            expected = model(inputs).numpy()
        actual = network(inputs.numpy())
        if actual.shape != expected.shape:
            raise RuntimeError(
                f"{runtime} heatmaps have shape {actual.shape} at batch {batch_size}; PyTorch "
                f"gives {expected.shape}"
            )
        max_abs_diff[str(batch_size)] = float(np.abs(actual - expected).max())
        max_abs_heatmap = max(max_abs_heatmap, float(np.abs(expected).max()))
    return {"max_abs_diff": max_abs_diff, "max_abs_heatmap": max_abs_heatmap}


def check_parity(checked: dict[str, Any], atol: float, runtime: str, path: str) -> None:
    """Refuse an artifact whose heatmaps differ from PyTorch's by more than `atol` (or NaN)."""
    worst = max(checked["max_abs_diff"].values())
    if not worst <= atol:
        raise RuntimeError(
            f"{runtime} and PyTorch heatmaps differ by {worst:.3g} (max abs, per batch size: "
            f"{checked['max_abs_diff']}) > {atol:g}; {path!r} was not written"
        )


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances of matching keypoints (..., 2) -> (...)."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def deviation_summary(pixels: np.ndarray) -> dict[str, float]:
    """Median, p95 and max of keypoint distances, and how many there are."""
    if len(pixels) == 0:
        return {"keypoints": 0, "median_px": float("nan"), "p95_px": float("nan"),
                "max_px": float("nan")}  # fmt: skip
    return {
        "keypoints": len(pixels),
        "median_px": float(np.median(pixels)),
        "p95_px": float(np.percentile(pixels, 95)),
        "max_px": float(pixels.max()),
    }


def keypoint_deviation(
    reference: np.ndarray, heatmaps: np.ndarray, codec: HeatmapCodec
) -> dict[str, float]:
    """How far `heatmaps` put the keypoints the `reference` heatmaps (same crops) score
    >= CONFIDENT_SCORE, in input-crop px."""
    expected, scores = codec.decode(reference)
    actual, _ = codec.decode(heatmaps)
    return deviation_summary(distances(expected, actual)[scores >= CONFIDENT_SCORE])


def int8_tolerance_px(codec: HeatmapCodec) -> float:
    """The median keypoint shift an INT8 artifact may have: one heatmap cell in input px."""
    return float(max(np.asarray(codec.input_size) / np.asarray(codec.heatmap_size)))


def recorded_tolerance(tolerance_px: float) -> float | None:
    """A keypoint tolerance as stored in an artifact's metadata: None for a skipped check."""
    return float(tolerance_px) if np.isfinite(tolerance_px) else None


def check_keypoints(deviation: dict[str, float], tolerance_px: float, path: str) -> None:
    """Refuse an INT8 artifact whose keypoints drifted from fp32's by more than `tolerance_px`
    (median), or that could not be judged (no confident keypoint: an untrained network)."""
    if deviation["keypoints"] == 0:
        raise RuntimeError(
            f"no keypoint scored >= {CONFIDENT_SCORE} by the fp32 network on the calibration "
            f"crops, so the INT8 keypoints cannot be checked; quantise a trained checkpoint "
            f"({path!r} was not written)"
        )
    if not deviation["median_px"] <= tolerance_px:
        raise RuntimeError(
            f"INT8 keypoints moved {deviation['median_px']:.2f} px (median; p95 "
            f"{deviation['p95_px']:.2f}, max {deviation['max_px']:.2f}) from fp32's on the "
            f"calibration crops > {tolerance_px:g} px; {path!r} was not written"
        )


def calibration_inputs(model: PoseModel, crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops (N, 3, h, w) -> the normalised float32 input the graph takes."""
    width, height = model.input_size
    if crops.ndim != 4 or crops.shape[1:] != (3, height, width) or crops.dtype != np.uint8:
        raise ValueError(
            f"calibration crops must be uint8 (N, 3, {height}, {width}) for {model.name}; got "
            f"{crops.dtype} {crops.shape}"
        )
    return normalise_images(torch.from_numpy(crops), model.mean, model.std).numpy()


def reference_heatmaps(model: PoseModel, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """PyTorch fp32 heatmaps of normalised crops, in batches."""
    with torch.inference_mode():
        return np.concatenate(
            [model(torch.from_numpy(inputs[i : i + batch_size])).numpy()
             for i in range(0, len(inputs), batch_size)]
        )  # fmt: skip
