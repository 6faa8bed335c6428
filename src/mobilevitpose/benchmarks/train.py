"""Images/s of the whole training step, and whether it waits for data.

For each model the training step of `mvp-train` (the module's loss, backward, AdamW step; bf16
autocast as `trainer.precision=bf16-mixed` and channels_last by default) is timed twice: fed
by the real DataLoader (decode, augmentation, targets, `workers` processes, pinned memory) and
fed by one batch kept on the device. The
second is what the GPU can do; when the first falls short of it by more than 10 %, the step is
data-bound. GPU utilisation is sampled through NVML while the real loader runs.

    mvp-bench-train                                  # XXS and S at 256x256, synthetic data
    mvp-bench-train --data coco --data-root /data/coco --workers 16 --batch 64
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from mobilevitpose.benchmarks import input_size_overrides
from mobilevitpose.benchmarks.machine import machine_info
from mobilevitpose.training.config import build_datamodule, compose, instantiate
from mobilevitpose.training.module import PoseLitModule
from mobilevitpose.training.step import train_step

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
    module: PoseLitModule,
    batches: Iterator[dict[str, torch.Tensor]],
    device: torch.device,
    steps: int,
    warmup: int,
    precision: str,
) -> tuple[float, float | None]:
    """(images/s, mean GPU utilisation) of `steps` training steps (`training.step.train_step`,
    the module's own loss) after `warmup` untimed ones."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    module.train()

    def step() -> int:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        train_step(module, batch, optimizer, autocast_dtype=dtype, scaler=scaler)
        return batch["image"].shape[0]

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
    cfg = compose("train", [
        f"model={name}", f"data={args.data}", *input_size_overrides(args.input_size),
        *([f"data.root={args.data_root}"] if args.data_root else []),
        f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
        f"data.pin_memory={device.type == 'cuda'}", "paths.output_dir=.",
        f"channels_last={args.channels_last}",
    ])  # fmt: skip
    module: PoseLitModule = instantiate(cfg.module)
    module.to(device)
    datamodule = build_datamodule(cfg.data, module.codec, cfg.seed)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert datamodule.train_dataset is not None  # built by setup("fit")
    loader = datamodule.train_dataloader()
    common = dict(device=device, steps=args.steps, warmup=args.warmup, precision=args.precision)

    real, utilisation = time_steps(module, _forever(loader), **common)
    cached = {k: v.to(device) for k, v in next(iter(loader)).items()}
    in_memory, utilisation_in_memory = time_steps(module, _repeat(cached), **common)
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
            "input_size": args.input_size or "each model config's own",
            "batch": args.batch, "workers": args.workers,
            "steps": args.steps, "warmup": args.warmup, "precision": args.precision,
            "channels_last": args.channels_last, "data": args.data,
            "data_root": str(args.data_root) if args.data_root else "the data config's root",
        },
        "machine": machine_info(
            device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        ),
        "models": {},
    }  # fmt: skip
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for name in args.models:
        report["models"][name] = bench_model(name, args, device)
        print(name, report["models"][name])
    return report
