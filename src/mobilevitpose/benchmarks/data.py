"""Data-pipeline throughput on one CPU core: `dataset[i]` samples/s for train and val.

Measured as one DataLoader worker does it (decode + transforms + target + tensors), in one
process pinned to one core with OpenCV and torch on one thread, on real COCO JPEGs
(`coco_mini`, the train split's GT persons) or, when those are absent, on the synthetic dataset
under --root (generated there if missing). Train indices come in two orders: shuffled per
person, as a shuffling sampler hands them out (the reference's order), and grouped by image, as
ImageGroupedSampler (data.group_by_image=true) hands them out, with the small decoded-image
cache a train worker then keeps; each train order is timed with full-size and with reduced-size
JPEG decoding (data.reduced_decode). Val indices come in order, as evaluation reads them. Writes a
JSON report with the numbers, the machine and a per-stage breakdown; `--reference` adds the
reference toolbox's result (the JSON of its pipeline_bench.py run in the same session) and the
ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mobilevitpose.benchmarks.machine import machine_info
from mobilevitpose.coco import coco_paths
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.datamodule import GROUPED_CACHE_SIZE
from mobilevitpose.data.dataset import TopDownDataset
from mobilevitpose.data.image_io import to_rgb_tensor, warp_crop
from mobilevitpose.data.instances import Instance, load_gt_instances
from mobilevitpose.data.sampler import ImageGroupedSampler
from mobilevitpose.geometry import apply_affine
from mobilevitpose.training.config import augment_recipe

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
        from mobilevitpose.data.synthetic import ensure_dataset

        ensure_dataset(synthetic_root)
    return synthetic_root, "synthetic"


def _stream(epoch_order: Callable[[int], Iterable[int]]) -> Iterator[int]:
    """Indices of epochs 0, 1, 2, ... in the order `epoch_order(epoch)` gives them."""
    for epoch in itertools.count():
        yield from epoch_order(epoch)


def time_dataset(
    dataset: TopDownDataset,
    epoch_order: Callable[[int], Iterable[int]],
    num_samples: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """samples/s of `dataset[i]` over `repeats` runs of `num_samples` indices."""
    stream = _stream(epoch_order)
    rates = []
    decodes_before = dataset.reader.num_decodes
    for _ in range(repeats):
        dataset.reader.clear()  # each run starts cold, as a fresh worker does
        indices = list(itertools.islice(stream, warmup + num_samples))
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
        "decodes_per_sample": (dataset.reader.num_decodes - decodes_before)
        / (repeats * (warmup + num_samples)),
    }


def stage_breakdown(dataset: TopDownDataset, indices: Sequence[int]) -> dict[str, Any]:
    """Mean ms per sample of each stage of `dataset[i]`, timed one by one through the dataset's
    own steps (a dataset without a decoded-image cache decodes every sample)."""
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
        decoded = dataset.reader.decode(instance.image_path, instance.image_size, matrix)
        ticks.append(time.perf_counter())
        pixels = warp_crop(decoded.image, decoded.matrix, size)
        ticks.append(time.perf_counter())
        keypoints_input = apply_affine(crop.keypoint_matrix(size, dataset.udp), keypoints)
        dataset.codec.encode(keypoints_input, visible)
        ticks.append(time.perf_counter())
        to_rgb_tensor(pixels)
        ticks.append(time.perf_counter())
        for stage, start, end in zip(stages, ticks[:-1], ticks[1:], strict=True):
            totals[stage] += end - start
        reductions[decoded.reduction] = reductions.get(decoded.reduction, 0) + 1
    return {
        "ms_per_sample": {k: 1000.0 * v / len(indices) for k, v in totals.items()},
        "decode_reduction_counts": {str(k): v for k, v in sorted(reductions.items())},
    }


# The timed pipelines: name -> (train, reduced JPEG decode, order).
VARIANTS: dict[str, tuple[bool, bool, str]] = {
    "train": (True, False, "shuffled"),
    "train_reduced": (True, True, "shuffled"),
    "train_grouped": (True, False, "grouped"),
    "train_grouped_reduced": (True, True, "grouped"),
    "val": (False, False, "in_order"),
}
ORDERS = {
    "shuffled": "persons shuffled per epoch (the reference's order), no decoded-image cache",
    "grouped": "images shuffled, their persons in a row (data.group_by_image=true)",
    "in_order": "sequential, as evaluation reads them",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    affinity = _pin(args.core)
    root, source = _data_root(Path(args.coco_mini), Path(args.root))
    codec = HeatmapCodec(kind="udp", input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, sigma=2.0)
    recipe = augment_recipe(args.augment)
    instances = {split: load_gt_instances(*coco_paths(root, split)) for split in ("train", "val")}
    sampler = ImageGroupedSampler([i.image_id for i in instances["train"]], seed=args.seed)

    def order(name: str, size: int) -> Callable[[int], Iterable[int]]:
        if name == "shuffled":
            return lambda epoch: (
                np.random.default_rng((args.seed, epoch)).permutation(size).tolist()
            )
        if name == "grouped":

            def by_image(epoch: int) -> Iterable[int]:
                sampler.set_epoch(epoch)
                return sampler

            return by_image
        return lambda epoch: range(size)

    timing = dict(num_samples=args.num_samples, warmup=args.warmup, repeats=args.repeats)
    results: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for name, (train, reduced, order_name) in VARIANTS.items():
        dataset = TopDownDataset(
            instances["train" if train else "val"],
            codec=codec,
            train=train,
            recipe=recipe if train else None,
            reduced_decode=reduced,
            cache_size=GROUPED_CACHE_SIZE if order_name == "grouped" else None,
            seed=args.seed,
        )
        settings[name] = {
            "order": ORDERS[order_name],
            "reduced_decode": reduced,
            "decoded_image_cache": dataset.reader.cache_size,
        }
        results[f"{name}_dataset[i]"] = time_dataset(
            dataset, order(order_name, len(dataset)), **timing
        )
        if name in ("train", "train_reduced"):
            indices = [i % len(dataset) for i in range(args.num_samples)]
            results[f"{name}_stages"] = stage_breakdown(dataset, indices)
    report: dict[str, Any] = {
        "data": {
            "source": source,
            "root": str(root.resolve()),
            "train_instances": len(instances["train"]),
            "val_instances": len(instances["val"]),
        },
        "setting": {
            "input_size": INPUT_SIZE,
            "heatmap_size": HEATMAP_SIZE,
            "codec": "udp",
            "augment": args.augment,
            "variants": settings,
            **timing,
        },
        "machine": machine_info(
            affinity=affinity,
            cv2_threads=cv2.getNumThreads(),
            torch_threads=torch.get_num_threads(),
            opencv=cv2.__version__,
        ),
        **results,
    }
    if args.reference:
        reference = json.loads(Path(args.reference).read_text())["runs"][REFERENCE_RUN]
        report["reference"] = {
            "file": str(args.reference),
            "run": REFERENCE_RUN,
            "median": reference["median"],
            "ratios": {
                name: results[f"{name}_dataset[i]"]["median"] / reference["median"]
                for name in VARIANTS
                if VARIANTS[name][0]
            },
        }
    return report
