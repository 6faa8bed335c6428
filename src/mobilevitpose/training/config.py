"""Finding, composing and instantiating the Hydra configs: the console scripts' `hydra.main`,
`compose` outside a Hydra app (tests, tools, benchmarks), and the builders of what a run
config describes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.data.augment import AugmentRecipe
from mobilevitpose.data.datamodule import CocoDataModule
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.models.build import build_codec, build_pose_model
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.targets import build_from_config
from mobilevitpose.training.runs import run_dir

# The configs are the repository's top-level conf/ (Lightning-Hydra template layout), which
# src/mobilevitpose/conf links to, so that a wheel carries them as package data (MMPose ships
# its configs inside its package for the same reason) and an editable install reads conf/ itself.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"

# The evaluation group's schema is the settings dataclass itself, so that its defaults are
# written once (conf/evaluation/coco.yaml extends it) and overrides are type-checked.
_evaluation_schema = OmegaConf.structured(EvaluationSettings)
OmegaConf.set_readonly(_evaluation_schema, False)  # a frozen dataclass, but overridable config
ConfigStore.instance().store(
    group="evaluation", name="evaluation_settings", node=_evaluation_schema
)

if not OmegaConf.has_resolver("mvp_run_dir"):
    # Cached like Hydra's own `now`: every job of a sweep then shares one sweep directory.
    OmegaConf.register_new_resolver("mvp_run_dir", run_dir, use_cache=True)


def config_dir() -> Path:
    if not (CONFIG_DIR / "train.yaml").is_file():
        raise FileNotFoundError(
            f"mobilevitpose's Hydra configs are not at {CONFIG_DIR}: the installation is "
            "incomplete; reinstall with `pip install mobilevitpose` (or `pip install -e .` in "
            "a checkout, where src/mobilevitpose/conf links to conf/)."
        )
    return CONFIG_DIR


def hydra_main(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """`hydra.main` for console scripts, reading the configs from `config_dir()`.

    Hydra resolves `config_path` inside the task's *package* when the task lives in an
    imported module (as a console script's does), where conf/ is no Python package.
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


def to_plain(cfg: DictConfig | None) -> Any:
    """A config node as plain, resolved Python values (None stays None)."""
    if cfg is None:
        return None
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def instantiate(node: DictConfig | dict[str, Any], **kwargs: Any) -> Any:
    """The object a config node describes (`targets.build_from_config` on its resolved values),
    `kwargs` passed to its `_target_` as they are."""
    plain = to_plain(node) if isinstance(node, DictConfig) else node
    return build_from_config(plain, **kwargs)


def build_model(name: str, overrides: Sequence[str] = (), init: str = "plain") -> PoseModel:
    """Instantiate a model config by name (conf/model/<name>.yaml) with an init (conf/init/)."""
    if name not in available("model"):
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available('model'))}")
    cfg = compose("train", [f"model={name}", f"init={init}", *overrides])
    return build_pose_model(to_plain(cfg.model), to_plain(cfg.init))


def build_model_bundle(
    name: str, overrides: Sequence[str] = ()
) -> tuple[PoseModel, HeatmapCodec, EvaluationSettings]:
    """A model config's network (random weights, eval mode), its codec and the evaluation
    settings a run of it would have: what a checkpoint holds, without the training."""
    model = build_model(name, overrides).eval()
    cfg = compose("train", [f"model={name}", *overrides])
    codec = build_codec(to_plain(cfg.codec), model)
    return model, codec, EvaluationSettings.from_dict(to_plain(cfg.evaluation))


def augment_recipe(name: str) -> AugmentRecipe:
    """The augmentation recipe of conf/augment/<name>.yaml."""
    if name not in available("augment"):
        raise ValueError(f"unknown augment recipe {name!r}; available: {available('augment')}")
    return instantiate(compose("train", [f"augment={name}"]).augment)


def build_datamodule(data_cfg: DictConfig, codec: HeatmapCodec, seed: int = 0) -> CocoDataModule:
    """The datamodule of a data config, cutting crops for the model's codec."""
    return instantiate(data_cfg, codec=codec, seed=seed)


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The `callbacks` group's callbacks (an entry set to null is dropped)."""
    return [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node is not None]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """The `logger` group's loggers, each given the whole run config as hyperparameters, so
    that dashboards can group and filter by init, data and trainer settings too."""
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values()]
    for logger in loggers:
        logger.log_hyperparams(to_plain(cfg))
    return loggers
