"""`mvp-synth`: render the synthetic COCO people dataset into a folder.

The folder must be new, empty, or hold a dataset mvp-synth wrote (rendered over); one holding
anything else, e.g. a real COCO download, is refused before a file is written.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.data.synthetic import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_MAX_PEOPLE,
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    MIN_AREA,
    generate,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mvp-synth", description="Render synthetic COCO people in the COCO 2017 layout."
    )
    parser.add_argument(
        "root",
        type=Path,
        help="output folder: new, empty, or an earlier mvp-synth dataset (rendered over)",
    )
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN)
    parser.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL)
    parser.add_argument("--width", type=int, default=DEFAULT_IMAGE_SIZE[0])
    parser.add_argument("--height", type=int, default=DEFAULT_IMAGE_SIZE[1])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-people", type=int, default=DEFAULT_MAX_PEOPLE)
    parser.add_argument("--min-area", type=int, default=MIN_AREA)
    parser.add_argument(
        "--workers", type=int, default=None, help="default: all cores, one per 200 images"
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-synth", args.debug):
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            generate(
                args.root,
                num_train=args.num_train,
                num_val=args.num_val,
                image_size=(args.width, args.height),
                seed=args.seed,
                max_people=args.max_people,
                min_area=args.min_area,
                workers=args.workers,
            )
        except ValueError as err:
            parser.error(str(err))


if __name__ == "__main__":
    main()
