"""What shipping costs: each export format's accuracy beside its checkpoint, and its latency and
size beside PyTorch eager.

Accuracy (`--checkpoint`): every format is exported from the checkpoint (INT8 calibrated on
crops of its data root's train split), then mvp-predict's path runs the checkpoint and each
artifact on the val split with its ground-truth boxes: COCO AP, and how far each artifact's
keypoints land from the checkpoint's (image px, keypoints the checkpoint scores >= 0.3).

Latency (`--models`, random weights: speed does not depend on their values): PyTorch eager fp32
(the 1.00x reference) and every format at batch 1 and `--batch`, all on `--threads` threads,
taking turns in short blocks so that background load hits them alike. Writes
`<out-dir>/deploy.json` and `<out-dir>/deploy.md`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from mobilevitpose.benchmarks import describe_sizes, input_size_overrides
from mobilevitpose.benchmarks.machine import machine_info
from mobilevitpose.benchmarks.timing import Backend, summarise, time_interleaved, timing_settings
from mobilevitpose.coco import coco_paths, read_annotations
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.coco_metric import CocoKeypointEvaluator
from mobilevitpose.inference import executorch_program
from mobilevitpose.inference.artifacts import FORMATS, RUNTIME_NAMES, export_artifact, load_artifact
from mobilevitpose.inference.calibration import CropSet, split_crops
from mobilevitpose.inference.checkpoint import load_pose_model, read_checkpoint
from mobilevitpose.inference.estimator import PoseEstimator
from mobilevitpose.inference.fidelity import (
    CONFIDENT_SCORE,
    deviation_summary,
    distances,
    random_inputs,
)
from mobilevitpose.inference.predict import predict
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import build_model_bundle

EAGER = "PyTorch eager"
GOAL_RATIO = 0.35
GOAL_AP_DROP = 0.01


def available_formats() -> list[str]:
    """Every format whose runtime is installed here (ExecuTorch comes with the deploy extra)."""
    try:
        executorch_program.require_executorch()
    except ModuleNotFoundError:
        return [name for name, fmt in FORMATS.items() if fmt.backend != "executorch"]
    return list(FORMATS)


def _megabytes(path: Path) -> float:
    return path.stat().st_size / 1e6


def _weights_megabytes(model: PoseModel) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def _data_root(checkpoint: Path, data: Path | None) -> Path:
    if data is not None:
        return data
    return read_checkpoint(checkpoint).data_root("pass --data")


def accuracy(args: argparse.Namespace, formats: list[str], folder: Path) -> dict[str, Any]:
    """COCO AP of the checkpoint and of each format exported from it, on the val split."""
    model, codec, evaluation = load_pose_model(args.checkpoint)
    root = _data_root(args.checkpoint, args.data)
    calibration = split_crops(root, "train", codec, args.calib_count)
    ann_file, image_dir = coco_paths(root, "val")
    evaluator = CocoKeypointEvaluator(read_annotations(ann_file))
    val_crops = split_crops(root, "val", codec, count=None)
    reference = PoseEstimator.from_checkpoint(args.checkpoint)
    expected, scores = _keypoints(reference, codec, val_crops)
    confident = scores >= CONFIDENT_SCORE

    def score(model_file: Path, name: str) -> dict[str, float]:
        results = predict(
            model_file,
            image_dir,
            folder / f"predict-{name}",
            boxes_file=ann_file,
            render=False,
            progress=False,
        )
        return evaluator.evaluate(results)

    rows: list[dict[str, Any]] = [
        {
            "format": "checkpoint",
            "runtime": "PyTorch",
            "precision": "fp32",
            "size_mb": _weights_megabytes(model),
            "metrics": score(args.checkpoint, "ckpt"),
        }
    ]
    for name in formats:
        path = folder / f"{model.name}-{name}{FORMATS[name].suffix}"
        started = time.perf_counter()
        checked = export_artifact(name, model, path, codec, evaluation, calibration).check
        export_s = time.perf_counter() - started
        estimator = PoseEstimator.from_export(path, threads=args.threads)
        actual, _ = _keypoints(estimator, codec, val_crops)
        rows.append(
            {
                "format": name,
                "runtime": RUNTIME_NAMES[FORMATS[name].backend],
                "precision": "int8" if FORMATS[name].int8 else "fp32",
                "size_mb": _megabytes(path),
                "export_s": export_s,
                "export_check": checked,
                "metrics": score(path, name),
                "deviation": deviation_summary(distances(expected, actual)[confident]),
            }
        )
    base_ap = rows[0]["metrics"]["AP"]
    for row in rows:
        row["ap_drop"] = base_ap - row["metrics"]["AP"]
    return {
        "checkpoint": str(args.checkpoint),
        "model": model.name,
        "input_size": list(model.input_size),
        "val": str(ann_file),
        "val_crops": len(val_crops),
        "calibration": calibration.source,
        "flip_test": evaluation.flip_test,
        "rows": rows,
    }


def _keypoints(
    estimator: PoseEstimator, codec: HeatmapCodec, crops: CropSet
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in image px and scores of `crops`, as the estimator predicts them (flip test
    as its settings say)."""
    heatmaps = np.concatenate(
        [estimator.heatmaps(crops.crops[i : i + 32]) for i in range(0, len(crops), 32)]
    )
    return codec.decode_to_image(heatmaps, crops.centers, crops.scales)


def _backends(
    model: PoseModel, networks: dict[str, Callable[[np.ndarray], np.ndarray]], batch: int
) -> list[Backend]:
    """Eager fp32 first, then each format's network, in `networks`' order."""
    inputs = random_inputs(model, batch)
    array = inputs.numpy()

    def eager() -> object:
        with torch.inference_mode():
            return model(inputs)

    def call(network: Callable[[np.ndarray], np.ndarray]) -> Callable[[], object]:
        return lambda: network(array)

    return [Backend(EAGER, "cpu", "fp32", "NCHW", eager)] + [
        Backend(
            RUNTIME_NAMES[FORMATS[name].backend],
            "cpu",
            "int8" if FORMATS[name].int8 else "fp32",
            "NCHW",
            call(network),
        )
        for name, network in networks.items()
    ]


def latency(args: argparse.Namespace, formats: list[str], folder: Path) -> list[dict[str, Any]]:
    """Every format beside eager fp32, per model, at batch 1 and `args.batch`."""
    rows: list[dict[str, Any]] = []
    for model_name in args.models:
        model, codec, evaluation = build_model_bundle(
            model_name, input_size_overrides(args.input_size)
        )
        width, height = model.input_size
        calibration = (
            split_crops(args.data, "train", codec, args.calib_count)
            if args.data is not None
            else _random_crops(model, args.calib_count)
        )
        networks, sizes = {}, {EAGER: _weights_megabytes(model)}
        for name in formats:
            path = folder / f"{model_name}-{width}x{height}-{name}{FORMATS[name].suffix}"
            # Random weights: nothing to judge INT8 keypoints by; these files are for timing.
            export_artifact(
                name, model, path, codec, evaluation, calibration, check_keypoints_px=math.inf
            )
            networks[name], _ = load_artifact(path, threads=args.threads)
            sizes[name] = _megabytes(path)
        times, backends = {}, []
        for batch, runs, warmup in (
            (1, args.runs, args.warmup),
            (args.batch, args.batch_runs, args.batch_warmup),
        ):
            backends = _backends(model, networks, batch)
            times[batch] = time_interleaved(backends, runs, warmup, lambda: None)
        eager = {batch: float(np.median(seconds[0])) for batch, seconds in times.items()}
        for index, (label, backend) in enumerate(zip([EAGER, *networks], backends, strict=True)):
            row: dict[str, Any] = {
                "model": model_name,
                "input_size": [width, height],
                "runtime": backend.name,
                "precision": backend.precision,
                "format": None if index == 0 else label,
                "size_mb": sizes[label],
            }
            for batch, seconds in times.items():
                ratio = float(np.median(seconds[index])) / eager[batch]
                row[f"b{batch}"] = {**summarise(seconds[index], batch), "vs_eager": ratio}
            rows.append(row)
    return rows


def _random_crops(model: PoseModel, count: int) -> CropSet:
    width, height = model.input_size
    pixels = np.random.default_rng(0).integers(0, 256, (count, 3, height, width), np.uint8)
    zeros = np.zeros((count, 2), np.float32)
    return CropSet(f"{count} uniform-random crops", pixels, zeros, zeros)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    formats = [name for name in args.formats if name in available_formats()]
    started = time.perf_counter()
    report: dict[str, Any] = {
        "formats": formats,
        "missing_formats": sorted(set(args.formats) - set(formats)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint is not None:
            report["accuracy"] = accuracy(args, formats, Path(tmp))
        if args.models:
            report["latency"] = latency(args, formats, Path(tmp))
    try:
        executorch_version: str | None = importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        executorch_version = None
    report["machine"] = machine_info(
        threads=args.threads, onnxruntime=ort.__version__, executorch=executorch_version
    )
    report["settings"] = {
        "input_sizes": {row["model"]: row["input_size"] for row in report.get("latency", [])},
        "threads": args.threads,
        **timing_settings(args),
        "calib_count": args.calib_count,
    }
    report["goals"] = goals(report)
    report["seconds"] = time.perf_counter() - started
    return report


def goals(report: dict[str, Any]) -> dict[str, Any]:
    """The acceptance goals: the fastest artifact at batch 1 <= GOAL_RATIO x eager per model;
    every INT8 artifact's AP drop <= GOAL_AP_DROP."""
    result: dict[str, Any] = {}
    for row in report.get("latency", []):
        if row["format"] is None:
            continue
        best = result.get(row["model"])
        if best is None or row["b1"]["vs_eager"] < best["vs_eager"]:
            result[row["model"]] = {
                "format": row["format"],
                "vs_eager": row["b1"]["vs_eager"],
                "goal": GOAL_RATIO,
                "met": row["b1"]["vs_eager"] <= GOAL_RATIO,
            }
    for row in (report.get("accuracy") or {}).get("rows", []):
        if row["precision"] == "int8":
            result[f"AP drop {row['format']}"] = {
                "drop": row["ap_drop"],
                "goal": GOAL_AP_DROP,
                "met": row["ap_drop"] <= GOAL_AP_DROP,
            }
    return result


def _ms(summary: dict[str, float]) -> str:
    return f"{summary['median_ms']:.1f} ({summary['p10_ms']:.1f}-{summary['p90_ms']:.1f})"


def to_markdown(report: dict[str, Any]) -> str:
    settings, machine = report["settings"], report["machine"]
    lines: list[str] = []
    if "accuracy" in report:
        acc = report["accuracy"]
        width, height = acc["input_size"]
        lines += [
            f"## Accuracy: {acc['model']} at {width}x{height}, {acc['checkpoint']}",
            "",
            f"COCO keypoint AP on {acc['val']} (ground-truth boxes, flip test "
            f"{'on' if acc['flip_test'] else 'off'}); keypoint deviation from the checkpoint's "
            f"in image px over the keypoints it scores >= {CONFIDENT_SCORE} in "
            f"{acc['val_crops']} person crops. INT8 calibrated on {acc['calibration']}.",
            "",
            "| Format | Runtime | Precision | AP | AP drop | AP50 | AR | Deviation median / p95 / "
            "max px | Size MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in acc["rows"]:
            m = row["metrics"]
            dev = row.get("deviation")
            deviation = (
                f"{dev['median_px']:.2f} / {dev['p95_px']:.2f} / {dev['max_px']:.2f}"
                if dev
                else "-"
            )
            lines.append(
                f"| {row['format']} | {row['runtime']} | {row['precision']} | {m['AP']:.3f} "
                f"| {row['ap_drop']:+.3f} | {m['AP50']:.3f} | {m['AR']:.3f} | {deviation} "
                f"| {row['size_mb']:.1f} |"
            )
        lines.append("")
    if "latency" in report:
        batch = settings["batch"]
        lines += [
            f"## Latency: {describe_sizes(settings['input_sizes'])}, {settings['threads']} threads",
            "",
            f"| Model | Runtime | Precision | Format | b1 median (p10-p90) ms | b1 vs eager "
            f"| b{batch} median (p10-p90) ms | b{batch} vs eager | Size MB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in report["latency"]:
            one, many = row["b1"], row[f"b{batch}"]
            lines.append(
                f"| {row['model']} | {row['runtime']} | {row['precision']} "
                f"| {row['format'] or '-'} | {_ms(one)} | {one['vs_eager']:.2f}x | {_ms(many)} "
                f"| {many['vs_eager']:.2f}x | {row['size_mb']:.1f} |"
            )
        lines.append("")
    lines += ["## Goals", ""]
    for name, goal in report["goals"].items():
        if "vs_eager" in goal:
            verdict = "met" if goal["met"] else f"missed by {goal['vs_eager'] - goal['goal']:.2f}x"
            lines.append(
                f"- {name}: fastest at batch 1 is {goal['format']} at "
                f"{goal['vs_eager']:.2f}x eager (goal <= {goal['goal']}x): {verdict}."
            )
        else:
            verdict = "met" if goal["met"] else f"missed by {goal['drop'] - goal['goal']:.3f}"
            lines.append(f"- {name}: {goal['drop']:+.3f} (goal <= {goal['goal']}): {verdict}.")
    if report["missing_formats"]:
        lines.append(f"- Not measured (runtime not installed): {report['missing_formats']}.")
    lines += [
        "",
        f"- {machine['cpu']} ({', '.join(machine['cpu_features'])}), {machine['usable_cores']} "
        f"usable cores; torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, "
        f"executorch {machine['executorch']}.",
        f"- Latency: median of {settings['runs']} calls at batch 1 ({settings['batch_runs']} at "
        f"batch {settings['batch']}) after warm-up; backends take turns in blocks of "
        f"{settings['block']} timed calls. Sizes: the file; for eager, the fp32 weights.",
        f"- {report['seconds']:.0f} s in all.",
    ]
    return "\n".join(lines) + "\n"
