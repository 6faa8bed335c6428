"""mvp-import: an MMPose top-down heatmap checkpoint as a mobilevitpose checkpoint.

mvp-import litehrnet18_coco_256x192-6bace359_20211230.pth --model litehrnet_18 --out lhr18.ckpt
mvp-import td-hm_hrnet-w32_8xb64-210e_coco-384x288-ca5956af_20220909.pth --input-size 288 384 \\
    --out w32_384.ckpt      # --model: by default the supported model the file's tensors fit
mvp-predict lhr18.ckpt val2017/ --boxes COCO_val2017_detections_AP_H_56_person.json

Models: litehrnet_18, litehrnet_30, wider_naive_litehrnet_18, hrnet_w32, hrnet_w48,
simplebaseline_r50, simplebaseline_r152 (MMPose 0.x or 1.x files).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.training.mmpose_import import (
    CODECS,
    DEFAULT_INPUT_SIZE,
    SUPPORTED,
    ImportSettings,
    import_mmpose,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mvp-import",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="the MMPose checkpoint (.pth)")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint to write (.ckpt)")
    parser.add_argument("--model", choices=list(SUPPORTED),
                        help="the model config (default: the one the file fits)")  # fmt: skip
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=list(DEFAULT_INPUT_SIZE),
        help="the input size the MMPose config trained at (default: 192 256; 288 384 for "
        "the *_384x288 models)",
    )
    parser.add_argument("--codec", choices=CODECS, default="msra",
                        help="the MMPose config's codec (msra for the zoo's plain configs, "
                        "udp or dark for *_udp / *_dark ones)")  # fmt: skip
    parser.add_argument("--sigma", type=float, default=None,
                        help="heatmap sigma for training targets (default: MMPose's, 2 at "
                        "256x192 and 3 at 384x288)")  # fmt: skip
    parser.add_argument("--no-flip-test", action="store_true",
                        help="predict without the flip test (MMPose's configs use it)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-import", args.debug):
        settings = ImportSettings(
            input_size=(args.input_size[0], args.input_size[1]),
            codec=args.codec,
            sigma=args.sigma,
            flip_test=not args.no_flip_test,
        )
        import_mmpose(args.source, args.out, args.model, settings, args.overwrite, log=print)


if __name__ == "__main__":
    main()
