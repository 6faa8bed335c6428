"""Data-pipeline throughput on one CPU core: `dataset[i]` samples/s for train and val.

Measured as one DataLoader worker does it (decode + transforms + target + tensors), in one
process pinned to one core with OpenCV and torch on one thread, on real COCO JPEGs
(`coco_mini`, the train split's GT persons) or, when those are absent, on the synthetic dataset
under --root (generated there if missing). Train indices come in shuffled order, as a shuffling
sampler hands them out; val indices in order, as evaluation reads them. Writes a JSON report
with the numbers, the machine and a per-stage breakdown; `--reference` adds the reference
toolbox's result (the JSON of its pipeline_bench.py run in the same session) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mobilevitpose.coco import Instance, coco_paths, load_gt_instances
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.dataset import TopDownDataset
from mobilevitpose.geometry import apply_affine
from mobilevitpose.image_io import choose_reduction, read_image, reduced_matrix, to_rgb_tensor
from mobilevitpose.machine import cpu_model

SHARED_DATA = Path(os.environ.get("MVP_SHARED_DATA", "../shared/data"))
# The reference benchmark's setting: 256 x 256 input, 64 x 64 UDP heatmaps, sigma 2.
INPUT_SIZE = (256, 256)
HEATMAP_SIZE = (64, 64)
REFERENCE_RUN = "udp/dataset[i]"


def _pin(core: int) -> list[int]:
    if core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _data_root(coco_mini: Path, synthetic_root: Path) -> tuple[Path, str]:
    if coco_paths(coco_mini, "train")[0].is_file():
        return coco_mini, "coco_mini"
    if not coco_paths(synthetic_root, "train")[0].is_file():
        from mobilevitpose.synthetic import ensure_dataset

        ensure_dataset(synthetic_root)
    return synthetic_root, "synthetic"


def _order(n: int, total: int, rng: np.random.Generator | None) -> list[int]:
    """`total` indices: concatenated permutations (shuffled) or 0, 1, 2, ... repeated."""
    indices: list[int] = []
    while len(indices) < total:
        indices.extend(rng.permutation(n).tolist() if rng is not None else range(n))
    return indices[:total]


def time_dataset(
    dataset: TopDownDataset, num_samples: int, warmup: int, repeats: int, shuffle: bool, seed: int
) -> dict[str, Any]:
    """samples/s of `dataset[i]` over `repeats` runs of `num_samples` indices."""
    rng = np.random.default_rng(seed) if shuffle else None
    rates = []
    for _ in range(repeats):
        indices = _order(len(dataset), warmup + num_samples, rng)
        for i in indices[:warmup]:
            dataset[i]
        start = time.perf_counter()
        for i in indices[warmup:]:
            dataset[i]
        rates.append(num_samples / (time.perf_counter() - start))
    median = statistics.median(rates)
    return {
        "samples_per_s": rates,
        "median": median,
        "best": max(rates),
        "ms_per_sample_median": 1000.0 / median,
    }


def stage_breakdown(dataset: TopDownDataset, indices: Sequence[int]) -> dict[str, Any]:
    """Mean ms per sample of each stage of `dataset[i]`, each timed on its own (no cache)."""
    stages = ("geometry", "decode", "warp", "target", "tensor")
    totals = dict.fromkeys(stages, 0.0)
    reductions: dict[int, int] = {}
    size = dataset.input_size
    for index in indices:
        instance: Instance = dataset.instances[index]
        ticks = [time.perf_counter()]
        crop, keypoints, visible = dataset.crop_geometry(instance, dataset.rng(index))
        ticks.append(time.perf_counter())
        matrix = crop.image_matrix(size, dataset.udp)
        r = choose_reduction(matrix) if dataset.reader.reduced_decode else 1
        image = read_image(instance.image_path, r)
        ticks.append(time.perf_counter())
        warp = reduced_matrix(matrix, r) if r > 1 else matrix
        pixels = cv2.warpAffine(image, warp, size, flags=cv2.INTER_LINEAR)
        ticks.append(time.perf_counter())
        keypoints_input = apply_affine(crop.keypoint_matrix(size, dataset.udp), keypoints)
        dataset.codec.encode(keypoints_input, visible)
        ticks.append(time.perf_counter())
        to_rgb_tensor(pixels)
        ticks.append(time.perf_counter())
        for stage, start, end in zip(stages, ticks[:-1], ticks[1:], strict=True):
            totals[stage] += end - start
        reductions[r] = reductions.get(r, 0) + 1
    return {
        "ms_per_sample": {k: 1000.0 * v / len(indices) for k, v in totals.items()},
        "decode_reduction_counts": {str(k): v for k, v in sorted(reductions.items())},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    affinity = _pin(args.core)
    root, source = _data_root(Path(args.coco_mini), Path(args.root))
    codec = HeatmapCodec(kind="udp", input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, sigma=2.0)
    common = dict(codec=codec, seed=args.seed)
    train_instances = load_gt_instances(*coco_paths(root, "train"))
    val_instances = load_gt_instances(*coco_paths(root, "val"))
    train = TopDownDataset(train_instances, train=True, recipe=args.recipe, **common)
    val = TopDownDataset(val_instances, train=False, **common)
    timing = dict(num_samples=args.num_samples, warmup=args.warmup, repeats=args.repeats)
    report: dict[str, Any] = {
        "data": {
            "source": source,
            "root": str(root.resolve()),
            "train_instances": len(train),
            "val_instances": len(val),
        },
        "setting": {
            "input_size": INPUT_SIZE,
            "heatmap_size": HEATMAP_SIZE,
            "codec": "udp",
            "recipe": args.recipe,
            "train_order": "shuffled permutations, no decoded-image cache",
            "val_order": f"sequential, cache of {val.reader.cache_size} decoded images",
            **timing,
        },
        "machine": {
            "cpu": cpu_model(),
            "cores_visible": os.cpu_count(),
            "affinity": affinity,
            "cv2_threads": cv2.getNumThreads(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "torch": torch.__version__,
        },
        "train_dataset[i]": time_dataset(train, shuffle=True, seed=args.seed, **timing),
        "val_dataset[i]": time_dataset(val, shuffle=False, seed=args.seed, **timing),
        "train_stages": stage_breakdown(train, _order(len(train), args.num_samples, None)),
    }
    if args.reference:
        reference = json.loads(Path(args.reference).read_text())["runs"][REFERENCE_RUN]
        ours = report["train_dataset[i]"]["median"]
        report["reference"] = {
            "file": str(args.reference),
            "run": REFERENCE_RUN,
            "median": reference["median"],
            "ratio_train_vs_reference": ours / reference["median"],
        }
    return report


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
    parser.add_argument("--recipe", default="paper")
    parser.add_argument("--core", type=int, default=0, help="CPU to pin to (-1: no pinning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference", default=None, help="JSON written by the reference's pipeline_bench.py"
    )
    args = parser.parse_args(argv)
    report = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    train, val = report["train_dataset[i]"], report["val_dataset[i]"]
    print(f"train dataset[i]: median {train['median']:.1f} samples/s (best {train['best']:.1f})")
    print(f"val   dataset[i]: median {val['median']:.1f} samples/s (best {val['best']:.1f})")
    stages = report["train_stages"]["ms_per_sample"]
    print("train stages (ms/sample): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    if "reference" in report:
        ref = report["reference"]
        ratio = ref["ratio_train_vs_reference"]
        print(f"reference train {ref['median']:.1f} samples/s; ours / reference {ratio:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
