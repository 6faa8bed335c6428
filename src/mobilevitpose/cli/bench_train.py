"""mvp-bench-train: images/s of the training step, fed by the real loader and from memory,
written to reports/bench_train.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.benchmarks import DEFAULT_MODELS
from mobilevitpose.benchmarks.train import run
from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.files import write_json


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mvp-bench-train", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument(
        "--input-size", nargs=2, type=int, metavar=("W", "H"),
        help="one input size for every model (default: each config's own)",
    )  # fmt: skip
    parser.add_argument("--data", choices=["synthetic", "coco"], default="synthetic",
                        help="synthetic: generated under --data-root when absent")  # fmt: skip
    parser.add_argument("--data-root", type=Path,
                        help="a COCO 2017 layout (default: the data config's root)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--precision", default="bf16-mixed",
                        choices=["32-true", "bf16-mixed", "16-mixed"])  # fmt: skip
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--device", help="default: cuda when present, else cpu")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_train.json"))
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-bench-train", args.debug):
        report = run(args)
        write_json(args.out, report)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
