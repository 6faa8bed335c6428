"""Table 2: parameters and multiply-accumulates of every model config at its own input size.

Counting uses torch's own FLOP counter (`torch.utils.flop_counter`), which counts 2 FLOPs per
multiply-accumulate of convolutions and matmuls; we report MACs (its count / 2), which is what
MMPose's counter and the paper call "FLOPs". The attention products are counted apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from mobilevitpose.reporting.runs import Run
from mobilevitpose.training.config import build_model


@dataclass(frozen=True)
class PaperRow:
    label: str
    model: str
    input_size: tuple[int, int]  # (w, h)
    params_m: float
    gmacs: float
    ap: float
    ar: float


# Table 2 of the paper. The paper prints the MobileViTPose rows rounded ("4 (4.42)M") and gives
# the precise value in brackets; the precise value is used here.
PAPER_TABLE2: tuple[PaperRow, ...] = (
    PaperRow("VGG (VGG16)", "vgg16", (192, 256), 19, 16, 69.8, 75.4),
    PaperRow("SimpleBaseline (ResNet-50)", "simplebaseline_r50", (192, 256), 34, 9, 70.4, 76.3),
    PaperRow("SimpleBaseline (ResNet-152)", "simplebaseline_r152", (192, 256), 69, 16, 72.0, 77.8),
    PaperRow("HRNet (HRNet-W32)", "hrnet_w32", (192, 256), 29, 8, 74.4, 78.9),
    PaperRow("HRNet (HRNet-W32)", "hrnet_w32", (288, 384), 29, 8, 75.8, 81.0),
    PaperRow("HRNet (HRNet-W48)", "hrnet_w48", (192, 256), 64, 16, 75.1, 80.4),
    PaperRow("HRNet (HRNet-W48)", "hrnet_w48", (288, 384), 64, 16, 76.3, 81.2),
    PaperRow("ViTPose-B (ViT-B)", "vitpose_b", (192, 256), 86, 17, 75.8, 81.1),
    PaperRow("MobileViTPose-XXS", "mobilevitpose_xxs", (256, 256), 4.42, 1.78, 61.7, 67.9),
    PaperRow("MobileViTPose-S", "mobilevitpose_s", (256, 256), 9.72, 3.28, 69.4, 74.9),
)

NOTES = (
    "MACs are counted with `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2) at batch 1, "
    "without the attention products, as MMPose's module-hook counter (the paper's) counts; "
    "those are the Attn column (MobileViT's are small: 4% of XXS).",
    "The paper's SimpleBaseline and HRNet FLOPs are the HRNet paper's figures (another counter, "
    "and the paper repeats the 256x192 figure for 384x288); its VGG and ViTPose-B figures come "
    "from the literature. Only the MobileViTPose rows were counted by the paper's authors "
    "(MMPose's counter).",
    "AP/AR (ours): the best finished run of that model and input size given with `--runs` "
    "(its init in brackets); blank when there is none. The paper's are COCO val2017 with "
    "detected boxes.",
    "The paper rounds baseline parameters to whole millions; deltas against them are coarse.",
    "ViTPose-B at 256x192: timm's ViT-B/16 has a class token and a 16x12 position grid; the "
    "paper's 86M is the backbone alone, ours includes the 2-deconv head.",
)


class AttentionCounter(TorchFunctionMode):
    """Multiply-accumulates of the attention products (q @ k^T and attn @ v) of every
    `scaled_dot_product_attention` call, counted from the operands' shapes.

    Counted here rather than read from torch's FLOP counter, which knows the fused attention
    kernels only in some releases (torch 2.14 counts none of the CPU flash-attention calls,
    2.15 does), so that the column reads the same under every supported torch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            query, key, value = (
                args[i] if len(args) > i else kwargs[name]
                for i, name in enumerate(("query", "key", "value"))
            )
            *batch, length, width = query.shape
            self.macs += math.prod(batch) * length * key.shape[-2] * (width + value.shape[-1])
        return func(*args, **kwargs)


def _is_attention(op: object) -> bool:
    return "attention" in str(op)


def count(model: torch.nn.Module, input_size: tuple[int, int]) -> tuple[float, float, float]:
    """(parameters in M, GMACs, attention GMACs) of `model` on one (3, h, w) input.

    GMACs leave out the attention products (q @ k^T, attn @ v): MMPose's counter, which the
    paper used, hooks modules (convolutions, linear layers) and never sees them. They are
    reported on their own (`AttentionCounter`); whatever torch's counter makes of the fused
    attention kernels is left out of both.
    """
    w, h = input_size
    params = sum(p.numel() for p in model.parameters()) / 1e6
    model.eval()
    counter = FlopCounterMode(display=False)
    attention = AttentionCounter()
    with torch.no_grad(), counter, attention:
        model(torch.zeros(1, 3, h, w))
    flops = counter.get_flop_counts()["Global"]
    others = sum(n for op, n in flops.items() if not _is_attention(op))
    return params, others / 2e9, attention.macs / 1e9


def _delta(ours: float, paper: float) -> float:
    return 100.0 * (ours - paper) / paper


def accuracy_of(row: PaperRow, runs: Sequence[Run]) -> dict | None:
    """The finished run of this row's model and input size with the best AP, as
    {"AP", "AR", "init", "run"} in percent; None when there is none."""
    matching = [r for r in runs if r.model == row.model and r.input_size == row.input_size]
    if not matching:
        return None
    best = max(matching, key=lambda r: r.metrics["AP"])
    return {"AP": round(100 * best.metrics["AP"], 1), "AR": round(100 * best.metrics["AR"], 1),
            "init": best.init, "run": best.name}  # fmt: skip


def build_report(runs: Sequence[Run] = ()) -> list[dict]:
    rows = []
    for row in PAPER_TABLE2:
        model = build_model(
            row.model, [f"model.input_size=[{row.input_size[0]},{row.input_size[1]}]"]
        )
        params, gmacs, attention_gmacs = count(model, row.input_size)
        rows.append(
            {
                **asdict(row),
                "ours_params_m": round(params, 3),
                "ours_gmacs": round(gmacs, 3),
                "ours_attention_gmacs": round(attention_gmacs, 3),
                "params_delta_pct": round(_delta(params, row.params_m), 1),
                "gmacs_delta_pct": round(_delta(gmacs, row.gmacs), 1),
                "ours_accuracy": accuracy_of(row, runs),
            }
        )
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| Model | Config | Input | Params (paper) | Params (ours) | Δ | GMACs (paper) "
        "| GMACs (ours) | Δ | Attn GMACs | AP (paper) | AP (ours) | AR (paper) | AR (ours) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, h = r["input_size"]
        acc = r["ours_accuracy"]
        ours_ap, ours_ar = (
            (f"{acc['AP']:.1f} ({acc['init']})", f"{acc['AR']:.1f}") if acc else ("", "")
        )
        lines.append(
            f"| {r['label']} | `{r['model']}` | {h}x{w} | {r['params_m']}M "
            f"| {r['ours_params_m']:.2f}M | {r['params_delta_pct']:+.1f}% | {r['gmacs']}G "
            f"| {r['ours_gmacs']:.2f}G | {r['gmacs_delta_pct']:+.1f}% "
            f"| {r['ours_attention_gmacs']:.2f}G | {r['ap']} | {ours_ap} | {r['ar']} | {ours_ar} |"
        )
    lines.append("")
    lines += [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"
