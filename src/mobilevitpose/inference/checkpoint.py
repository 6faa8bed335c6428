"""The mvp-train checkpoint file: what it holds, reading it without the training stack, and
upgrading files that earlier versions of mobilevitpose wrote.

A checkpoint is Lightning's dict: `state_dict` (the LightningModule's, so the pose model's
tensors are under `model.`), `hyper_parameters` (the config dicts the module was built from:
`model`, `init`, `codec`, `optimizer`, `scheduler`, `evaluation`, `channels_last`,
`bf16_head`), the rest of the run's resolved config (data, seed, trainer, ...) under
`CONFIG_KEY`, and the format under `FORMAT_KEY`. `Checkpoint` is the one reader of these facts.
It holds plain values and tensors only, so it loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.evaluation.settings import EvaluationSettings
from mobilevitpose.models.build import build_codec, build_pose_model
from mobilevitpose.models.pose_model import PoseModel

CONFIG_KEY = "mvp_config"
FORMAT_KEY = "mvp_format"
# 1: the flat package of mobilevitpose 0.1 (no FORMAT_KEY); 2: the sub-package layout, with the
# whole run config under CONFIG_KEY; 3: CONFIG_KEY without what `hyper_parameters` holds.
FORMAT = 3
MODEL_PREFIX = "model."
# The run config's parts that are the LightningModule's arguments, stored as its
# `hyper_parameters` and so not again under CONFIG_KEY.
MODULE_KEYS = (
    "module",
    "model",
    "init",
    "codec",
    "optimizer",
    "scheduler",
    "evaluation",
    "channels_last",
    "bf16_head",
)


def run_facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint stores of a resolved run config under CONFIG_KEY."""
    return {key: value for key, value in config.items() if key not in MODULE_KEYS}


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A mvp-train checkpoint, in the current format: its contents and the facts read from
    them (the model and codec configs, evaluation settings, the run's data settings)."""

    path: Path
    contents: dict[str, Any]

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        return self.contents["hyper_parameters"]

    @property
    def run(self) -> dict[str, Any]:
        """The run's config less the module's parts (`MODULE_KEYS`)."""
        return self.contents.get(CONFIG_KEY) or {}

    @property
    def epoch(self) -> int | None:
        return self.contents.get("epoch")

    @property
    def evaluation(self) -> EvaluationSettings:
        return EvaluationSettings.from_dict(self.hyper_parameters.get("evaluation"))

    @property
    def data(self) -> dict[str, Any]:
        """The run's data config; ValueError when the checkpoint carries none."""
        data = self.run.get("data")
        if not data:
            raise ValueError(f"{self.path} carries no data config; was it written by mvp-train?")
        return dict(data)

    def data_root(self, fix: str) -> Path:
        """The run's data root; ValueError naming `fix` (the option to give) when unrecorded."""
        root = (self.run.get("data") or {}).get("root")
        if not root:
            raise ValueError(f"{self.path} records no data.root; {fix}")
        return Path(root)

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """The pose model's tensors (the LightningModule's `model.` entries)."""
        return {
            key[len(MODEL_PREFIX) :]: value
            for key, value in self.contents["state_dict"].items()
            if key.startswith(MODEL_PREFIX)
        }

    def check_fits(self, model: torch.nn.Module, setting: str) -> None:
        """ValueError naming what differs when this checkpoint's weights do not fit `model` (the
        `setting` that named the file, e.g. ckpt_path)."""
        expected, found = model.state_dict(), self.model_state_dict()
        missing = sorted(expected.keys() - found.keys())
        unexpected = sorted(found.keys() - expected.keys())
        shapes = [
            f"{key} {list(found[key].shape)} here {list(value.shape)}"
            for key, value in expected.items()
            if key in found and found[key].shape != value.shape
        ]
        if missing or unexpected or shapes:
            saved = self.hyper_parameters.get("model") or {}
            raise ValueError(
                f"{setting}={self.path} holds the weights of {saved.get('name')!r} (backbone "
                f"{(saved.get('backbone') or {}).get('name')!r}), which do not fit this run's "
                f"model: {len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected "
                f"{unexpected[:3]}, {len(shapes)} of another shape {shapes[:3]}; choose the "
                f"model={saved.get('name')} config, or another checkpoint"
            )

    def pose_model(self) -> tuple[PoseModel, HeatmapCodec]:
        """The trained network (in eval mode, on the CPU) and its codec."""
        model = build_pose_model(self.hyper_parameters["model"])
        self.check_fits(model, "checkpoint")
        model.load_state_dict(self.model_state_dict())
        return model.eval(), build_codec(self.hyper_parameters["codec"], model)


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


def read_checkpoint(path: str | Path) -> Checkpoint:
    """A mvp-train checkpoint in the current format (older formats are upgraded)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{str(path)!r} holds pickled Python objects, which a mvp-train checkpoint never "
            f"does; it was not written by mvp-train ({str(err).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"cannot read checkpoint {str(path)!r} (truncated or not a torch file): {err}"
        ) from None
    if (
        not isinstance(contents, dict)
        or "hyper_parameters" not in contents
        or "state_dict" not in contents
    ):
        raise ValueError(f"{str(path)!r} is not a mobilevitpose Lightning checkpoint")
    version = contents.get(FORMAT_KEY, 1)
    if version == 1:
        contents = _upgrade_v1(contents, path)
    elif version == 2:
        contents = {**contents, CONFIG_KEY: run_facts(contents.get(CONFIG_KEY) or {})}
    elif version != FORMAT:
        raise ValueError(
            f"{str(path)!r} has checkpoint format {version}; this mobilevitpose reads formats 1 "
            f"to {FORMAT}: upgrade mobilevitpose (pip install -U mobilevitpose)"
        )
    return Checkpoint(path, {**contents, FORMAT_KEY: FORMAT})


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
    upgraded[CONFIG_KEY] = run_facts(_retarget(copy.deepcopy(checkpoint.get(CONFIG_KEY) or {})))
    return upgraded


def load_pose_model(
    path: str | Path,
) -> tuple[PoseModel, HeatmapCodec, EvaluationSettings]:
    """The trained network of a checkpoint (in eval mode, on the CPU), its codec and the run's
    evaluation settings, without Lightning or Hydra."""
    checkpoint = read_checkpoint(path)
    model, codec = checkpoint.pose_model()
    return model, codec, checkpoint.evaluation
