"""mvp-predict: keypoints of every person in an image, a folder of images or a video.

mvp-predict runs/train/.../checkpoints/last.ckpt photo.jpg       # people detected first
mvp-predict last.ckpt clip.mp4 --smooth                              # tracked, ids drawn
mvp-predict model.onnx val2017/ --boxes COCO_val2017_detections_AP_H_56_person.json
mvp-predict model.int8.pte val2017/ --boxes person_keypoints_val2017.json
mvp-predict last.ckpt clip.mp4 --out clip_poses
mvp-predict model.onnx val2017/ --out poses --resume   # after a stopped run: adds what it lacks
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilevitpose.cli.errors import reported_as_user_errors
from mobilevitpose.evaluation.settings import NMS_MODES, SCORE_MODES
from mobilevitpose.inference.detector import (
    DEFAULT_DETECTOR,
    DEFAULT_MAX_PEOPLE,
    DEFAULT_SCORE_THRESHOLD,
    DETECTORS,
    NO_DETECTOR,
    PersonDetector,
)
from mobilevitpose.inference.estimator import BACKENDS
from mobilevitpose.inference.predict import RESULTS_FILE, predict
from mobilevitpose.inference.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF
from mobilevitpose.inference.tracking import MODES as TRACK_MODES


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mvp-predict", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", type=Path, help="a mvp-train checkpoint (.ckpt) or a mvp-export .onnx / .pte file"
    )
    parser.add_argument("input", type=Path, help="an image, a folder of images, or a video")
    parser.add_argument("--boxes", type=Path, help="COCO detection results or annotation file "
                        "(wins over --detector)")  # fmt: skip
    parser.add_argument("--detector", default=DEFAULT_DETECTOR,
                        choices=[*DETECTORS, NO_DETECTOR],
                        help=f"person detector without --boxes (torchvision, COCO weights from "
                        f"its cache or download; default {DEFAULT_DETECTOR}); {NO_DETECTOR}: the "
                        "whole image is one person")  # fmt: skip
    parser.add_argument("--detector-weights", type=Path,
                        help="the detector's weights from a local file (a state dict)")  # fmt: skip
    parser.add_argument("--det-score-thr", type=float, default=DEFAULT_SCORE_THRESHOLD,
                        help="keep detected people scored at least this")  # fmt: skip
    parser.add_argument("--max-people", type=int, default=DEFAULT_MAX_PEOPLE,
                        help="at most this many detected people per image, best first")  # fmt: skip
    parser.add_argument("--track", choices=TRACK_MODES, default="iou",
                        help="video: match people across frames by box IoU or by OKS")  # fmt: skip
    parser.add_argument("--smooth", action="store_true",
                        help="video: One-Euro filter on each person's keypoints")  # fmt: skip
    parser.add_argument("--smooth-min-cutoff", type=float, default=DEFAULT_MIN_CUTOFF,
                        help="One-Euro minimum cutoff, Hz")  # fmt: skip
    parser.add_argument("--smooth-beta", type=float, default=DEFAULT_BETA,
                        help="One-Euro speed coefficient (higher: less lag)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (default: <input name>_poses)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: onnx for .onnx, executorch for .pte, else torch")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--no-flip", action="store_true", help="turn the flip test off")
    parser.add_argument("--bbox-thr", type=float, default=0.0, help="drop boxes scored lower")
    parser.add_argument("--kpt-thr", type=float, default=0.3, help="hide keypoints scored lower")
    parser.add_argument("--nms-thr", type=float, default=None,
                        help="OKS threshold of the NMS (default: the model's)")  # fmt: skip
    parser.add_argument("--no-nms", action="store_true", help="keep every person box's result")
    parser.add_argument("--score-mode", choices=SCORE_MODES,
                        help="instance score (default: the model's)")  # fmt: skip
    parser.add_argument("--nms-mode", choices=NMS_MODES,
                        help="per-image suppression (default: the model's)")  # fmt: skip
    parser.add_argument("--no-render", action="store_true", help="write the JSON files only")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    parser.add_argument("--resume", action="store_true",
                        help="add the images that an earlier, stopped run into --out lacks, "
                        "keeping its results (give the same model and options)")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    with reported_as_user_errors("mvp-predict", args.debug):
        evaluation: dict[str, Any] = {}
        if args.no_flip:
            evaluation["flip_test"] = False
        if args.nms_thr is not None:
            evaluation["nms_thr"] = args.nms_thr
        if args.score_mode is not None:
            evaluation["score_mode"] = args.score_mode
        if args.nms_mode is not None:
            evaluation["nms_mode"] = args.nms_mode
        if args.no_nms:
            evaluation["nms_mode"] = "none"
        source = args.input.expanduser().resolve()
        out = args.out or source.with_name(f"{source.stem}_poses")
        detector = None
        if args.detector != NO_DETECTOR:
            detector = functools.partial(
                PersonDetector, args.detector, args.detector_weights, args.det_score_thr,
                args.max_people, device=args.device,
            )  # fmt: skip
        results = predict(
            args.model, args.input, out, boxes_file=args.boxes, backend=args.backend,
            device=args.device, evaluation=evaluation, bbox_score_thr=args.bbox_thr,
            keypoint_draw_thr=args.kpt_thr, render=not args.no_render, overwrite=args.overwrite,
            resume=args.resume, detector=detector, track=args.track,
            smooth={"min_cutoff": args.smooth_min_cutoff, "beta": args.smooth_beta}
            if args.smooth else None,
        )  # fmt: skip
        print(f"{len(results)} people -> {out / RESULTS_FILE}")


if __name__ == "__main__":
    main()
