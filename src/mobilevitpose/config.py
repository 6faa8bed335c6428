"""Finding and composing the Hydra configs outside a Hydra app (tests, tools, checkpoints)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.pose_model import PoseModel

# The configs live beside the package in the repository (Lightning-Hydra template layout);
# an editable install (`pip install -e .`) keeps them reachable.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def run_dir(resume: str | None, base: str) -> str:
    """Hydra's run directory: a new timestamped one under `base`, or the run being resumed.

    `resume` is a run directory, or "last" for the newest run under `base` that has a
    checkpoint. Microsecond timestamps keep two runs from ever sharing (overwriting) a directory.
    """
    if resume in (None, "", "null"):
        return f"{base}/{datetime.now():%Y-%m-%d_%H-%M-%S-%f}"
    if resume == "last":
        candidates = sorted(
            Path(base).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime
        )
        if not candidates:
            raise FileNotFoundError(f"resume=last: no run with checkpoints/last.ckpt under {base}")
        return str(candidates[-1].parents[1])
    path = Path(resume).expanduser()
    if not (path / "checkpoints" / "last.ckpt").is_file():
        raise FileNotFoundError(
            f"resume={resume}: {path}/checkpoints/last.ckpt does not exist; give the directory "
            "of a run that saved a checkpoint, or resume=last"
        )
    return str(path.resolve())


if not OmegaConf.has_resolver("mvp_run_dir"):
    # Cached like Hydra's own `now`: every job of a sweep then shares one sweep directory.
    OmegaConf.register_new_resolver("mvp_run_dir", run_dir, use_cache=True)


def config_dir() -> Path:
    if not (CONFIG_DIR / "train.yaml").is_file():
        raise FileNotFoundError(
            f"mobilevitpose's Hydra configs are not at {CONFIG_DIR}; install the package from "
            "its repository with `pip install -e .` so that conf/ stays beside src/."
        )
    return CONFIG_DIR


def hydra_main(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """`hydra.main` for console scripts, reading the configs from `conf/` beside `src/`.

    Hydra resolves `config_path` inside the task's *package* when the task lives in an
    imported module (as a console script's does), which cannot reach a top-level `conf/`.
    Presenting the task as a script makes Hydra resolve the (absolute) path as a folder.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        task.__module__ = "__main__"
        return hydra.main(version_base="1.3", config_path=str(config_dir()),
                          config_name=config_name)(task)  # fmt: skip

    return decorate


def available(group: str) -> list[str]:
    """Option names of a config group, e.g. available('model')."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


def build_model(name: str, overrides: Sequence[str] = (), init: str = "plain") -> PoseModel:
    """Instantiate a model config by name (conf/model/<name>.yaml)."""
    if name not in available("model"):
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available('model'))}")
    cfg = compose("train", [f"model={name}", f"init={init}", *overrides])
    try:
        return instantiate(cfg.model)
    except InstantiationException as err:
        # Hydra wraps the builder's own error; the original names the file or value at fault.
        raise (err.__cause__ or err) from None
