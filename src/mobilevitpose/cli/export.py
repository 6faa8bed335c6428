"""mvp-export: write a pose network as ONNX, checked against PyTorch.

mvp-export runs/<run>/checkpoints/best.ckpt --out model.onnx
mvp-export --model mobilevitpose_s --out s.onnx            # random weights, for benchmarks
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.inference.checkpoint import load_pose_model
from mobilevitpose.inference.onnx import MIN_OPSET, export_onnx, load_onnx
from mobilevitpose.models.build import build_codec
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import build_model, compose, to_plain


def _model_from_config(
    name: str, overrides: Sequence[str]
) -> tuple[PoseModel, HeatmapCodec, EvaluationSettings]:
    model = build_model(name, overrides)
    cfg = compose("train", [f"model={name}", *overrides])
    codec = build_codec(to_plain(cfg.codec), model)
    return model, codec, EvaluationSettings.from_dict(to_plain(cfg.evaluation))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mvp-export", description=__doc__.splitlines()[0] if __doc__ else None
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
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=MIN_OPSET, help=f">= {MIN_OPSET}")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.overrides and args.model is None:
        parser.error("--set applies to --model only; a checkpoint carries its own config")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """`mvp-export CKPT --out model.onnx [--opset 17] [--overwrite]` or `--model NAME`."""
    args = _parse_args(argv)
    with reported_as_user_errors("mvp-export", args.debug):
        if args.model is not None:
            model, codec, evaluation = _model_from_config(args.model, args.overrides)
            source = f"config {args.model} (random weights)"
        else:
            model, codec, evaluation = load_pose_model(args.checkpoint)
            source = f"checkpoint {args.checkpoint}"
        path = export_onnx(
            model, args.out, args.opset, codec, evaluation=evaluation, overwrite=args.overwrite
        )
        _, metadata = load_onnx(path)
        checked = metadata["parity"]
        width, height = model.input_size
        print(
            f"exported {model.name} from {source} to {path} (opset {args.opset}, {width}x{height})"
        )
        for batch_size, diff in checked["max_abs_diff"].items():
            print(f"  parity batch {batch_size}: max |onnxruntime - torch| = {diff:.3g}")
        print(f"  max |heatmap| = {checked['max_abs_heatmap']:.3g}, tolerance {checked['atol']:g}")


if __name__ == "__main__":
    main()
