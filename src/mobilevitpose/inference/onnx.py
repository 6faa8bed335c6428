"""ONNX export of a pose network (fp32, or statically quantised INT8), checked against PyTorch,
and loading for inference.

The ONNX graph maps a normalised crop "input" (B, 3, h, w) float32 to "heatmaps"
(B, K, h / 4, w / 4), with a dynamic batch axis and a fixed crop size. Everything a predictor
needs besides the graph (crop size, normalisation, keypoint order, flip pairs, the codec) rides
in the model's `metadata_props` as JSON strings (`metadata`), so the ONNX file stands alone.

The TorchScript exporter (`dynamo=False`) is used: the torch.export-based one needs onnxscript,
which is not a dependency, and the traced graph is as good for these convolutional/attention
networks (MobileViT's unfold/fold reshapes keep a symbolic batch dimension).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.inference.fidelity import (
    PARITY_ATOL,
    Network,
    calibration_inputs,
    check_keypoints,
    check_parity,
    int8_tolerance_px,
    keypoint_deviation,
    parity,
    recorded_tolerance,
    reference_heatmaps,
)
from mobilevitpose.inference.metadata import ExportReport, check_metadata, export_metadata
from mobilevitpose.models.pose_model import PoseModel

INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MIN_OPSET = 17
_TRACE_BATCH_SIZE = 2


def make_session(
    model: str | Path | bytes, intra_op_threads: int = 0, providers: Sequence[str] | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime session with every graph optimisation on (0 threads: ORT's default,
    one per physical core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    if isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(
        model, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
    )


def _trace_to_onnx(model: PoseModel, opset: int) -> onnx.ModelProto:
    width, height = model.input_size
    dummy = torch.zeros(_TRACE_BATCH_SIZE, 3, height, width)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # timm's MobileViT turns H and W into Python numbers while tracing; that is what we want
        # (the crop size is fixed), so its TracerWarnings and the legacy-exporter notice are noise.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes a file object
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    return proto


def _set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))


def _checked_path(path: str | Path, opset: int, overwrite: bool) -> Path:
    path = Path(path).expanduser()
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}; got {opset}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace")
    if path.suffix != ".onnx":
        raise ValueError(f"export path must end in .onnx; got {str(path)!r}")
    return path


def export_onnx(
    model: PoseModel,
    path: str | Path,
    opset: int = MIN_OPSET,
    codec: HeatmapCodec | None = None,
    *,
    evaluation: EvaluationSettings | None = None,
    overwrite: bool = False,
    atol: float = PARITY_ATOL,
) -> ExportReport:
    """Write `model` as ONNX to `path` once ONNX Runtime reproduces its heatmaps within `atol`.

    The parity numbers are stored in the metadata under "parity". Nothing is written when the
    check fails. `model` itself is left untouched (a CPU fp32 copy in eval mode is exported).
    """
    path = _checked_path(path, opset, overwrite)
    model = copy.deepcopy(model).float().cpu().eval()
    metadata = export_metadata(model, codec, evaluation)

    proto = _trace_to_onnx(model, opset)
    _set_metadata(proto, metadata)
    checked = parity(model, session_network(make_session(proto.SerializeToString())),
                     runtime="ONNX Runtime")  # fmt: skip
    check_parity(checked, atol, "ONNX Runtime", str(path))
    _set_metadata(
        proto,
        {**metadata, "opset": opset, "precision": "fp32", "parity": {"atol": atol, **checked}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    return ExportReport(path, "fp32", checked)


class _CalibrationReader(CalibrationDataReader):
    def __init__(self, inputs: np.ndarray, batch_size: int = 16) -> None:
        self._batches = iter(
            [{INPUT_NAME: inputs[i : i + batch_size]} for i in range(0, len(inputs), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def export_onnx_int8(
    model: PoseModel,
    path: str | Path,
    calibration: np.ndarray,
    codec: HeatmapCodec,
    *,
    evaluation: EvaluationSettings | None = None,
    calibration_source: str = "",
    opset: int = MIN_OPSET,
    overwrite: bool = False,
    check_keypoints_px: float | None = None,
) -> ExportReport:
    """Write `model` as a statically quantised INT8 ONNX file (QDQ, per-channel int8 weights,
    uint8 activations with ranges from the uint8 RGB `calibration` crops).

    The INT8 keypoints on the calibration crops are compared with fp32 PyTorch's and the file
    is refused when their median distance exceeds `check_keypoints_px` (default: one heatmap
    cell); `check_keypoints_px=inf` skips the check (random weights, for speed tests only).
    """
    path = _checked_path(path, opset, overwrite)
    model = copy.deepcopy(model).float().cpu().eval()
    inputs = calibration_inputs(model, calibration)
    metadata = export_metadata(model, codec, evaluation)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, prepared, quantised = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        onnx.save_model(_trace_to_onnx(model, opset), str(fp32))
        # ORT's recommended preparation: symbolic shapes and graph fusions before quantising.
        quant_pre_process(str(fp32), str(prepared))
        with _quiet_quantiser():
            quantize_static(
                str(prepared),
                str(quantised),
                _CalibrationReader(inputs),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        proto = onnx.load_model(str(quantised))
    network = session_network(make_session(proto.SerializeToString()))
    deviation = keypoint_deviation(
        reference_heatmaps(model, inputs), _batched(network, inputs), codec
    )
    tolerance = int8_tolerance_px(codec) if check_keypoints_px is None else check_keypoints_px
    if np.isfinite(tolerance):
        check_keypoints(deviation, tolerance, str(path))
    quantisation = {
        "scheme": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, MinMax",
        "calibration": calibration_source or f"{len(inputs)} crops",
        "keypoint_check": {"tolerance_px": recorded_tolerance(tolerance), **deviation},
    }
    _set_metadata(
        proto, {**metadata, "opset": opset, "precision": "int8", "quantization": quantisation}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    return ExportReport(path, "int8", deviation)


@contextlib.contextmanager
def _quiet_quantiser() -> Iterator[None]:
    # ORT's quantiser logs a root-logger warning for every per-channel axis it cannot use on
    # rank-1 weights (LayerNorm's), which it then quantises per tensor as intended.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _batched(network: Network, inputs: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate(
        [network(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    )


def session_network(session: ort.InferenceSession) -> Network:
    """Normalised float crops -> heatmaps through an ONNX Runtime session."""

    def network(inputs: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(inputs)})[0]

    return network


def decode_metadata(raw: dict[str, str], source: str) -> dict[str, Any]:
    """JSON-decode an exported ONNX file's `metadata_props`; ValueError when keys are missing."""
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: metadata {key!r} is not JSON ({err})") from None
    return check_metadata(metadata, source)


def load_onnx(
    path: str | Path, intra_op_threads: int = 0, providers: Sequence[str] | None = None
) -> tuple[ort.InferenceSession, dict[str, Any]]:
    """An inference session for an exported file and its metadata (`metadata`).

    Feed `{INPUT_NAME: crops}` with crops (B, 3, h, w) float32 normalised with the metadata's
    mean/std; the output is (B, K, h / 4, w / 4) heatmaps.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {str(path)!r}")
    try:
        session = make_session(path, intra_op_threads, providers)
    except Exception as err:  # ONNX Runtime raises its own untyped errors for a broken file
        raise ValueError(
            f"{str(path)!r} is not an ONNX model that ONNX Runtime can load "
            f"(truncated, or not ONNX?): {err}"
        ) from None
    metadata = decode_metadata(session.get_modelmeta().custom_metadata_map, repr(str(path)))
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ValueError(
            f"{str(path)!r} has inputs {inputs} and outputs {outputs}; expected "
            f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]"
        )
    return session, metadata
