"""mvp-bench-data: data-pipeline samples/s on one CPU core, written to reports/bench_data.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mobilevitpose.benchmarks.data import SHARED_DATA, run
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
    args = parser.parse_args(argv)
    report = run(args)
    out = write_json(args.out, report)
    for name in ("train", "train_grouped", "val"):
        rates = report[f"{name}_dataset[i]"]
        print(
            f"{name + ' dataset[i]:':28s} median {rates['median']:.1f} samples/s "
            f"(best {rates['best']:.1f})"
        )
    stages = report["train_stages"]["ms_per_sample"]
    print("train stages (ms/sample): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    if "reference" in report:
        ref = report["reference"]
        print(
            f"reference train {ref['median']:.1f} samples/s; ours / reference: "
            f"{ref['ratio_train_vs_reference']:.2f} (per-person shuffle), "
            f"{ref['ratio_train_grouped_vs_reference']:.2f} (grouped by image)"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
