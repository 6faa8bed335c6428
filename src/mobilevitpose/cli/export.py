"""mvp-export: write a pose network for a runtime (ONNX Runtime, ExecuTorch), checked against
PyTorch.

mvp-export runs/<run>/checkpoints/best.ckpt --out model.onnx
mvp-export best.ckpt --format executorch-int8 --out model.int8.pte   # calibrated on the run's data
mvp-export best.ckpt --format onnx-int8 --out m.int8.onnx --calib-data data/coco --calib-split val
mvp-export --model mobilevitpose_s --out s.onnx            # random weights, for benchmarks
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.inference.artifacts import FORMATS, export_artifact, get_format
from mobilevitpose.inference.calibration import DEFAULT_CALIBRATION_CROPS, CropSet, split_crops
from mobilevitpose.inference.checkpoint import load_pose_model, read_checkpoint
from mobilevitpose.training.config import build_model_bundle


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mvp-export",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("checkpoint", nargs="?", type=Path, help="a mvp-train checkpoint (.ckpt)")
    source.add_argument(
        "--model", help="a model config name (conf/model/<name>.yaml) with random weights"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override for --model, e.g. --set model.input_size=[192,256] (repeatable)",
    )
    parser.add_argument(
        "--format",
        default="onnx",
        choices=FORMATS,
        help="onnx (fp32), onnx-int8 (ONNX Runtime static INT8), executorch (XNNPACK fp32), "
        "executorch-int8 (XNNPACK INT8); executorch needs the deploy extra",
    )
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument(
        "--calib-data",
        type=Path,
        help="INT8: a COCO-layout data root to calibrate on (default: the checkpoint's data.root)",
    )
    parser.add_argument("--calib-split", default="train", choices=("train", "val"))
    parser.add_argument(
        "--calib-count", type=int, default=DEFAULT_CALIBRATION_CROPS, help="person crops"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.overrides and args.model is None:
        parser.error("--set applies to --model only; a checkpoint carries its own config")
    if args.calib_count < 1:
        parser.error(f"--calib-count must be >= 1; got {args.calib_count}")
    return args


def _calibration(args: argparse.Namespace, codec: HeatmapCodec) -> CropSet:
    root = args.calib_data
    if root is None:
        if args.checkpoint is None:
            raise ValueError("--format with INT8 and --model (random weights) needs --calib-data")
        root = read_checkpoint(args.checkpoint).data_root("pass --calib-data")
    return split_crops(root, args.calib_split, codec, args.calib_count)


def _describe(checked: dict[str, Any]) -> list[str]:
    if "max_abs_diff" in checked:
        return [
            f"  parity batch {batch}: max |runtime - torch| heatmaps = {diff:.3g}"
            for batch, diff in checked["max_abs_diff"].items()
        ] + [f"  max |heatmap| = {checked['max_abs_heatmap']:.3g}"]
    return [
        f"  INT8 keypoints vs fp32 on the calibration crops ({checked['keypoints']} confident "
        f"keypoints): median {checked['median_px']:.2f} px, p95 {checked['p95_px']:.2f} px, max "
        f"{checked['max_px']:.2f} px (input crop px)"
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """`mvp-export CKPT --out FILE [--format F] [--overwrite]` or `--model NAME`."""
    args = _parse_args(argv)
    with reported_as_user_errors("mvp-export", args.debug):
        fmt = get_format(args.format)
        if args.model is not None:
            model, codec, evaluation = build_model_bundle(args.model, args.overrides)
            source = f"config {args.model} (random weights)"
        else:
            model, codec, evaluation = load_pose_model(args.checkpoint)
            source = f"checkpoint {args.checkpoint}"
        calibration = _calibration(args, codec) if fmt.int8 else None
        # Random weights have no keypoints to compare: their INT8 file is for timing only.
        check = math.inf if fmt.int8 and args.model is not None else None
        report = export_artifact(
            fmt.name, model, args.out, codec, evaluation, calibration,
            overwrite=args.overwrite, check_keypoints_px=check,
        )  # fmt: skip
        width, height = model.input_size
        print(f"exported {model.name} from {source} to {args.out} ({fmt.name}, {width}x{height})")
        if calibration is not None:
            print(f"  calibrated on {calibration.source}")
        print("\n".join(_describe(report.check)))


if __name__ == "__main__":
    main()
