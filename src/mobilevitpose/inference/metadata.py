"""What every exported file carries besides its graph, for every format: the schema of its
metadata, written by `export_metadata`, checked by `check_metadata`, read back by
`codec_of` / `evaluation_of`; and `ExportReport`, what each exporter returns.

ONNX files store the metadata as JSON strings in `metadata_props`, ExecuTorch programs as JSON
text in a constant method; the keys and values are the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.keypoints import FLIP_INDICES, KEYPOINT_NAMES
from mobilevitpose.models.pose_model import PoseModel

# Keys every exported file carries; `codec`, `evaluation` and the export's check are added when
# known.
REQUIRED_METADATA = (
    "model_name",
    "input_size",
    "heatmap_size",
    "mean",
    "std",
    "keypoint_names",
    "flip_indices",
)


@dataclass(frozen=True)
class ExportReport:
    """An exported file and what its export's check measured: fp32, heatmap parity against
    PyTorch (`max_abs_diff` per batch size, `max_abs_heatmap`); INT8, keypoint deviation on the
    calibration crops (`median_px`, `p95_px`, `max_px`, `keypoints`)."""

    path: Path
    precision: str  # fp32 | int8
    check: dict[str, Any]


def export_metadata(
    model: PoseModel,
    codec: HeatmapCodec | None = None,
    evaluation: EvaluationSettings | None = None,
) -> dict[str, Any]:
    """What a predictor needs besides the graph, as plain JSON-able values (`evaluation`: the
    training run's settings, the predictor's defaults)."""
    metadata: dict[str, Any] = {
        "model_name": model.name,
        "input_size": list(model.input_size),
        "heatmap_size": list(model.heatmap_size),
        "mean": list(model.mean),
        "std": list(model.std),
        "keypoint_names": list(KEYPOINT_NAMES),
        "flip_indices": list(FLIP_INDICES),
    }
    if codec is not None:
        if tuple(codec.input_size) != model.input_size:
            raise ValueError(
                f"codec input_size {list(codec.input_size)} differs from the model's "
                f"{list(model.input_size)}"
            )
        # All fields, so that `HeatmapCodec(**metadata["codec"])` rebuilds the decoder.
        metadata["codec"] = dataclasses.asdict(codec)
    if evaluation is not None:
        metadata["evaluation"] = evaluation.to_dict()
    return metadata


def check_metadata(metadata: dict[str, Any], source: str) -> dict[str, Any]:
    """`metadata` itself once it holds every REQUIRED_METADATA key; ValueError otherwise."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"{source} lacks the metadata {missing}; export it again with mvp-export")
    return metadata


def codec_of(metadata: dict[str, Any], source: str) -> HeatmapCodec:
    """The decoder an exported file was trained with."""
    if "codec" not in metadata:
        raise ValueError(
            f"{source} carries no codec metadata; export it from a checkpoint with mvp-export"
        )
    return HeatmapCodec(**metadata["codec"])


def evaluation_of(metadata: dict[str, Any]) -> EvaluationSettings:
    """The evaluation settings an exported file carries (files exported before they were all
    recorded carry `flip_test` alone, or nothing: the defaults fill in)."""
    if "evaluation" in metadata:
        return EvaluationSettings.from_dict(metadata["evaluation"])
    return EvaluationSettings.from_dict({k: v for k, v in metadata.items() if k == "flip_test"})
