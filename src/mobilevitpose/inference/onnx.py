"""ONNX export of a pose network, checked against PyTorch, and loading for inference.

The ONNX graph maps a normalised crop "input" (B, 3, h, w) float32 to "heatmaps"
(B, K, h / 4, w / 4), with a dynamic batch axis and a fixed crop size. Everything a predictor
needs besides the graph (crop size, normalisation, keypoint order, flip pairs, the codec) rides
in the model's `metadata_props` as JSON strings, so the ONNX file stands alone.

The TorchScript exporter (`dynamo=False`) is used: the torch.export-based one needs onnxscript,
which is not a dependency, and the traced graph is as good for these convolutional/attention
networks (MobileViT's unfold/fold reshapes keep a symbolic batch dimension).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.keypoints import FLIP_INDICES, KEYPOINT_NAMES
from mobilevitpose.models.pose_model import PoseModel, normalise_images

INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"
MIN_OPSET = 17
PARITY_ATOL = 1e-4
# Two batch sizes, one of them not the traced one, prove the batch axis really is dynamic.
PARITY_BATCH_SIZES = (1, 3)
_TRACE_BATCH_SIZE = 2
# Keys every exported file carries; `codec` and `parity` are added when known.
REQUIRED_METADATA = (
    "model_name",
    "input_size",
    "heatmap_size",
    "mean",
    "std",
    "keypoint_names",
    "flip_indices",
)


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


def evaluation_of(metadata: dict[str, Any]) -> EvaluationSettings:
    """The evaluation settings an exported file carries (files exported before they were all
    recorded carry `flip_test` alone, or nothing: the defaults fill in)."""
    if "evaluation" in metadata:
        return EvaluationSettings.from_dict(metadata["evaluation"])
    return EvaluationSettings.from_dict({k: v for k, v in metadata.items() if k == "flip_test"})


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


def random_inputs(model: PoseModel, batch_size: int, seed: int = 0) -> torch.Tensor:
    """Uniform-random RGB crops normalised as the network expects: (B, 3, h, w) float32."""
    width, height = model.input_size
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (batch_size, 3, height, width), generator=generator)
    return normalise_images(pixels.to(torch.uint8), model.mean, model.std)


def parity(
    model: PoseModel,
    session: ort.InferenceSession,
    batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
) -> dict[str, Any]:
    """Max abs difference of ONNX Runtime and PyTorch heatmaps per batch size, plus the largest
    heatmap magnitude (a diff means little against all-but-zero heatmaps of a fresh head)."""
    if model.training:
        raise ValueError("parity needs the model in eval mode (BatchNorm running statistics)")
    max_abs_diff: dict[str, float] = {}
    max_abs_heatmap = 0.0
    for seed, batch_size in enumerate(batch_sizes):
        inputs = random_inputs(model, batch_size, seed=seed)
        with torch.inference_mode():
            expected = model(inputs).numpy()
        (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: inputs.numpy()})
        if actual.shape != expected.shape:
            raise RuntimeError(
                f"ONNX heatmaps have shape {actual.shape} at batch {batch_size}; PyTorch gives "
                f"{expected.shape}"
            )
        max_abs_diff[str(batch_size)] = float(np.abs(actual - expected).max())
        max_abs_heatmap = max(max_abs_heatmap, float(np.abs(expected).max()))
    return {"max_abs_diff": max_abs_diff, "max_abs_heatmap": max_abs_heatmap}


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


def export_onnx(
    model: PoseModel,
    path: str | Path,
    opset: int = MIN_OPSET,
    codec: HeatmapCodec | None = None,
    *,
    evaluation: EvaluationSettings | None = None,
    overwrite: bool = False,
    atol: float = PARITY_ATOL,
) -> Path:
    """Write `model` as ONNX to `path` once ONNX Runtime reproduces its heatmaps within `atol`.

    The parity numbers are stored in the metadata under "parity". Nothing is written when the
    check fails. `model` itself is left untouched (a CPU fp32 copy in eval mode is exported).
    """
    path = Path(path).expanduser()
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}; got {opset}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace")
    if path.suffix != ".onnx":
        raise ValueError(f"export path must end in .onnx; got {str(path)!r}")
    model = copy.deepcopy(model).float().cpu().eval()
    metadata = export_metadata(model, codec, evaluation)

    proto = _trace_to_onnx(model, opset)
    _set_metadata(proto, metadata)
    checked = parity(model, make_session(proto.SerializeToString()))
    worst = max(checked["max_abs_diff"].values())
    if not worst <= atol:  # also refuses NaN
        raise RuntimeError(
            f"ONNX Runtime and PyTorch heatmaps differ by {worst:.3g} (max abs, per batch size: "
            f"{checked['max_abs_diff']}) > {atol:g}; {str(path)!r} was not written"
        )
    _set_metadata(proto, {**metadata, "opset": opset, "parity": {"atol": atol, **checked}})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    return path


def decode_metadata(raw: dict[str, str], source: str) -> dict[str, Any]:
    """JSON-decode an exported file's `metadata_props`; ValueError when keys are missing."""
    metadata = {}
    for key, value in raw.items():
        try:
            metadata[key] = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: metadata {key!r} is not JSON ({err})") from None
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(
            f"{source} lacks the metadata {missing}; export it with mvp-export "
            "(mobilevitpose.inference.onnx.export_onnx)"
        )
    return metadata


def load_onnx(
    path: str | Path, intra_op_threads: int = 0, providers: Sequence[str] | None = None
) -> tuple[ort.InferenceSession, dict[str, Any]]:
    """An inference session for an exported file and its metadata (see `export_metadata`).

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
