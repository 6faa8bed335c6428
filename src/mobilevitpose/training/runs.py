"""What a run leaves behind and where: its directory, config, metrics.json, and resuming it."""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from mobilevitpose.files import write_json

# What a run directory holds (besides csv/ and wandb/ logs and val.keypoints.json).
CONFIG_FILE = "config.yaml"  # the resolved run config
METRICS_FILE = "metrics.json"  # the final validation of the best checkpoint
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.ckpt"  # what `resume` continues from
HYDRA_DIR = ".hydra"
CSV_LOG = "csv/metrics.csv"
LOCK_FILE = ".lock"  # held by the process that runs in the directory
# What makes a directory a run's: a new run or an evaluation never starts where these are.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_DIR, HYDRA_DIR, CSV_LOG)
# Overrides that say where a run is or whether to start it, not what it computes: the only ones
# a resumed run (which continues with its saved config) can honour.
_RESUME_OVERRIDABLE = ("resume", "dry_run", "paths.", "hydra.")


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


def resumed_config(cfg: DictConfig, output_dir: Path, check: bool = True) -> DictConfig | None:
    """The saved config of the run in `output_dir` when this start continues it, else None.

    A run continues when `resume` names it (Hydra then put us in its directory), or when SLURM
    requeues a preempted job into the same directory. Any other start in a directory that
    holds a run's files is refused (`check`; DDP workers, which join the first process's run,
    skip it), and so is a resume with overrides it would ignore.
    """
    last = output_dir / LAST_CHECKPOINT
    requeued = bool(os.environ.get("SLURM_RESTART_COUNT")) and last.is_file()
    if cfg.get("resume") or requeued:
        ignored = [
            o for o in task_overrides() if not _override_key(o).startswith(_RESUME_OVERRIDABLE)
        ]
        if cfg.get("resume") and ignored:
            raise ValueError(
                f"resume={cfg.resume} continues that run with its saved {CONFIG_FILE}, so it "
                f"cannot honour {', '.join(ignored)}; to train on from its weights with other "
                f"settings, start a new run with ckpt_path={last} and those overrides"
            )
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
    if check:
        check_unclaimed(output_dir, f"continue that run with resume={output_dir}, or pick a new "
                                    "hydra.run.dir")  # fmt: skip
    return None


def check_unclaimed(output_dir: Path, fix: str) -> None:
    """Refuse a directory that holds another run's files (`RUN_FILES`), naming them and `fix`."""
    checkpoints = sorted((output_dir / CHECKPOINT_DIR).glob("*.ckpt"))
    if checkpoints:
        found = f"checkpoints ({checkpoints[0].name}, ...)"
    else:
        names = [name for name in RUN_FILES if (output_dir / name).exists()]
        if not names:
            return
        found = f"another run's {', '.join(names)}"
    raise FileExistsError(f"{output_dir} already holds {found}; {fix}. Nothing was overwritten.")


@contextlib.contextmanager
def owned(output_dir: Path, command: str) -> Iterator[None]:
    """Hold the run directory's lock while `command` works in it: a second process started
    into the same directory stops at once instead of writing over this one's files."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(output_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FileExistsError(
            f"another process is running in {output_dir} (it holds {output_dir / LOCK_FILE}); "
            f"start {command} in a directory of its own"
        ) from None
    try:
        yield
    finally:
        lock.release()


def task_overrides() -> list[str]:
    """The command line's overrides of this Hydra job (none outside a Hydra app)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def read_csv_log(output_dir: Path, last_epoch: int) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a run's CSV log up to `last_epoch`: what a resumed run keeps (it
    logs the epochs after its checkpoint again)."""
    path = output_dir / CSV_LOG
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if not r.get("epoch") or int(float(r["epoch"])) <= last_epoch]
        return list(reader.fieldnames or []), rows


def restore_csv_log(
    loggers: Sequence[Logger], header: list[str], rows: list[dict[str, str]]
) -> None:
    """Write a resumed run's earlier CSV rows back: Lightning's CSV writer deletes the file it
    finds when it starts, and appends to what it knows of afterwards."""
    if not header:
        return
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            writer = logger.experiment
            with open(writer.metrics_file_path, "w", newline="") as f:
                out = csv.DictWriter(f, fieldnames=header)
                out.writeheader()
                out.writerows(rows)
            # The writer rewrites the file with a new header only for keys it has not seen.
            writer.metrics_keys = sorted(header)


def write_hydra_record(output_dir: Path, cfg: DictConfig) -> None:
    """`.hydra/` with the composed config (unresolved) and the command-line overrides, as Hydra
    would write them (its own hydra.yaml aside), for a run that was allowed to start
    (conf/hydra/default.yaml says why)."""
    record = output_dir / HYDRA_DIR
    record.mkdir(parents=True, exist_ok=True)
    (record / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    overrides = task_overrides()
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
