"""mvp-pretrain-smoke: stand-in ImageNet weights for smoke runs, where the model hub is out of
reach (`training.smoke_pretrain`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.training.smoke_pretrain import pretrain_backbone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["mobilevit_xxs", "mobilevit_s"])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-pretrain-smoke", args.debug):
        logging.basicConfig(level=logging.INFO)
        for name in args.backbone:
            stats = pretrain_backbone(name, args.data_root, args.out_dir / f"{name}.safetensors",
                                      steps=args.steps, input_size=args.input_size,
                                      overwrite=args.overwrite)  # fmt: skip
            print(f"{name}: rotation accuracy {stats['accuracy']:.2f} (chance 0.25), "
                  f"loss {stats['loss']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
