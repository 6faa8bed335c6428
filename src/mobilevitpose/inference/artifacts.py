"""The artifacts mvp-export writes, by format name: what each is, how it is written and how it
is run. fp32 ONNX is the portable file; INT8 ONNX runs quantised in ONNX Runtime; ExecuTorch
programs (fp32, INT8) run in PyTorch's mobile runtime on Android and iOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.inference import executorch_program
from mobilevitpose.inference.fidelity import Network
from mobilevitpose.inference.metadata import ExportReport
from mobilevitpose.inference.onnx import export_onnx, export_onnx_int8, load_onnx, session_network
from mobilevitpose.models.pose_model import PoseModel

if TYPE_CHECKING:
    from mobilevitpose.inference.calibration import CropSet


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    backend: str  # mvp-predict's --backend
    int8: bool


FORMATS = {
    f.name: f
    for f in (
        Format("onnx", ".onnx", "onnx", int8=False),
        Format("onnx-int8", ".onnx", "onnx", int8=True),
        Format("executorch", executorch_program.SUFFIX, "executorch", int8=False),
        Format("executorch-int8", executorch_program.SUFFIX, "executorch", int8=True),
    )
}
BACKEND_OF_SUFFIX = {f.suffix: f.backend for f in FORMATS.values()}
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "executorch": "ExecuTorch (XNNPACK)"}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; allowed: {', '.join(FORMATS)}")
    return FORMATS[name]


def export_artifact(
    format_name: str,
    model: PoseModel,
    path: str | Path,
    codec: HeatmapCodec,
    evaluation: EvaluationSettings | None = None,
    calibration: CropSet | None = None,
    *,
    overwrite: bool = False,
    check_keypoints_px: float | None = None,
) -> ExportReport:
    """Write `model` in `format_name` to `path` once it passes its format's check (fp32: heatmap
    parity; INT8: keypoint deviation on the calibration crops, which INT8 formats need)."""
    fmt = get_format(format_name)
    path = Path(path).expanduser()
    if path.suffix != fmt.suffix:
        raise ValueError(f"format {fmt.name} writes {fmt.suffix} files; got {str(path)!r}")
    if fmt.int8 and calibration is None:
        raise ValueError(f"format {fmt.name} needs calibration crops")
    crops = calibration.crops if calibration is not None and fmt.int8 else None
    source = calibration.source if calibration is not None else ""
    if fmt.backend == "executorch":
        return executorch_program.export_executorch(
            model, path, codec, evaluation=evaluation, calibration=crops,
            calibration_source=source, overwrite=overwrite, check_keypoints_px=check_keypoints_px,
        )  # fmt: skip
    if crops is None:
        return export_onnx(model, path, codec=codec, evaluation=evaluation, overwrite=overwrite)
    return export_onnx_int8(
        model, path, crops, codec, evaluation=evaluation, calibration_source=source,
        overwrite=overwrite, check_keypoints_px=check_keypoints_px,
    )  # fmt: skip


def load_artifact(path: str | Path, threads: int = 0) -> tuple[Network, dict[str, Any]]:
    """An exported file's network (normalised crops -> heatmaps) and metadata, in the runtime
    its suffix names (`threads` 0: the runtime's default)."""
    path = Path(path).expanduser()
    backend = BACKEND_OF_SUFFIX.get(path.suffix)
    if backend is None:
        raise ValueError(
            f"{str(path)!r} is not an exported file: its suffix must be one of "
            f"{sorted(BACKEND_OF_SUFFIX)}"
        )
    if backend == "executorch":
        if threads:
            executorch_program.set_threads(threads)
        return executorch_program.load_executorch(path)
    session, metadata = load_onnx(path, intra_op_threads=threads)
    return session_network(session), metadata
