"""What a run leaves behind and where: its directory, config, metrics.json, and resuming it."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from mobilevitpose.files import write_json

# What a run directory holds (besides csv/ and wandb/ logs and val.keypoints.json).
CONFIG_FILE = "config.yaml"  # the resolved run config
METRICS_FILE = "metrics.json"  # the final validation of the best checkpoint
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.ckpt"  # what `resume` continues from
HYDRA_DIR = ".hydra"


def run_dir(resume: str | None, base: str) -> str:
    """Hydra's run directory: a new timestamped one under `base`, or the run being resumed.

    `resume` is a run directory, or "last" for the newest run under `base` that has a
    checkpoint. Microsecond timestamps keep two runs from ever sharing (overwriting) a directory.
    """
    if resume in (None, "", "null"):
        return f"{base}/{datetime.now():%Y-%m-%d_%H-%M-%S-%f}"
    if resume == "last":
        candidates = sorted(
            Path(base).glob(f"*/{LAST_CHECKPOINT}"), key=lambda p: p.stat().st_mtime
        )
        if not candidates:
            raise FileNotFoundError(f"resume=last: no run with {LAST_CHECKPOINT} under {base}")
        return str(candidates[-1].parents[1])
    path = Path(resume).expanduser()
    if not (path / LAST_CHECKPOINT).is_file():
        raise FileNotFoundError(
            f"resume={resume}: {path / LAST_CHECKPOINT} does not exist; give the directory "
            "of a run that saved a checkpoint, or resume=last"
        )
    return str(path.resolve())


def resumed_config(cfg: DictConfig, output_dir: Path) -> DictConfig | None:
    """The saved config of the run in `output_dir` when this start continues it, else None.

    A run continues when `resume` names it (Hydra then put us in its directory), or when SLURM
    requeues a preempted job into the same directory. Any other start in a directory that
    already holds checkpoints is refused, so nothing a run made is overwritten.
    """
    last = output_dir / LAST_CHECKPOINT
    requeued = bool(os.environ.get("SLURM_RESTART_COUNT")) and last.is_file()
    if cfg.get("resume") or requeued:
        saved = OmegaConf.load(output_dir / CONFIG_FILE)
        assert isinstance(saved, DictConfig)
        if "module" not in saved:
            raise ValueError(
                f"{output_dir / CONFIG_FILE} was written by mobilevitpose 0.1, whose runs this "
                "version cannot continue; evaluate its checkpoints with mvp-eval, or start anew"
            )
        saved.ckpt_path = str(last)
        saved.resume = str(output_dir)
        return saved
    existing = sorted((output_dir / CHECKPOINT_DIR).glob("*.ckpt"))
    if existing and cfg.get("ckpt_path") is None:
        raise FileExistsError(
            f"{output_dir} already holds checkpoints ({existing[0].name}, ...); continue that "
            f"run with resume={output_dir}, or pick a new hydra.run.dir. Nothing was overwritten."
        )
    return None


def write_hydra_record(output_dir: Path, cfg: DictConfig) -> None:
    """`.hydra/` with the composed config (unresolved) and the command-line overrides, as Hydra
    would write them (its own hydra.yaml aside), for a run that was allowed to start
    (conf/hydra/default.yaml says why)."""
    record = output_dir / HYDRA_DIR
    record.mkdir(parents=True, exist_ok=True)
    (record / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    (record / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))


def pin_wandb_run(cfg: DictConfig) -> None:
    """Give the wandb logger a fixed run id, saved in config.yaml, so that a resumed run logs
    into the same wandb run."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is not None and not wandb_cfg.get("id"):
        # wandb's own id helper moved between releases; any unique [a-z0-9] string will do.
        with open_dict(wandb_cfg):
            wandb_cfg.id = secrets.token_hex(4)
            wandb_cfg.resume = "allow"


def write_metrics(path: Path, metrics: dict[str, float], **extra: Any) -> None:
    """metrics.json: the ten COCO stats as `val/<name>` plus what produced them."""
    payload = {**extra, **{f"val/{name}": value for name, value in metrics.items()}}
    write_json(path, payload)


def format_metrics(metrics: dict[str, float]) -> str:
    """The COCO stats as a two-line table for the console."""
    names = list(metrics)
    head = " | ".join(f"{n:>6}" for n in names)
    values = " | ".join(f"{metrics[n]:6.4f}" for n in names)
    return f"{head}\n{values}"
