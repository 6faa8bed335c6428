"""mvp-report-table3: Table 3 (RQ2: plain vs ImageNet pre-trained) and Figs. 2-3 from finished
runs, read from their run directories (no account needed) or from wandb."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.reporting.runs import find_runs, runs_from_wandb
from mobilevitpose.reporting.table3 import SMOKE_CAVEAT, write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Table 3 and Figs. 2-3 from finished runs.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", type=Path, nargs="+", help="run or sweep directories")
    source.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from wandb")
    parser.add_argument("--group", help="wandb group (the sweep's experiment name)")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("--smoke", action="store_true",
                        help="mark the report as a smoke run on synthetic data")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-report-table3", args.debug):
        runs = find_runs(args.runs) if args.runs else runs_from_wandb(args.wandb, args.group)
        report = write_report(runs, args.out_dir, SMOKE_CAVEAT if args.smoke else None)
        print((args.out_dir / "table3.md").read_text())
        if any(math.isnan(v) for r in report["rows"] for v in r["ours"].values()):
            raise SystemExit("some runs have NaN metrics")


if __name__ == "__main__":
    main()
