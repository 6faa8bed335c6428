"""mvp-bench-data: data-pipeline samples/s on one CPU core, written to reports/bench_data.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mobilevitpose.benchmarks.data import SHARED_DATA, VARIANTS, run
from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.files import write_json


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mvp-bench-data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench_data.json")
    parser.add_argument("--coco-mini", default=str(SHARED_DATA / "coco_mini"))
    parser.add_argument(
        "--root", default="data/synthetic", help="synthetic dataset used when coco_mini is absent"
    )
    parser.add_argument("-n", "--num-samples", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", default="paper", help="a conf/augment/ recipe")
    parser.add_argument("--core", type=int, default=0, help="CPU to pin to (-1: no pinning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference", default=None, help="JSON written by the reference's pipeline_bench.py"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-bench-data", args.debug):
        report = run(args)
        out = write_json(args.out, report)
        ratios = report.get("reference", {}).get("ratios", {})
        for name in VARIANTS:
            rates = report[f"{name}_dataset[i]"]
            ratio = f", {ratios[name]:.2f}x the reference" if name in ratios else ""
            print(
                f"{name + ' dataset[i]:':34s} median {rates['median']:.1f} samples/s "
                f"(best {rates['best']:.1f}){ratio}"
            )
        for name in ("train", "train_reduced"):
            stages = report[f"{name}_stages"]["ms_per_sample"]
            print(
                f"{name} stages (ms/sample): "
                + ", ".join(f"{k} {v:.3f}" for k, v in stages.items())
            )
        if "reference" in report:
            reference = report["reference"]["median"]
            print(f"reference (MMPose) train dataset[i]: {reference:.1f} samples/s")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
