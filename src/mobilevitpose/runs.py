"""What a run leaves behind: its config, metrics.json, and checkpoints that rebuild themselves."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.module import CONFIG_KEY, PoseLitModule


def to_plain(cfg: DictConfig | None) -> dict[str, Any] | None:
    if cfg is None:  # e.g. scheduler=null
        return None
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def build_module(cfg: DictConfig) -> PoseLitModule:
    """The LightningModule of a composed train config; the whole resolved config rides along
    in its checkpoints (`CONFIG_KEY`) so that evaluation can reuse the data settings."""
    parts = ("model", "codec", "optimizer", "scheduler", "evaluation")
    module = PoseLitModule(
        **{key: to_plain(cfg[key]) for key in parts},
        channels_last=bool(cfg.get("channels_last", False)),
        bf16_head=cfg.get("bf16_head", False),
    )
    module.run_config = to_plain(cfg)
    return module


def build_datamodule(
    data_cfg: DictConfig,
    codec: HeatmapCodec,
    seed: int = 0,
) -> L.LightningDataModule:
    """The data config with the model's codec. The codec goes in after instantiation: Hydra
    would turn a dataclass argument into a config node."""
    build = instantiate(data_cfg, _partial_=True, _convert_="all")
    return build(codec=codec, seed=seed)


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[PoseLitModule, dict]:
    """Rebuild a PoseLitModule from a checkpoint alone, plus the run config saved in it.

    The backbone is built without fetching pre-trained weights: the checkpoint has them all.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{str(path)!r} is not a mobilevitpose Lightning checkpoint")
    hparams = copy.deepcopy(checkpoint["hyper_parameters"])
    hparams["model"]["backbone"]["pretrained"] = False
    module = PoseLitModule(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    module.run_config = checkpoint.get(CONFIG_KEY, {})
    return module, module.run_config


def write_metrics(path: Path, metrics: dict[str, float], **extra: Any) -> None:
    """metrics.json: the ten COCO stats as `val/<name>` plus what produced them."""
    payload = {**extra, **{f"val/{name}": value for name, value in metrics.items()}}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def format_metrics(metrics: dict[str, float]) -> str:
    """The COCO stats as a two-line table for the console."""
    names = list(metrics)
    head = " | ".join(f"{n:>6}" for n in names)
    values = " | ".join(f"{metrics[n]:6.4f}" for n in names)
    return f"{head}\n{values}"
