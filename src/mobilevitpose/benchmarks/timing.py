"""How the benchmarks time a call: backends take turns in short blocks, so that background load
on a shared machine hits them alike, and each is summarised by its median."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BLOCK = 5  # timed calls per turn


@dataclass(frozen=True)
class Backend:
    """One way of running a model, and the call that runs it on a prepared batch."""

    name: str
    device: str
    precision: str
    memory_format: str
    run: Callable[[], object]


def time_interleaved(
    backends: Sequence[Backend],
    runs: int,
    warmup: int,
    synchronize: Callable[[], None],
    block: int = BLOCK,
) -> list[list[float]]:
    """Seconds per call for each backend: all warm up first, then take turns in blocks.

    Each block starts with one untimed call: ONNX Runtime's and OpenMP's worker threads keep
    spinning after a call, and on a small machine they would slow the next backend's first call.
    """
    for backend in backends:
        for _ in range(warmup):
            backend.run()
    synchronize()
    times: list[list[float]] = [[] for _ in backends]
    while len(times[0]) < runs:
        count = min(block, runs - len(times[0]))
        for backend, seconds in zip(backends, times, strict=True):
            backend.run()
            synchronize()
            for _ in range(count):
                start = time.perf_counter()
                backend.run()
                synchronize()
                seconds.append(time.perf_counter() - start)
    return times


def summarise(seconds: Sequence[float], batch: int) -> dict[str, float]:
    median = statistics.median(seconds)
    p10, p90 = np.percentile(seconds, [10, 90])
    return {
        "batch": batch,
        "runs": len(seconds),
        "median_ms": 1e3 * median,
        "p10_ms": 1e3 * float(p10),
        "p90_ms": 1e3 * float(p90),
        "images_per_s": batch / median,
    }


def timing_settings(args: argparse.Namespace) -> dict[str, int]:
    """How a timing benchmark's calls were counted, for its report."""
    names = ("runs", "warmup", "batch", "batch_runs", "batch_warmup")
    return {**{name: getattr(args, name) for name in names}, "block": BLOCK}
