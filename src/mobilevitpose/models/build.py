"""A pose model and its codec from their config dicts (`_target_` nodes, as Hydra writes them).

Training, `mvp-eval` and inference all build through here, from the composed config or from a
checkpoint's hyperparameters. The `_target_` resolution is written out instead of calling
`hydra.utils.instantiate` because inference must run without Hydra installed or imported; it
covers what the model configs use: `_target_`, `_partial_` and nested nodes.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Mapping
from typing import Any

from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.models.pose_model import PoseModel

_RESERVED = ("_target_", "_partial_", "_recursive_", "_convert_")


def locate(path: str) -> Any:
    """The object a dotted `_target_` path names, e.g. 'mobilevitpose.models.heads.DeconvHead'."""
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"_target_ {path!r} names nothing importable: {err}") from None


def build_from_config(node: Any) -> Any:
    """Instantiate a config node: mappings with `_target_` become objects (partials with
    `_partial_: true`), depth first; everything else is returned as plain values."""
    if isinstance(node, Mapping):
        values = {k: build_from_config(v) for k, v in node.items() if k not in _RESERVED}
        if "_target_" not in node:
            return values
        target = locate(node["_target_"])
        if node.get("_partial_", False):
            return functools.partial(target, **values)
        return target(**values)
    if isinstance(node, list | tuple):
        return [build_from_config(v) for v in node]
    return node


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
