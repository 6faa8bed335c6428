"""mvp-bench-train: images/s of the whole training step, and whether it waits for data.

For each model the same step (forward, loss, backward, AdamW step; bf16 autocast and
channels_last by default) is timed twice: fed by the real DataLoader (decode, augmentation,
targets, `workers` processes, pinned memory) and fed by one batch kept on the device. The
second is what the GPU can do; when the first falls short of it by more than 10 %, the step is
data-bound. GPU utilisation is sampled through NVML while the real loader runs.

    mvp-bench-train                                  # XXS and S at 256x256, synthetic data
    mvp-bench-train --data coco --data-root /data/coco --workers 16 --batch 64
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from mobilevitpose.config import compose
from mobilevitpose.machine import cpu_model
from mobilevitpose.module import keypoint_mse_loss
from mobilevitpose.pose_model import PoseModel
from mobilevitpose.runs import build_datamodule, build_module

DEFAULT_MODELS = ("mobilevitpose_xxs", "mobilevitpose_s")
DATA_BOUND_RATIO = 0.9  # real-data throughput below this share of the in-memory one


class UtilisationSampler:
    """Mean GPU utilisation (%) over a block, sampled through NVML every `interval` s; None
    where NVML (the pynvml package, or a GPU) is missing."""

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device, self.interval = device, interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(float(torch.cuda.utilization(self.device)))

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
            except Exception:  # no pynvml / NVML: report None rather than fail the benchmark
                return self
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forever(loader: torch.utils.data.DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def time_steps(
    model: PoseModel,
    batches: Iterator[dict[str, torch.Tensor]],
    device: torch.device,
    steps: int,
    warmup: int,
    precision: str,
    channels_last: bool,
) -> tuple[float, float | None]:
    """(images/s, mean GPU utilisation) of `steps` training steps after `warmup` untimed ones."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.train()

    def step() -> int:
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        images = model.normalise(images).contiguous(memory_format=memory_format)
        targets = batch["heatmaps"].to(device, non_blocking=True)
        weights = batch["keypoint_weights"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            heatmaps = model(images)
        loss = keypoint_mse_loss(heatmaps, targets, weights)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return images.shape[0]

    for _ in range(warmup):
        step()
    _synchronise(device)
    with UtilisationSampler(device) as utilisation:
        start = time.perf_counter()
        images = sum(step() for _ in range(steps))
        _synchronise(device)
        elapsed = time.perf_counter() - start
    return images / elapsed, utilisation.mean


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    width, height = args.input_size
    cfg = compose("train", [
        f"model={name}", f"data={args.data}", f"model.input_size=[{width},{height}]",
        f"model.heatmap_size=[{width // 4},{height // 4}]",
        *([f"data.root={args.data_root}"] if args.data_root else []),
        f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
        f"data.pin_memory={device.type == 'cuda'}", "paths.output_dir=.",
    ])  # fmt: skip
    module = build_module(cfg)
    datamodule = build_datamodule(cfg.data, module.codec, cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = module.model.to(device, memory_format=memory_format)
    common = dict(device=device, steps=args.steps, warmup=args.warmup, precision=args.precision,
                  channels_last=args.channels_last)  # fmt: skip

    real, utilisation = time_steps(model, _forever(loader), **common)
    cached = {k: v.to(device) for k, v in next(iter(loader)).items()}
    in_memory, utilisation_in_memory = time_steps(model, _repeat(cached), **common)
    return {
        "images_per_s": round(real, 1),
        "images_per_s_in_memory": round(in_memory, 1),
        "data_share": round(real / in_memory, 3),
        "data_bound": real < DATA_BOUND_RATIO * in_memory,
        "gpu_utilisation_pct": utilisation,
        "gpu_utilisation_in_memory_pct": utilisation_in_memory,
        "train_instances": len(datamodule.train_dataset),
    }


def _repeat(batch: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield batch


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    report: dict[str, Any] = {
        "setting": {
            "input_size": list(args.input_size), "batch": args.batch, "workers": args.workers,
            "steps": args.steps, "warmup": args.warmup, "precision": args.precision,
            "channels_last": args.channels_last, "data": args.data,
            "data_root": str(args.data_root) if args.data_root else "the data config's root",
        },
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cpu": cpu_model(),
            "torch": torch.__version__,
        },
        "models": {},
    }  # fmt: skip
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for name in args.models:
        report["models"][name] = bench_model(name, args, device)
        print(name, report["models"][name])
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mvp-bench-train", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--input-size", nargs=2, type=int, default=[256, 256], metavar=("W", "H"))
    parser.add_argument("--data", choices=["synthetic", "coco"], default="synthetic",
                        help="synthetic: generated under --data-root when absent")  # fmt: skip
    parser.add_argument("--data-root", type=Path,
                        help="a COCO 2017 layout (default: the data config's root)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--precision", default="bf16-mixed",
                        choices=["32-true", "bf16-mixed", "16-mixed"])  # fmt: skip
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--device", help="default: cuda when present, else cpu")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_train.json"))
    args = parser.parse_args(argv)
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
