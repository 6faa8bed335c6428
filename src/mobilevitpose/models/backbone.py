"""timm backbones as feature extractors for a heatmap head."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, cast

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

    `out_channels` and `reduction` (the tapped feature's stride) come from timm's
    `feature_info`, so a head never has its input width typed in, and so does `input_multiple`
    (what every input side must be a multiple of); `mean` and `std` from its `pretrained_cfg`.
    ImageNet weights load through timm itself (hub, or a local file through
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
        # timm sets these attributes; torch's stubs type module attributes `Tensor | Module`.
        info = cast("timm.models.FeatureInfo", self.body.feature_info)
        pretrained_cfg = cast("dict[str, Any]", self.body.pretrained_cfg)
        self.out_channels: int = info.channels()[-1]
        self.reduction: int = info.reduction()[-1]
        # The network downsamples by its deepest stage's stride whichever feature is tapped; an
        # input that stride does not divide gives feature maps of another size than planned.
        self.input_multiple: int = max(int(stage["reduction"]) for stage in info.info)
        # The pixel normalisation the pretrained weights expect (RGB on the 0-1 scale); None
        # where timm knows none (the pose model then needs model.mean / model.std).
        mean, std = pretrained_cfg.get("mean"), pretrained_cfg.get("std")
        self.mean: tuple[float, ...] | None = None if mean is None else tuple(mean)
        self.std: tuple[float, ...] | None = None if std is None else tuple(std)

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
        _check_state_dict_keys(name, path, kwargs)
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs
        )
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # offline hub, missing weights: every failure means the same fix
        raise ConnectionError(
            f"could not fetch ImageNet weights for backbone {name!r} from the model hub "
            f"({type(err).__name__}: {err}). Download them where you have internet and run "
            f"with `{fix}`, or train from scratch with `init=plain`."
        ) from err


def _check_state_dict_keys(name: str, path: Path, kwargs: dict[str, Any]) -> None:
    """Refuse a weight file whose tensor names do not match the backbone.

    timm loads pre-trained weights into a `features_only` model non-strictly (the classifier
    is dropped), so a file of another architecture would otherwise load nothing, silently.
    """
    try:
        state = timm.models.load_state_dict(str(path))
    except Exception as err:
        raise ValueError(f"cannot read weights from {str(path)!r}: {err}") from err
    model_kwargs = {k: v for k, v in kwargs.items() if k not in _FEATURE_KWARGS}
    with torch.device("meta"):  # names only: no memory, no init cost
        reference = timm.create_model(name, pretrained=False, **model_kwargs)
    classifier = cast("dict[str, Any]", reference.pretrained_cfg).get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)

    def backbone_keys(keys) -> set[str]:
        return {k for k in keys if not any(k.startswith(c + ".") for c in classifier)}

    expected = backbone_keys(reference.state_dict())
    found = backbone_keys(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {str(path)!r} do not fit backbone {name!r} (is it a checkpoint of "
            f"another architecture?): {len(missing)} missing keys {missing[:8]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:8]}"
        )


_FEATURE_KWARGS = ("features_only", "out_indices", "feature_location", "feature_cls")
