"""What the benchmarks record about the machine they ran on: one helper for all of them."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The vector/matrix extensions that decide fp32 and bf16 CPU speed (oneDNN, MLAS).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def _cpuinfo(key: str) -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU's marketing name ("Intel(R) Xeon(R) ..."); `platform` gives only the
    architecture on Linux, so /proc/cpuinfo is read where it exists."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    flags = set((_cpuinfo("flags") or "").split())
    return [flag for flag in CPU_FEATURES if flag in flags]


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info(**extra: Any) -> dict[str, Any]:
    """CPU, cores, platform, library versions and the GPU (where CUDA runs), plus `extra`."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "usable_cores": usable_cores(),
        "os_cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        # "fp32" convolutions on CUDA may run as TF32: record what the defaults were.
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return {**info, **extra}
