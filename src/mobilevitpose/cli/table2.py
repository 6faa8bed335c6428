"""mvp-table2: parameters and multiply-accumulates of every model config (Table 2), with the
AP/AR of finished runs where given."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.files import write_json
from mobilevitpose.reporting.runs import find_runs
from mobilevitpose.reporting.table2 import build_report, to_markdown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("--runs", type=Path, nargs="*", default=[],
                        help="run or sweep directories whose AP/AR fill the table")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-table2", args.debug):
        rows = build_report(find_runs(args.runs) if args.runs else ())
        write_json(args.out_dir / "table2.json", rows)
        markdown = to_markdown(rows)
        (args.out_dir / "table2.md").write_text("# Table 2: model complexity\n\n" + markdown)
        print(markdown)


if __name__ == "__main__":
    main()
