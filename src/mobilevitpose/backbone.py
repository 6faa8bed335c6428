"""timm backbones as feature extractors for a heatmap head."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn


def _unknown_backbone(name: str) -> ValueError:
    known = timm.list_models()
    close = difflib.get_close_matches(name, known, n=8, cutoff=0.6)
    hint = f" Close timm names: {', '.join(close)}." if close else ""
    return ValueError(f"unknown timm backbone {name!r} (model.backbone.name).{hint}")


class TimmBackbone(nn.Module):
    """One feature map of a timm model, as `features_only` builds it.

    `out_channels` and `reduction` come from timm's `feature_info`, so a head never has its input
    width typed in. ImageNet weights load through timm itself (hub, or a local file through
    `pretrained_cfg_overlay`), which unwraps `state_dict`/`model` checkpoints, strips `module.`
    prefixes and drops the classifier before a strict load.
    """

    def __init__(
        self,
        name: str,
        out_index: int = -1,
        pretrained: bool = False,
        pretrained_file: str | None = None,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        if name not in timm.list_models():
            raise _unknown_backbone(name)
        self.name = name
        kwargs = dict(features_only=True, out_indices=(out_index,), **timm_kwargs)
        if pretrained:
            self.body = _create_pretrained(name, pretrained_file, kwargs)
        else:
            self.body = timm.create_model(name, pretrained=False, **kwargs)
        info = self.body.feature_info
        self.out_channels: int = info.channels()[-1]
        self.reduction: int = info.reduction()[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]


def _create_pretrained(name: str, file: str | None, kwargs: dict[str, Any]) -> nn.Module:
    fix = f"init=imagenet init.file=/path/to/{name}.safetensors"
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights for backbone {name!r} not found at {str(path)!r} (init.file). "
                f"Give an existing safetensors or torch file: {fix}"
            )
        try:
            return timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
            )
        except RuntimeError as err:  # strict load_state_dict: names missing/unexpected keys
            raise ValueError(
                f"weights in {str(path)!r} do not fit backbone {name!r}; "
                f"is it a checkpoint of another architecture?\n{err}"
            ) from err
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # offline hub, missing weights: every failure means the same fix
        raise RuntimeError(
            f"could not fetch ImageNet weights for backbone {name!r} from the model hub "
            f"({type(err).__name__}: {err}). Download them where you have internet and run "
            f"with `{fix}`, or train from scratch with `init=plain`."
        ) from err
