"""A pose model and its codec from their config dicts (`_target_` nodes, as Hydra writes them).

Training, `mvp-eval` and inference all build through here, from the composed config or from a
checkpoint's hyperparameters.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.targets import build_from_config


def build_pose_model(model: Mapping[str, Any], init: Mapping[str, Any] | None = None) -> PoseModel:
    """The PoseModel of a `model` config, its backbone initialised as `init` (the `init` config:
    `pretrained`, `file`) says; no init: random weights (a checkpoint's weights follow)."""
    config = copy.deepcopy(dict(model))
    backbone = dict(config["backbone"])
    backbone["pretrained"] = bool((init or {}).get("pretrained", False))
    backbone["pretrained_file"] = (init or {}).get("file")
    config["backbone"] = backbone
    built = build_from_config(config)
    if not isinstance(built, PoseModel):
        raise TypeError(f"model._target_ must build a PoseModel; got {type(built).__name__}")
    return built


def build_codec(codec: Mapping[str, Any], model: PoseModel) -> HeatmapCodec:
    """The codec of a `codec` config (a partial HeatmapCodec), at the model's input and heatmap
    sizes, which follow from the model and are never typed in."""
    factory = build_from_config({**codec, "_partial_": True})
    built = factory(input_size=model.input_size, heatmap_size=model.heatmap_size)
    if not isinstance(built, HeatmapCodec):
        raise TypeError(f"codec._target_ must build a HeatmapCodec; got {type(built).__name__}")
    return built
