"""Table 2: parameters and multiply-accumulates of every model config at its own input size.

Counting uses torch's own FLOP counter (`torch.utils.flop_counter`), which counts 2 FLOPs per
multiply-accumulate of convolutions and matmuls; we report MACs (its count / 2), which is what
MMPose's counter and the paper call "FLOPs". The attention products are counted apart.

A second table sets the Lite-HRNet rows of the seed README ("Results and Models") beside ours,
with MMPose's counter on MMPose's own Lite-HRNet models as a third reference.
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

# The Lite-HRNet rows of the seed README's "Results and Models" table (COCO val2017), as it
# prints them: parameters rounded to 0.1M and "FLOPs" (multiply-adds, by the Lite-HRNet
# authors' own counter) in M, here in G; its AP/AR are fractions (0.648), here in percent. It
# has no Wider Naive Lite-HRNet-18 row at 384x288.
SEED_README_LITEHRNET: tuple[PaperRow, ...] = (
    PaperRow("Wider Naive Lite-HRNet-18", "wider_naive_litehrnet_18", (192, 256), 1.3, 0.3111,
             66.0, 72.1),
    PaperRow("Lite-HRNet-18", "litehrnet_18", (192, 256), 1.1, 0.2052, 64.8, 71.2),
    PaperRow("Lite-HRNet-18", "litehrnet_18", (288, 384), 1.1, 0.4616, 67.6, 73.7),
    PaperRow("Lite-HRNet-30", "litehrnet_30", (192, 256), 1.8, 0.3192, 67.2, 73.3),
    PaperRow("Lite-HRNet-30", "litehrnet_30", (288, 384), 1.8, 0.7178, 70.4, 76.2),
)  # fmt: skip


@dataclass(frozen=True)
class MMPoseCount:
    """MMPose 1.3.2's counter on MMPose's own model, batch 1: parameters, the MACs of its
    convolutions alone (our counter's rule) and its total MACs."""

    params: int
    conv_macs: int
    total_macs: int


# MMPose 1.3.2's counter (mmengine 0.10.7's `mmengine.analysis`, which MMPose's
# tools/analysis_tools/get_flops.py calls) on MMPose's Lite-HRNet models, keyed like the rows
# above. Reference values, like the paper's: MMPose is never a dependency. Printed by
# tools/mmpose_litehrnet_macs.py, run in MMPose's own venv (its docstring says how).
MMPOSE_LITEHRNET: dict[tuple[str, tuple[int, int]], MMPoseCount] = {
    ("wider_naive_litehrnet_18", (192, 256)): MMPoseCount(1_318_625, 346_050_048, 370_962_432),
    ("litehrnet_18", (192, 256)): MMPoseCount(1_130_769, 242_345_088, 266_314_752),
    ("litehrnet_18", (288, 384)): MMPoseCount(1_130_769, 545_144_448, 599_076_192),
    ("litehrnet_30", (192, 256)): MMPoseCount(1_763_717, 386_103_648, 424_692_384),
    ("litehrnet_30", (288, 384)): MMPoseCount(1_763_717, 868_514_208, 955_338_864),
}

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


LITEHRNET_NOTES = (
    'Rows: the Lite-HRNet rows of the seed README\'s "Results and Models" (COCO val2017), '
    "at each input size it lists; its parameters are rounded to 0.1M, its FLOPs are "
    "multiply-adds by the Lite-HRNet authors' own counter, its AP/AR are given here in percent.",
    "MACs (ours): our model config built at that input size (384x288: "
    "`model.input_size=[288,384]`) and counted as above: `torch.utils.flop_counter` / 2, "
    "convolutions and matrix products only (Lite-HRNet has no matrix products, so this is its "
    "convolutions); BatchNorm, pooling, upsampling, activations and elementwise products and "
    "sums are not counted. Params (ours): every parameter of the model, head included.",
    "MMPose, convs: MMPose 1.3.2's counter (mmengine's, as tools/analysis_tools/get_flops.py "
    "runs it) on MMPose's own model, its convolutions alone: the same rule as ours; Δ is ours "
    "against it. MMPose, total: that counter's total (what get_flops.py prints): the "
    "convolutions + BatchNorm + adaptive pooling + nearest and bilinear upsampling (it counts no "
    "elementwise products or sums). Our parameter counts equal MMPose's exactly.",
    "MMPose's figures are printed by `tools/mmpose_litehrnet_macs.py`, run in MMPose 1.3.2's "
    "own venv (`bash ../shared/tools/mmpose/install_mmpose.sh /tmp/venvMM`, then "
    "`/tmp/venvMM/bin/python tools/mmpose_litehrnet_macs.py`), on the models of MMPose's "
    "td-hm_litehrnet-{18,30}_8xb64-210e_coco-256x192.py (Wider Naive: the 18 config with its "
    "block type set to NAIVE, as it has no MMPose 1.x config); they are constants in "
    "`mobilevitpose.reporting.table2` (MMPose is not a dependency).",
    "The README's FLOPs are below both counts (another counter, whose rule is not reproduced "
    "here), while parameters agree within its rounding: the MACs Δ against it is the "
    "counters', not the models'.",
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


def litehrnet_report(runs: Sequence[Run] = ()) -> list[dict]:
    """The seed README's Lite-HRNet rows beside ours (counted here) and MMPose's counter's."""
    rows = []
    for row in SEED_README_LITEHRNET:
        model = build_model(
            row.model, [f"model.input_size=[{row.input_size[0]},{row.input_size[1]}]"]
        )
        params, gmacs, attention_gmacs = count(model, row.input_size)
        mmpose = MMPOSE_LITEHRNET[(row.model, row.input_size)]
        rows.append(
            {
                **asdict(row),
                "reference": "seed README",
                "ours_params_m": round(params, 6),
                "ours_gmacs": round(gmacs, 6),
                "ours_attention_gmacs": round(attention_gmacs, 6),
                "params_delta_pct": round(_delta(params, row.params_m), 1),
                "gmacs_delta_pct": round(_delta(gmacs, row.gmacs), 1),
                "mmpose_params_m": mmpose.params / 1e6,
                "mmpose_conv_gmacs": mmpose.conv_macs / 1e9,
                "mmpose_total_gmacs": mmpose.total_macs / 1e9,
                "mmpose_conv_delta_pct": round(_delta(gmacs, mmpose.conv_macs / 1e9), 2),
                "ours_accuracy": accuracy_of(row, runs),
            }
        )
    return rows


def build_report(runs: Sequence[Run] = ()) -> list[dict]:
    """The paper's Table 2 rows, then the seed README's Lite-HRNet rows (`litehrnet_report`,
    marked "reference": "seed README"), each with ours counted."""
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
    return rows + litehrnet_report(runs)


def _ours_accuracy(r: dict) -> tuple[str, str]:
    acc = r["ours_accuracy"]
    return (f"{acc['AP']:.1f} ({acc['init']})", f"{acc['AR']:.1f}") if acc else ("", "")


def _litehrnet_markdown(rows: list[dict]) -> list[str]:
    lines = [
        "## Lite-HRNet: the seed README's rows",
        "",
        "| Model | Config | Input | Params (README) | Params (ours) | Δ | MACs (README) "
        "| MACs (ours) | Δ | MACs (MMPose, convs) | Δ | MACs (MMPose, total) | AP (README) "
        "| AP (ours) | AR (README) | AR (ours) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, h = r["input_size"]
        ours_ap, ours_ar = _ours_accuracy(r)
        lines.append(
            f"| {r['label']} | `{r['model']}` | {h}x{w} | {r['params_m']}M "
            f"| {r['ours_params_m']:.3f}M | {r['params_delta_pct']:+.1f}% "
            f"| {1000 * r['gmacs']:.1f}M | {1000 * r['ours_gmacs']:.1f}M "
            f"| {r['gmacs_delta_pct']:+.1f}% | {1000 * r['mmpose_conv_gmacs']:.1f}M "
            f"| {r['mmpose_conv_delta_pct']:+.1f}% | {1000 * r['mmpose_total_gmacs']:.1f}M "
            f"| {r['ap']} | {ours_ap} | {r['ar']} | {ours_ar} |"
        )
    lines.append("")
    lines += [f"- {note}" for note in LITEHRNET_NOTES]
    return lines


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| Model | Config | Input | Params (paper) | Params (ours) | Δ | GMACs (paper) "
        "| GMACs (ours) | Δ | Attn GMACs | AP (paper) | AP (ours) | AR (paper) | AR (ours) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    paper = [r for r in rows if "reference" not in r]
    litehrnet = [r for r in rows if r.get("reference") == "seed README"]
    for r in paper:
        w, h = r["input_size"]
        ours_ap, ours_ar = _ours_accuracy(r)
        lines.append(
            f"| {r['label']} | `{r['model']}` | {h}x{w} | {r['params_m']}M "
            f"| {r['ours_params_m']:.2f}M | {r['params_delta_pct']:+.1f}% | {r['gmacs']}G "
            f"| {r['ours_gmacs']:.2f}G | {r['gmacs_delta_pct']:+.1f}% "
            f"| {r['ours_attention_gmacs']:.2f}G | {r['ap']} | {ours_ap} | {r['ar']} | {ours_ar} |"
        )
    lines.append("")
    lines += [f"- {note}" for note in NOTES]
    if litehrnet:
        lines += ["", *_litehrnet_markdown(litehrnet)]
    return "\n".join(lines) + "\n"
