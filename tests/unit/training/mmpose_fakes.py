"""MMPose top-down checkpoints without MMPose: its state-dict layouts and reproducible weights.

tests/data/mmpose_keys/<model>.txt lists, per mobilevitpose model config, the tensor names and
shapes of the `TopdownPoseEstimator` that MMPose 1.3.2 builds from the matching COCO config (its
first line names it), in MMPose's own order. They were written once, in MMPose's environment
(`bash /work/shared/tools/mmpose/install_mmpose.sh VENV`), from
`MODELS.build(Config.fromfile(CONFIG).model).state_dict()`.

`fake_weights` fills such a layout from a counter-based hash (splitmix64) instead of a random
generator, so that the same values come out of any numpy and torch version: the reference
heatmaps in tests/data/mmpose_import_reference.safetensors are MMPose's forward pass of exactly
these weights. This file needs numpy and torch only, so that the script which measured them
could import it in MMPose's environment.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

KEYS_DIR = Path(__file__).resolve().parents[2] / "data" / "mmpose_keys"

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def mmpose_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """MMPose 1.x's (name, shape) of every tensor of the model that `name` imports."""
    entries = []
    for line in (KEYS_DIR / f"{name}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, shape = line.partition(" ")
        entries.append((key, tuple(int(v) for v in shape.split(",")) if shape else ()))
    return entries


def _uniform(key: str, count: int, seed: int) -> np.ndarray:
    """`count` values in [0, 1), a pure function of (key, seed, index)."""
    with np.errstate(over="ignore"):
        start = np.uint64((zlib.crc32(key.encode()) << 20) ^ seed)
        x = (np.arange(count, dtype=np.uint64) + start) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def fake_weights(
    keys: list[tuple[str, tuple[int, ...]]], seed: int = 0, gain: float = 1.0
) -> dict[str, torch.Tensor]:
    """Weights like a trained network's in scale: convolutions uniform with variance
    gain / fan-in (fan-in over all but the first axis), BatchNorm scales and variances in
    [0.5, 1.5), shifts, means and biases in [-0.1, 0.1); `num_batches_tracked` 0."""
    state = {}
    for key, shape in keys:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.int64)
            continue
        count = int(np.prod(shape, dtype=np.int64))
        u = _uniform(key, count, seed).reshape(shape)
        if len(shape) >= 2:
            fan_in = count // shape[0]
            values = (2.0 * u - 1.0) * np.sqrt(3.0 * gain / fan_in)
        elif key.endswith(("running_var", ".weight")):
            values = 0.5 + u
        else:
            values = 0.2 * u - 0.1
        state[key] = torch.from_numpy(values.astype(np.float32))
    return state


def in_layout(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """A 1.x state dict in MMPose 1.x's layout or 0.x's (whose TopdownHeatmapSimpleHead names
    its layers as 1.x's HeatmapHead does, under `keypoint_head.` instead of `head.`)."""
    if layout == "1.x":
        return dict(state)
    if layout != "0.x":
        raise ValueError(f"layout must be 0.x or 1.x; got {layout!r}")
    return {
        ("keypoint_" + key if key.startswith("head.") else key): value
        for key, value in state.items()
    }
