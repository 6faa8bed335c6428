"""Finding and composing the Hydra configs outside a Hydra app (tests, tools, checkpoints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from mobilevitpose.pose_model import PoseModel

# The configs live beside the package in the repository (Lightning-Hydra template layout);
# an editable install (`pip install -e .`) keeps them reachable.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def config_dir() -> Path:
    if not (CONFIG_DIR / "train.yaml").is_file():
        raise FileNotFoundError(
            f"mobilevitpose's Hydra configs are not at {CONFIG_DIR}; install the package from "
            "its repository with `pip install -e .` so that conf/ stays beside src/."
        )
    return CONFIG_DIR


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
