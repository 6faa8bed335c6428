"""Finished runs, read from their run directories or from wandb, for the tables and figures."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from mobilevitpose.training.runs import CONFIG_FILE, METRICS_FILE

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
    config_file, metrics_file = run_dir / CONFIG_FILE, run_dir / METRICS_FILE
    for path in (config_file, metrics_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: is {run_dir} a finished mvp-train run?")
    config = cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.load(config_file)))
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
        found = sorted({p.parent for p in Path(path).rglob(METRICS_FILE)})
        if not found:
            raise FileNotFoundError(f"no finished run (metrics.json) under {path}")
        runs += [load_run(d) for d in found if (d / CONFIG_FILE).is_file()]
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
