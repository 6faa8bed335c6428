"""Inference speed of the pose networks: PyTorch eager vs ONNX Runtime, CPU and CUDA.

For each model (random weights: speed does not depend on their values) at a fixed crop size:
latency at batch 1 (median of `--runs` calls after `--warmup`) and throughput at batch 32
(images/s from the median batch time). Backends timed together take turns in short blocks, so
background load on a shared machine hits them alike. CPU runs use every core the process may
run on, in PyTorch and in ONNX Runtime alike; CUDA backends run only where
torch.cuda.is_available(). Writes `<out-dir>/bench_infer.json` and `<out-dir>/bench_infer.md`.

    mvp-bench-infer                                   # XXS and S, each at its own input size
    mvp-bench-infer --models mobilevitpose_xxs --runs 20
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort
import timm
import torch

from mobilevitpose.benchmarks import describe_sizes, input_size_overrides
from mobilevitpose.benchmarks.machine import machine_info, usable_cores
from mobilevitpose.benchmarks.pipeline import PipelineSettings, bench_pipeline
from mobilevitpose.benchmarks.pipeline import to_markdown as pipeline_markdown
from mobilevitpose.benchmarks.timing import (
    Backend,
    summarise,
    time_interleaved,
    timing_settings,
)
from mobilevitpose.inference.fidelity import random_inputs
from mobilevitpose.inference.onnx import INPUT_NAME, export_onnx, load_onnx
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import build_model

BASELINE = "torch eager"


def _torch_call(
    model: Callable[[torch.Tensor], object],
    inputs: torch.Tensor,
    autocast: torch.dtype | None = None,
) -> Callable[[], object]:
    device_type = inputs.device.type

    def run() -> object:
        with (
            torch.inference_mode(),
            torch.autocast(device_type, dtype=autocast, enabled=autocast is not None),
        ):
            return model(inputs)

    return run


def _channels_last(model: PoseModel) -> PoseModel:
    # `Module.to(memory_format=...)` works in place: keep the NCHW model intact.
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def cpu_backends(model: PoseModel, session: ort.InferenceSession, batch: int) -> list[Backend]:
    """Eager PyTorch as it comes (the baseline), eager tuned, and ONNX Runtime, on one batch."""
    inputs = random_inputs(model, batch)
    inputs_cl = inputs.contiguous(memory_format=torch.channels_last)
    model_cl = _channels_last(model)
    feed = {INPUT_NAME: inputs.numpy()}
    return [
        Backend(BASELINE, "cpu", "fp32", "NCHW", _torch_call(model, inputs)),
        Backend("torch eager", "cpu", "fp32", "channels_last", _torch_call(model_cl, inputs_cl)),
        Backend(
            "torch eager",
            "cpu",
            "bf16 autocast",
            "channels_last",
            _torch_call(model_cl, inputs_cl, torch.bfloat16),
        ),
        Backend("onnxruntime", "cpu", "fp32", "NCHW", lambda: session.run(None, feed)),
    ]


def cuda_backends(model: PoseModel, batch: int) -> list[Backend]:
    """fp32, bf16 autocast, bf16 + channels_last, and torch.compile of the last, on one GPU."""
    device = torch.device("cuda")
    inputs = random_inputs(model, batch).to(device)
    inputs_cl = inputs.contiguous(memory_format=torch.channels_last)
    model_gpu = copy.deepcopy(model).to(device)
    model_cl = _channels_last(model_gpu)
    compiled = torch.compile(model_cl)
    return [
        Backend("torch eager", "cuda", "fp32", "NCHW", _torch_call(model_gpu, inputs)),
        Backend(
            "torch eager", "cuda", "bf16 autocast", "NCHW",
            _torch_call(model_gpu, inputs, torch.bfloat16),
        ),
        Backend(
            "torch eager", "cuda", "bf16 autocast", "channels_last",
            _torch_call(model_cl, inputs_cl, torch.bfloat16),
        ),
        Backend(
            "torch.compile", "cuda", "bf16 autocast", "channels_last",
            _torch_call(compiled, inputs_cl, torch.bfloat16),
        ),
    ]  # fmt: skip


def _no_sync() -> None:
    pass


def bench_model(
    model: PoseModel, session: ort.InferenceSession, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Latency (batch 1) and throughput (`args.batch`) of every backend for one model."""
    groups: list[tuple[Callable[[int], list[Backend]], Callable[[], None]]] = [
        (lambda batch: cpu_backends(model, session, batch), _no_sync)
    ]
    if torch.cuda.is_available() and not args.no_cuda:
        groups.append((lambda batch: cuda_backends(model, batch), torch.cuda.synchronize))
    rows: list[dict[str, Any]] = []
    for make_backends, synchronize in groups:
        latency = make_backends(1)
        latency_times = time_interleaved(latency, args.runs, args.warmup, synchronize)
        throughput = make_backends(args.batch)
        throughput_times = time_interleaved(
            throughput, args.batch_runs, args.batch_warmup, synchronize
        )
        for backend, lat, thr in zip(latency, latency_times, throughput_times, strict=True):
            description = {k: v for k, v in asdict(backend).items() if k != "run"}
            rows.append(
                {
                    "model": model.name,
                    **description,
                    "latency": summarise(lat, 1),
                    "throughput": summarise(thr, args.batch),
                }
            )
    return rows


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else []


def to_markdown(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    baseline = {
        row["model"]: row["latency"]["median_ms"]
        for row in report["results"]
        if (row["name"], row["device"], row["precision"], row["memory_format"])
        == (BASELINE, "cpu", "fp32", "NCHW")
    }
    lines = [
        f"| Model | Device | Backend | Precision | Layout | Latency b1 median (p10-p90) ms "
        f"| vs CPU eager b1 | Throughput b{settings['batch']} img/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        lat, thr = row["latency"], row["throughput"]
        ratio = lat["median_ms"] / baseline[row["model"]]
        lines.append(
            f"| {row['model']} | {row['device']} | {row['name']} | {row['precision']} "
            f"| {row['memory_format']} | {lat['median_ms']:.1f} ({lat['p10_ms']:.1f}-"
            f"{lat['p90_ms']:.1f}) | {ratio:.2f}x | {thr['images_per_s']:.1f} |"
        )
    gpu = f", GPU {machine['gpu']}" if "gpu" in machine else ", no GPU"
    lines += [
        "",
        f"- Input {describe_sizes(settings['input_sizes'])}, random weights. {machine['cpu']} "
        f"({', '.join(machine['cpu_features'])}), {machine['usable_cores']} usable cores, "
        f"{machine['threads']} threads in PyTorch and ONNX Runtime{gpu}.",
        f"- torch {machine['torch']}, onnxruntime {machine['onnxruntime']} (graph optimisation "
        "level ALL), timm " + machine["timm"] + ".",
        f"- Latency: median of {settings['runs']} calls after {settings['warmup']} warm-up calls; "
        f"throughput: batch {settings['batch']} / median of {settings['batch_runs']} batch "
        f"times. Backends of one device take turns in blocks of {settings['block']} timed calls, "
        "each after one untimed call.",
        f"- Load average (1, 5, 15 min) before: {report['load_before']}, after: "
        f"{report['load_after']}; {report['seconds']:.0f} s in all.",
        "- ONNX parity (max |onnxruntime - torch| heatmaps, random inputs, batch 1 and 3): "
        + ", ".join(
            f"{name} {max(p['max_abs_diff'].values()):.2g} (largest |heatmap| "
            f"{p['max_abs_heatmap']:.2g})"
            for name, p in report["parity"].items()
        )
        + ".",
    ]
    if report.get("pipeline"):
        pipeline = report["pipeline"]
        lines += ["", "## Photo to poses", "",
                  pipeline_markdown(pipeline["rows"], pipeline["settings"]).rstrip()]  # fmt: skip
    return "\n".join(lines) + "\n"


def pipeline_settings(args: argparse.Namespace) -> PipelineSettings:
    return PipelineSettings(
        detectors=args.detectors, models=args.models, weights=args.detector_weights,
        people=args.people, runs=args.pipeline_runs, warmup=args.pipeline_warmup,
        photo=args.photo, input_size=args.input_size,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    started, load_before = time.perf_counter(), _load()
    pipeline: dict[str, Any] = {}
    if args.detectors:  # first: a detector whose weights cannot be had stops the run at once
        pipeline = bench_pipeline(pipeline_settings(args))
    results: list[dict[str, Any]] = []
    parity: dict[str, Any] = {}
    input_sizes: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = build_model(name, input_size_overrides(args.input_size)).eval()
            input_sizes[name] = list(model.input_size)
            path = export_onnx(model, Path(tmp) / f"{name}.onnx").path
            session, metadata = load_onnx(path, intra_op_threads=threads)
            parity[name] = metadata["parity"]
            results += bench_model(model, session, args)
    return {
        "machine": machine_info(
            threads=threads,
            onnxruntime=ort.__version__,
            onnx=onnx.__version__,
            timm=timm.__version__,
            onnxruntime_providers=ort.get_available_providers(),
        ),
        "settings": {"input_sizes": input_sizes, **timing_settings(args)},
        "results": results,
        "parity": parity,
        "pipeline": pipeline,
        "load_before": load_before,
        "load_after": _load(),
        "seconds": time.perf_counter() - started,
    }
