"""The mvp-train checkpoint file: what it holds, reading it without the training stack, and
upgrading files that earlier versions of mobilevitpose wrote.

A checkpoint is Lightning's dict: `state_dict` (the LightningModule's, so the pose model's
tensors are under `model.`), `hyper_parameters` (the config dicts the module was built from:
`model`, `init`, `codec`, `optimizer`, `scheduler`, `evaluation`, `channels_last`,
`bf16_head`), the run's whole resolved config under `CONFIG_KEY`, and the format under
`FORMAT_KEY`.
"""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path
from typing import Any

import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.models.build import build_codec, build_pose_model
from mobilevitpose.models.pose_model import PoseModel

CONFIG_KEY = "mvp_config"
FORMAT_KEY = "mvp_format"
# 1: the flat package of mobilevitpose 0.1 (no FORMAT_KEY); 2: the sub-package layout.
FORMAT = 2
MODEL_PREFIX = "model."

# Where version 1's `_target_`s moved.
_MOVED_TARGETS = {
    "mobilevitpose.pose_model.PoseModel": "mobilevitpose.models.pose_model.PoseModel",
    "mobilevitpose.backbone.TimmBackbone": "mobilevitpose.models.backbone.TimmBackbone",
    "mobilevitpose.heads.DeconvHead": "mobilevitpose.models.heads.DeconvHead",
    "mobilevitpose.heads.SimpleHead": "mobilevitpose.models.heads.SimpleHead",
    "mobilevitpose.heads.ConvHead": "mobilevitpose.models.heads.ConvHead",
    "mobilevitpose.module.warmup_multistep": "mobilevitpose.training.schedulers.warmup_multistep",
    "mobilevitpose.datamodule.CocoDataModule": "mobilevitpose.data.datamodule.CocoDataModule",
}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A mvp-train checkpoint as a dict in the current format (older formats are upgraded)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"cannot read checkpoint {str(path)!r} (truncated or not a torch file): {err}"
        ) from None
    if (
        not isinstance(checkpoint, dict)
        or "hyper_parameters" not in checkpoint
        or "state_dict" not in checkpoint
    ):
        raise ValueError(f"{str(path)!r} is not a mobilevitpose Lightning checkpoint")
    version = checkpoint.get(FORMAT_KEY, 1)
    if version == 1:
        return _upgrade_v1(checkpoint, path)
    if version != FORMAT:
        raise ValueError(
            f"{str(path)!r} has checkpoint format {version}; this mobilevitpose reads formats 1 "
            f"to {FORMAT}: upgrade mobilevitpose (pip install -e . in a newer checkout)"
        )
    return checkpoint


def _retarget(node: Any) -> Any:
    if isinstance(node, dict):
        moved = {k: _retarget(v) for k, v in node.items()}
        if "_target_" in moved:
            moved["_target_"] = _MOVED_TARGETS.get(moved["_target_"], moved["_target_"])
        return moved
    if isinstance(node, list):
        return [_retarget(v) for v in node]
    return node


def _upgrade_v1(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """Version 1 typed heatmap sizes, the codec's sizes and the backbone's init into the model
    config; version 2 derives the sizes and keeps the init apart."""
    upgraded = dict(checkpoint)
    hparams = _retarget(copy.deepcopy(checkpoint["hyper_parameters"]))
    try:
        model = hparams["model"]
        input_size = [int(v) for v in model["input_size"]]
        heatmap_size = [int(v) for v in model.pop("heatmap_size", [v // 4 for v in input_size])]
        backbone = model["backbone"]
        codec = hparams["codec"]
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"{str(path)!r} looks like a mobilevitpose 0.1 checkpoint but lacks {err}; "
            "re-train it, or evaluate it with the mobilevitpose release that wrote it"
        ) from None
    if heatmap_size != [v // 4 for v in input_size]:
        raise ValueError(
            f"{str(path)!r}: heatmap_size {heatmap_size} is not input_size {input_size} / 4; "
            "this mobilevitpose derives it and cannot rebuild such a model"
        )
    init_name = "imagenet" if backbone.pop("pretrained", False) else "plain"
    backbone.pop("pretrained_file", None)
    hparams["init"] = {"name": init_name, "pretrained": False, "file": None}
    for key in ("input_size", "heatmap_size"):
        codec.pop(key, None)
    upgraded["hyper_parameters"] = hparams
    upgraded[CONFIG_KEY] = _retarget(copy.deepcopy(checkpoint.get(CONFIG_KEY) or {}))
    upgraded[FORMAT_KEY] = FORMAT
    return upgraded


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The pose model's tensors of a checkpoint (the LightningModule's `model.` entries)."""
    return {
        key[len(MODEL_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(MODEL_PREFIX)
    }


def load_pose_model(
    path: str | Path,
) -> tuple[PoseModel, HeatmapCodec, EvaluationSettings]:
    """The trained network of a checkpoint (in eval mode, on the CPU), its codec and the run's
    evaluation settings, without Lightning or Hydra."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    model = build_pose_model(hparams["model"])
    model.load_state_dict(model_state_dict(checkpoint))
    codec = build_codec(hparams["codec"], model)
    return model.eval(), codec, EvaluationSettings.from_dict(hparams.get("evaluation"))
