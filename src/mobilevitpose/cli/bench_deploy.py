"""mvp-bench-deploy: each export format's COCO AP beside its checkpoint, and its latency and size
beside PyTorch eager, written to reports/deploy.{json,md}.

mvp-bench-deploy --checkpoint runs/train/quickstart/<run>/checkpoints/best-....ckpt
mvp-bench-deploy --models mobilevitpose_xxs --runs 20          # latency only
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.benchmarks import INFERENCE_MODELS
from mobilevitpose.benchmarks.deploy import run, to_markdown
from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.files import write_json
from mobilevitpose.inference.artifacts import FORMATS
from mobilevitpose.inference.calibration import DEFAULT_CALIBRATION_CROPS


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mvp-bench-deploy",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="accuracy of the formats of this checkpoint"
    )
    parser.add_argument("--data", type=Path,
                        help="COCO-layout root (default: the checkpoint's data.root)")  # fmt: skip
    parser.add_argument("--models", nargs="*", default=list(INFERENCE_MODELS),
                        help="latency of these model configs (none: skip latency)")  # fmt: skip
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument(
        "--input-size", nargs=2, type=int, metavar=("W", "H"),
        help="one input size for every model (default: each config's own)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40, help="timed batch-1 calls")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-runs", type=int, default=10)
    parser.add_argument("--batch-warmup", type=int, default=2)
    parser.add_argument("--calib-count", type=int, default=DEFAULT_CALIBRATION_CROPS)
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.models:
        parser.error("nothing to measure: give --checkpoint, --models, or both")
    with reported_as_user_errors("mvp-bench-deploy", args.debug):
        report = run(args)
        json_path = write_json(args.out_dir / "deploy.json", report, overwrite=True)
        markdown = to_markdown(report)
        (args.out_dir / "deploy.md").write_text(markdown)
        print(markdown)
        print(f"wrote {json_path} and {args.out_dir / 'deploy.md'}")


if __name__ == "__main__":
    main()
