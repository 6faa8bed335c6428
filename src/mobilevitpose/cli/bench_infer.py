"""mvp-bench-infer: inference latency and throughput, PyTorch eager vs ONNX Runtime (+CUDA),
written to reports/bench_infer.{json,md}."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.benchmarks import INFERENCE_MODELS
from mobilevitpose.benchmarks.infer import run, to_markdown
from mobilevitpose.benchmarks.pipeline import WEIGHTS
from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.files import write_json
from mobilevitpose.inference.detector import DEFAULT_DETECTOR, DETECTORS


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mvp-bench-infer", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--models", nargs="+", default=list(INFERENCE_MODELS))
    parser.add_argument(
        "--input-size", nargs=2, type=int, metavar=("W", "H"),
        help="one input size for every model (default: each config's own)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 calls")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="throughput batch size")
    parser.add_argument("--batch-runs", type=int, default=5, help="timed throughput batches")
    parser.add_argument("--batch-warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: every usable core")
    parser.add_argument("--no-cuda", action="store_true", help="CPU backends only")
    pipeline = parser.add_argument_group(
        "photo to poses", "a person detector, then each model on the people (CPU, per image)"
    )
    pipeline.add_argument("--detectors", nargs="*", default=[DEFAULT_DETECTOR], metavar="NAME",
                          help=f"torchvision detectors (default: {DEFAULT_DETECTOR}; "
                               f"none given: skip); allowed: {', '.join(DETECTORS)}")  # fmt: skip
    pipeline.add_argument("--detector-weights", choices=WEIGHTS, default="coco",
                          help="coco: torchvision's (downloaded once); random: seeded")  # fmt: skip
    pipeline.add_argument("--photo", type=Path,
                          help="the image (default: 640x480 noise)")  # fmt: skip
    pipeline.add_argument("--people", type=int, default=3, help="person boxes per image")
    pipeline.add_argument("--pipeline-runs", type=int, default=10, help="timed images")
    pipeline.add_argument("--pipeline-warmup", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-bench-infer", args.debug):
        for flag in ("runs", "batch", "batch_runs", "people", "pipeline_runs"):
            if getattr(args, flag) < 1:
                parser.error(f"--{flag.replace('_', '-')} must be >= 1")
        report = run(args)
        write_json(args.out_dir / "bench_infer.json", report)
        markdown = to_markdown(report)
        (args.out_dir / "bench_infer.md").write_text("# Inference benchmark\n\n" + markdown)
        print(markdown)


if __name__ == "__main__":
    main()
