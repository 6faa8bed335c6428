"""ExecuTorch programs (.pte) with the XNNPACK delegate, fp32 or INT8: PyTorch's own path to
Android and iOS. Needs the deploy extra (`pip install -e '.[deploy]'`).

The program's "forward" maps a normalised crop batch (B, 3, h, w) float32, B from 1 to
MAX_BATCH, to heatmaps (B, K, h / 4, w / 4). What a predictor needs besides the graph (as in
an exported ONNX file's metadata) is the program's constant method METADATA_METHOD: the JSON
text as a uint8 tensor, since ExecuTorch stores tensors and numbers, not strings. The checks
of an export (fp32 parity, INT8 keypoints) are stored as their tolerances; their measured
values are in the `ExportReport` that `export_executorch` returns, and what mvp-export prints.

INT8 is PyTorch 2 export quantisation with ExecuTorch's XNNPACK quantiser: symmetric int8,
per-channel weights, activation ranges observed on calibration crops.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    random_inputs,
    recorded_tolerance,
    reference_heatmaps,
)
from mobilevitpose.inference.metadata import ExportReport, check_metadata, export_metadata
from mobilevitpose.models.lowering import for_mobile_delegates
from mobilevitpose.models.pose_model import PoseModel

DEPLOY_EXTRA = "pip install -e '.[deploy]'"
METADATA_METHOD = "mvp_metadata"
# torch.export records the batch range asked for, but the lowered program refuses batches from 16
# on (ExecuTorch 1.5.1, error 0x10 at set_inputs); larger batches run in chunks of MAX_BATCH.
MAX_BATCH = 8
SUFFIX = ".pte"
_CALIBRATION_BATCH = 16


def require_executorch() -> None:
    try:
        import executorch.runtime  # noqa: F401
    except ImportError as err:
        raise ModuleNotFoundError(
            f"ExecuTorch is not installed ({err}); it comes with the deploy extra: {DEPLOY_EXTRA}"
        ) from None


def set_threads(threads: int) -> None:
    """Size ExecuTorch's (process-wide) CPU thread pool, as `torch.set_num_threads` does
    PyTorch's."""
    require_executorch()
    from executorch.extension.pybindings import portable_lib

    portable_lib._unsafe_reset_threadpool(threads)


def _batches(inputs: np.ndarray) -> Iterator[torch.Tensor]:
    for start in range(0, len(inputs), _CALIBRATION_BATCH):
        yield torch.from_numpy(inputs[start : start + _CALIBRATION_BATCH])


def _quantised(
    exported: torch.export.ExportedProgram, inputs: np.ndarray
) -> torch.export.ExportedProgram:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True)
    )
    observed = prepare_pt2e(exported.module(), quantizer)
    for batch in _batches(inputs):
        observed(batch)
    converted = convert_pt2e(observed)
    example_args = exported.example_inputs[0]
    return torch.export.export(converted, example_args, dynamic_shapes=_dynamic_batch())


def _dynamic_batch() -> dict[str, dict[int, Any]]:
    return {"x": {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}


def _encode(metadata: dict[str, Any]) -> torch.Tensor:
    return torch.tensor(list(json.dumps(metadata).encode()), dtype=torch.uint8)


def export_executorch(
    model: PoseModel,
    path: str | Path,
    codec: HeatmapCodec | None = None,
    *,
    evaluation: EvaluationSettings | None = None,
    calibration: np.ndarray | None = None,
    calibration_source: str = "",
    overwrite: bool = False,
    atol: float = PARITY_ATOL,
    check_keypoints_px: float | None = None,
) -> ExportReport:
    """Write `model` as an ExecuTorch program lowered to XNNPACK, fp32, or INT8 when uint8 RGB
    `calibration` crops are given; the report holds what the export's check measured.

    fp32 is refused if its heatmaps differ from PyTorch's by more than `atol`; INT8 if its
    keypoints on the calibration crops moved more than `check_keypoints_px` (median; default one
    heatmap cell, inf skips the check). Nothing is written when a check fails.
    """
    require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = Path(path).expanduser()
    if path.suffix != SUFFIX:
        raise ValueError(f"an ExecuTorch program's path must end in {SUFFIX}; got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace")
    if calibration is not None and codec is None:
        raise ValueError("an INT8 export needs the codec: its check compares keypoints")
    source = copy.deepcopy(model).float().cpu().eval()
    delegated = for_mobile_delegates(source, upsampling_as_conv=calibration is None)
    exported = torch.export.export(
        delegated, (random_inputs(source, 2),), dynamic_shapes=_dynamic_batch()
    )
    metadata = export_metadata(source, codec, evaluation)
    if calibration is None:
        metadata.update(precision="fp32", parity={"atol": atol})
    else:
        inputs = calibration_inputs(source, calibration)
        exported = _quantised(exported, inputs)
        assert codec is not None
        tolerance = int8_tolerance_px(codec) if check_keypoints_px is None else check_keypoints_px
        metadata.update(
            precision="int8",
            quantization={
                "scheme": "PT2E XNNPACKQuantizer, symmetric int8, per-channel weights",
                "calibration": calibration_source or f"{len(inputs)} crops",
                "keypoint_check": {"tolerance_px": recorded_tolerance(tolerance)},
            },
        )
    program = to_edge_transform_and_lower(
        exported,
        partitioner=[XnnpackPartitioner()],
        constant_methods={METADATA_METHOD: _encode(metadata)},
    ).to_executorch()
    network = _program_network(program.buffer, str(path))
    if calibration is None:
        checked = parity(source, network, runtime="ExecuTorch")
        check_parity(checked, atol, "ExecuTorch", str(path))
    else:
        assert codec is not None
        checked = keypoint_deviation(reference_heatmaps(source, inputs), network(inputs), codec)
        if np.isfinite(tolerance):
            check_keypoints(checked, tolerance, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(program.buffer)
    return ExportReport(path, "fp32" if calibration is None else "int8", checked)


def _program_network(program: bytes | Path, source: str) -> Network:
    from executorch.runtime import Runtime

    try:
        loaded = Runtime.get().load_program(program)
        forward = loaded.load_method("forward")
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{source} is not an ExecuTorch program this runtime can load (truncated, or not "
            f"a .pte?): {err}"
        ) from None
    if forward is None:
        raise ValueError(f"{source} has no 'forward' method")

    def network(inputs: np.ndarray) -> np.ndarray:
        # The method runs on memory of the program (and its buffer): both live as long as this.
        _keep_alive = (program, loaded)
        outputs = []
        for start in range(0, len(inputs), MAX_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + MAX_BATCH]))
            outputs.append(forward.execute([batch])[0].numpy())
        return np.concatenate(outputs)

    return network


def load_executorch(path: str | Path) -> tuple[Network, dict[str, Any]]:
    """The "forward" of a mvp-export .pte file as a function of normalised crops, and the
    program's metadata (`metadata`)."""
    require_executorch()
    from executorch.runtime import Runtime

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ExecuTorch program not found: {str(path)!r}")
    network = _program_network(path, repr(str(path)))
    program = Runtime.get().load_program(path)
    if METADATA_METHOD not in program.method_names:
        raise ValueError(
            f"{str(path)!r} carries no {METADATA_METHOD!r}; export it with mvp-export --format "
            "executorch"
        )
    (encoded,) = program.load_method(METADATA_METHOD).execute([])
    try:
        metadata = json.loads(bytes(encoded.tolist()).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r}: its {METADATA_METHOD!r} is not JSON ({err})") from None
    return network, check_metadata(metadata, repr(str(path)))
