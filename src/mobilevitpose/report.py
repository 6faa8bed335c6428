"""Table 3 (RQ2: plain vs ImageNet pre-trained) and Figs. 2-3 from finished runs.

Runs are read from their run directories (config.yaml, metrics.json, csv/metrics.csv), so no
account is needed; `--wandb PROJECT` reads the same numbers through the wandb API instead.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

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
INIT_LABEL = {"plain": "Plain", "imagenet": "Pre-trained"}


@dataclass
class Run:
    """One finished run: its identity, final metrics (0-1) and per-epoch curves."""

    name: str
    model: str
    init: str
    experiment: str
    metrics: dict[str, float]
    val_ap: dict[int, float] = field(default_factory=dict)  # epoch -> val/AP
    train_loss: dict[int, float] = field(default_factory=dict)  # epoch -> mean train loss
    data: str = ""
    input_size: tuple[int, int] | None = None  # (w, h)

    @property
    def label(self) -> str:
        return f"{self.model} ({INIT_LABEL.get(self.init, self.init)})"


def _epoch_curve(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    curve = {}
    for row in rows:
        value = row.get(key, "")
        if value not in ("", None) and row.get("epoch", "") != "":
            curve[int(float(row["epoch"]))] = float(value)
    return curve


def load_run(run_dir: Path) -> Run:
    """Read a run directory written by mvp-train."""
    config_file, metrics_file = run_dir / "config.yaml", run_dir / "metrics.json"
    for path in (config_file, metrics_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: is {run_dir} a finished mvp-train run?")
    config = OmegaConf.to_container(OmegaConf.load(config_file))
    metrics = json.loads(metrics_file.read_text())
    rows: list[dict[str, str]] = []
    csv_file = run_dir / "csv" / "metrics.csv"
    if csv_file.is_file():
        with csv_file.open() as f:
            rows = list(csv.DictReader(f))
    return Run(
        name=run_dir.name,
        model=config["model"]["name"],
        init=config["init"]["name"],
        experiment=config.get("experiment_name", ""),
        metrics={k[4:]: v for k, v in metrics.items() if k.startswith("val/")},
        val_ap=_epoch_curve(rows, "val/AP"),
        train_loss=_epoch_curve(rows, "train/loss_epoch"),
        data=str(config["data"]["root"]),
        input_size=tuple(config["model"]["input_size"]),
    )


def find_runs(paths: Iterable[Path]) -> list[Run]:
    """Every finished run (a directory with metrics.json) under the given directories."""
    runs = []
    for path in paths:
        found = sorted({p.parent for p in Path(path).rglob("metrics.json")})
        if not found:
            raise FileNotFoundError(f"no finished run (metrics.json) under {path}")
        runs += [load_run(d) for d in found if (d / "config.yaml").is_file()]
    return sorted(runs, key=lambda r: (r.model, r.init != "plain", r.name))


def runs_from_wandb(project: str, group: str | None = None) -> list[Run]:
    """The same Runs from a wandb project ("entity/project"), grouped as a sweep logs them."""
    import wandb

    api = wandb.Api()
    filters = {"group": group} if group else {}
    runs = []
    for r in api.runs(project, filters=filters):
        if r.state != "finished":
            continue
        history = list(r.scan_history(keys=["epoch", "val/AP"]))
        losses = list(r.scan_history(keys=["epoch", "train/loss_epoch"]))
        runs.append(
            Run(
                name=r.name,
                model=r.config["model"]["name"],
                init=r.config["init"]["name"],
                experiment=r.config.get("experiment_name", ""),
                metrics={k[4:]: float(v) for k, v in r.summary.items() if k.startswith("val/")},
                val_ap={int(h["epoch"]): float(h["val/AP"]) for h in history},
                train_loss={int(h["epoch"]): float(h["train/loss_epoch"]) for h in losses},
                data=str(r.config.get("data", {}).get("root", "")),
                input_size=tuple(r.config["model"]["input_size"]),
            )
        )
    if not runs:
        raise ValueError(f"no finished runs in wandb project {project!r} (group {group!r})")
    return sorted(runs, key=lambda r: (r.model, r.init != "plain", r.name))


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
        paper_gain = paper["imagenet"] - paper["plain"] if None not in paper.values() else None
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


def write_report(runs: Sequence[Run], out_dir: Path, caveat: str | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, gains = table3_rows(runs), pretraining_gain(runs)
    report = {"caveat": caveat, "rows": rows, "pretraining_gain_ap": gains}
    (out_dir / "table3.json").write_text(json.dumps(report, indent=2) + "\n")
    title = "# Table 3: plain vs ImageNet pre-trained backbone (RQ2)\n\n"
    (out_dir / "table3.md").write_text(title + to_markdown(rows, gains, caveat))
    plot_curves(runs, "val_ap", "val AP (OKS)", "Fig. 2: validation AP per epoch",
                out_dir / "fig2_val_ap.png")  # fmt: skip
    plot_curves(runs, "train_loss", "train loss (heatmap MSE)", "Fig. 3: training loss per epoch",
                out_dir / "fig3_train_loss.png")  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Table 3 and Figs. 2-3 from finished runs.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", type=Path, nargs="+", help="run or sweep directories")
    source.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from wandb")
    parser.add_argument("--group", help="wandb group (the sweep's experiment name)")
    parser.add_argument("--out-dir", type=Path, default=Path("reports"))
    parser.add_argument("--smoke", action="store_true",
                        help="mark the report as a smoke run on synthetic data")  # fmt: skip
    args = parser.parse_args(argv)
    runs = find_runs(args.runs) if args.runs else runs_from_wandb(args.wandb, args.group)
    caveat = None
    if args.smoke:
        caveat = ("Smoke run on synthetic data with tiny models and a few epochs: it checks "
                  "that the pipeline works end to end. Its numbers are not comparable to the "
                  "paper's COCO numbers.")  # fmt: skip
    report = write_report(runs, args.out_dir, caveat)
    print((args.out_dir / "table3.md").read_text())
    if any(math.isnan(v) for r in report["rows"] for v in r["ours"].values()):
        raise SystemExit("some runs have NaN metrics")


if __name__ == "__main__":
    main()
