"""Table 3 (RQ2: plain vs ImageNet pre-trained) and Figs. 2-3 from finished runs.

Runs come from `reporting.runs`: their run directories, or the same numbers through wandb.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mobilevitpose.files import write_json
from mobilevitpose.reporting.runs import INIT_LABEL, Run

TABLE3_COLUMNS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75")

# The paper's Table 3 (COCO val2017, detected boxes, flip test), in percent.
_PAPER_ROWS = {
    ("mobilevitpose_xxs", "plain"): (60.2, 84.8, 66.7, 66.5, 89.4, 72.7),
    ("mobilevitpose_xxs", "imagenet"): (61.7, 86.1, 69.0, 67.9, 90.5, 74.6),
    ("mobilevitpose_s", "plain"): (63.9, 86.2, 70.8, 69.9, 90.4, 76.3),
    ("mobilevitpose_s", "imagenet"): (69.4, 88.8, 77.0, 74.9, 92.8, 82.0),
}
PAPER_TABLE3: dict[tuple[str, str], dict[str, float]] = {
    key: dict(zip(TABLE3_COLUMNS, values, strict=True)) for key, values in _PAPER_ROWS.items()
}


def table3_rows(runs: Sequence[Run]) -> list[dict]:
    rows = []
    for run in runs:
        paper = PAPER_TABLE3.get((run.model, run.init))
        ours = {c: round(100.0 * run.metrics[c], 1) for c in TABLE3_COLUMNS}
        rows.append(
            {
                "run": run.name,
                "model": run.model,
                "init": run.init,
                "ours": ours,
                "paper": paper,
                "delta": {c: round(ours[c] - paper[c], 1) for c in TABLE3_COLUMNS}
                if paper
                else None,
            }
        )
    return rows


def pretraining_gain(runs: Sequence[Run]) -> dict[str, dict[str, float | None]]:
    """AP (pre-trained) - AP (plain) per model size, ours and the paper's, in points."""
    gains = {}
    for model in sorted({r.model for r in runs}):
        by_init = {r.init: 100.0 * r.metrics["AP"] for r in runs if r.model == model}
        paper = {i: PAPER_TABLE3.get((model, i), {}).get("AP") for i in ("plain", "imagenet")}
        ours = by_init["imagenet"] - by_init["plain"] if len(by_init) == 2 else None
        paper_pre, paper_plain = paper["imagenet"], paper["plain"]
        paper_gain = (
            paper_pre - paper_plain if paper_pre is not None and paper_plain is not None else None
        )
        gains[model] = {
            "ours": None if ours is None else round(ours, 1),
            "paper": None if paper_gain is None else round(paper_gain, 1),
        }
    return gains


def to_markdown(rows: list[dict], gains: dict, caveat: str | None) -> str:
    head = " | ".join(f"{c} (ours / paper / Δ)" for c in TABLE3_COLUMNS)
    lines = [f"| Model | {head} |", "|---|" + "---|" * len(TABLE3_COLUMNS)]
    for row in rows:
        cells = []
        for c in TABLE3_COLUMNS:
            if row["paper"]:
                cells.append(f"{row['ours'][c]:.1f} / {row['paper'][c]:.1f} / "
                             f"{row['delta'][c]:+.1f}")  # fmt: skip
            else:
                cells.append(f"{row['ours'][c]:.1f} / - / -")
        label = f"{row['model']} ({INIT_LABEL.get(row['init'], row['init'])})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Pre-training gain, AP points (pre-trained - plain):", ""]
    for model, gain in gains.items():
        ours = "n/a" if gain["ours"] is None else f"{gain['ours']:+.1f}"
        paper = "n/a" if gain["paper"] is None else f"{gain['paper']:+.1f}"
        lines.append(f"- {model}: ours {ours}, paper {paper}")
    if caveat:
        lines = [f"> **{caveat}**", "", *lines]
    return "\n".join(lines) + "\n"


def plot_curves(runs: Sequence[Run], attr: str, ylabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        curve = getattr(run, attr)
        if not curve:
            continue
        epochs = sorted(curve)
        style = "-" if run.init == "imagenet" else "--"
        ax.plot([e + 1 for e in epochs], [curve[e] for e in epochs], style, marker="o",
                markersize=3, label=run.label)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SMOKE_CAVEAT = (
    "Smoke run on synthetic data with tiny models and a few epochs: it checks that the "
    "pipeline works end to end. Its numbers are not comparable to the paper's COCO numbers."
)


def write_report(runs: Sequence[Run], out_dir: Path, caveat: str | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, gains = table3_rows(runs), pretraining_gain(runs)
    report = {"caveat": caveat, "rows": rows, "pretraining_gain_ap": gains}
    write_json(out_dir / "table3.json", report)
    title = "# Table 3: plain vs ImageNet pre-trained backbone (RQ2)\n\n"
    (out_dir / "table3.md").write_text(title + to_markdown(rows, gains, caveat))
    plot_curves(runs, "val_ap", "val AP (OKS)", "Fig. 2: validation AP per epoch",
                out_dir / "fig2_val_ap.png")  # fmt: skip
    plot_curves(runs, "train_loss", "train loss (heatmap MSE)", "Fig. 3: training loss per epoch",
                out_dir / "fig3_train_loss.png")  # fmt: skip
    return report
