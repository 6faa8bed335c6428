"""Lite-HRNet (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network", CVPR 2021) as a
pose backbone: a ShuffleNet-like stem, three stages of parallel branches at strides 4-32 that
exchange information after every module, and an aggregation head that folds the branches back
into one stride-4 feature map for a heatmap head.

Two kinds of blocks: the paper's conditional channel weighting ("lite": the 1x1 convolutions
of a shuffle block replaced by weights computed across all branches and over each branch) and
the plain shuffle block ("naive", the paper's baseline).

timm has no Lite-HRNet, and MMPose is never a dependency: this is the project's own code. Its
parameter names are those of MMPose's published Lite-HRNet checkpoints (their `backbone.*`
keys, prefix stripped), so that those weights load as they are; and its outputs are theirs,
including the fusion quirk described in `HRModule`, which the published weights were trained
with (checked against MMPose 1.3.2's forward pass in tests/unit/models/test_litehrnet.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn import functional as F

from mobilevitpose.models.init import normal_init_

# The pixel normalisation of MMPose's Lite-HRNet configs (its 0-255 values / 255).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BLOCK_TYPES = ("lite", "naive")


@dataclass(frozen=True)
class StageSpec:
    """One stage: `modules` high-resolution modules over one branch per entry of `channels`
    (strides 4, 8, 16, ...), each module `blocks` blocks deep, then a fusion of the branches.
    `reduce_ratio` is the squeeze of the cross-resolution weighting ("lite" blocks only)."""

    modules: int
    blocks: int
    channels: tuple[int, ...]
    block: str = "lite"
    reduce_ratio: int = 8

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"Lite-HRNet block must be one of {BLOCK_TYPES}; got {self.block!r}")
        if len(self.channels) < 2:
            raise ValueError(f"a Lite-HRNet stage needs two branches or more; got {self.channels}")
        if any(c % 2 for c in self.channels):
            raise ValueError(f"Lite-HRNet branch widths must be even (blocks split them in "
                             f"halves); got {self.channels}")  # fmt: skip


@dataclass(frozen=True)
class LiteHRNetSpec:
    stages: tuple[StageSpec, ...]
    stem_channels: int = 32
    stem_out_channels: int = 32
    expand_ratio: float = 1.0

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LiteHRNetSpec:
        """From plain values, as a config file writes them (`stages` a list of mappings)."""
        stages = tuple(
            StageSpec(**{**stage, "channels": tuple(stage["channels"])}) for stage in spec["stages"]
        )
        return cls(**{**spec, "stages": stages})


def _three_stages(modules: tuple[int, int, int], block: str) -> tuple[StageSpec, ...]:
    widths = (40, 80, 160, 320)
    return tuple(
        StageSpec(modules=m, blocks=2, channels=widths[: i + 2], block=block, reduce_ratio=8)
        for i, m in enumerate(modules)
    )


VARIANTS: dict[str, LiteHRNetSpec] = {
    # MMPose 1.3.2 td-hm_litehrnet-18_8xb64-210e_coco-256x192.py (and its 384x288)
    "litehrnet_18": LiteHRNetSpec(_three_stages((2, 4, 2), "lite")),
    # MMPose 1.3.2 td-hm_litehrnet-30_8xb64-210e_coco-256x192.py (and its 384x288)
    "litehrnet_30": LiteHRNetSpec(_three_stages((3, 8, 3), "lite")),
    # The paper's Wider Naive Lite-HRNet-18 (HRNet/Lite-HRNet
    # configs/top_down/naive_litehrnet/coco/wider_naive_litehrnet_18_coco_256x192.py):
    # Lite-HRNet-18's widths with plain shuffle blocks. MMPose ships no config for it.
    "wider_naive_litehrnet_18": LiteHRNetSpec(_three_stages((2, 4, 2), "naive")),
}


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of `groups` equal groups (ShuffleNet).

    Reshaped to constant sizes but the batch's (-1): ONNX Runtime's shape inference, which its
    INT8 quantiser runs, and ExecuTorch's XNNPACK delegate both refuse a reshape to sizes
    computed in the graph."""
    channels, height, width = (int(v) for v in x.shape[1:])
    grouped = x.reshape(-1, groups, channels // groups, height, width)
    return grouped.transpose(1, 2).reshape(-1, channels, height, width)


# Channel splits are slices, not `split`/`chunk`: ExecuTorch's edge lowering (1.5) fixes the
# exported batch size at a split, and a batch-dynamic program then runs at its example batch only.
def split_channels(x: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """`x.split(sizes, dim=1)`."""
    bounds = [0, *itertools.accumulate(sizes)]
    return [x[:, start:stop] for start, stop in itertools.pairwise(bounds)]


def halves(x: Tensor) -> tuple[Tensor, Tensor]:
    """`x.chunk(2, dim=1)` of an even channel count."""
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


class ConvBN(nn.Module):
    """Convolution, batch norm (or a conv bias where `norm` is False), optional activation.

    The attribute names `conv` and `bn` are those of the reference checkpoints.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=kernel_size // 2, groups=groups, bias=not norm)  # fmt: skip
        self.bn: nn.Module = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.act: nn.Module = act() if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def _separable(in_channels: int, out_channels: int, stride: int, relu: bool) -> nn.Sequential:
    """Depthwise 3x3 + BN, pointwise 1x1 + BN (+ ReLU): the transitions' and the fusion's
    resampling unit. A bare Sequential, as the reference checkpoints index it (`.0` ... `.3`)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Stem(nn.Module):
    """Stride-2 3x3 conv, then a stride-2 shuffle block with a depthwise-only branch: stride 4."""

    def __init__(
        self, in_channels: int, stem_channels: int, out_channels: int, expand_ratio: float
    ) -> None:
        super().__init__()
        half = stem_channels // 2
        mid = round(stem_channels * expand_ratio)
        # The second branch keeps the split's width when the stem does not widen; otherwise it
        # gives back the full stem width and the first branch makes up the rest.
        second_out = half if stem_channels == out_channels else stem_channels
        self.conv1 = ConvBN(in_channels, stem_channels, 3, stride=2)
        self.branch1 = nn.Sequential(
            ConvBN(half, half, 3, stride=2, groups=half, act=None),
            ConvBN(half, out_channels - second_out),
        )
        self.expand_conv = ConvBN(half, mid)
        self.depthwise_conv = ConvBN(mid, mid, 3, stride=2, groups=mid, act=None)
        self.linear_conv = ConvBN(mid, second_out)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = halves(self.conv1(x))
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat([self.branch1(x1), x2], dim=1), 2)


class SpatialWeighting(nn.Module):
    """The paper's per-branch weights H_s: squeeze-and-excitation over one branch's pixels."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        self.conv1 = ConvBN(channels, channels // ratio, norm=False)
        self.conv2 = ConvBN(channels // ratio, channels, act=nn.Sigmoid, norm=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class CrossResolutionWeighting(nn.Module):
    """The paper's cross-resolution weights H: every branch pooled to the coarsest one's size,
    one squeeze-excitation over all their channels, each branch scaled by its share."""

    def __init__(self, channels: Sequence[int], ratio: int) -> None:
        super().__init__()
        self.channels = list(channels)
        total = sum(channels)
        self.conv1 = ConvBN(total, total // ratio)
        self.conv2 = ConvBN(total // ratio, total, act=nn.Sigmoid)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        size = (int(xs[-1].shape[-2]), int(xs[-1].shape[-1]))
        pooled = [_pool_to(x, size) for x in xs[:-1]] + [xs[-1]]
        weights = split_channels(self.conv2(self.conv1(torch.cat(pooled, dim=1))), self.channels)
        return [x * F.interpolate(w, size=x.shape[-2:], mode="nearest")
                for x, w in zip(xs, weights, strict=True)]  # fmt: skip


def _pool_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Adaptive average pooling to `size`, as a plain average pool where the sides are whole
    multiples of it (always, at input sides that are multiples of 32): the same windows, and
    what a traced ONNX export takes (it refuses adaptive pooling of a batch-dynamic input).
    The sizes are Python ints, constants in a trace, as the crop size of an export is."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height % size[0] or width % size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.avg_pool2d(x, (height // size[0], width // size[1]))


class ConditionalChannelWeighting(nn.Module):
    """The "lite" block, on all branches at once: half of each branch's channels pass through;
    the other half is weighted across resolutions, depthwise-convolved and weighted spatially,
    where a shuffle block would spend two 1x1 convolutions."""

    def __init__(self, channels: Sequence[int], reduce_ratio: int) -> None:
        super().__init__()
        half_widths = [c // 2 for c in channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(half_widths, reduce_ratio)
        self.depthwise_convs = nn.ModuleList(
            ConvBN(c, c, 3, groups=c, act=None) for c in half_widths
        )
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c) for c in half_widths)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        kept, changed = zip(*(halves(x) for x in xs), strict=True)
        weighted = self.cross_resolution_weighting(list(changed))
        out = []
        for keep, x, depthwise, spatial in zip(
            kept, weighted, self.depthwise_convs, self.spatial_weighting, strict=True
        ):
            out.append(channel_shuffle(torch.cat([keep, spatial(depthwise(x))], dim=1), 2))
        return out


class ShuffleBlock(nn.Module):
    """The "naive" block: a stride-1 ShuffleNet V2 unit on one branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch2 = nn.Sequential(
            ConvBN(half, half),
            ConvBN(half, half, 3, groups=half, act=None),
            ConvBN(half, half),
        )

    def forward(self, x: Tensor) -> Tensor:
        keep, changed = halves(x)
        return channel_shuffle(torch.cat([keep, self.branch2(changed)], dim=1), 2)


class HRModule(nn.Module):
    """`blocks` blocks on every branch, then each branch receives every other one: finer
    branches strided down (separable convs), coarser ones projected (1x1) and upsampled.

    The sums are the reference implementation's, which its published weights learnt with: it
    accumulates in place into branch 0's tensor, so output 0 counts branch 0 twice, and every
    other output reads branch 0 *after* that accumulation (before the ReLU), through its
    resampling path twice. Written out here without the aliasing; the path still runs twice,
    as there, since in training each run updates its BN running statistics (and the MACs are
    the reference counter's).
    """

    def __init__(self, channels: Sequence[int], blocks: int, block: str, reduce_ratio: int):
        super().__init__()
        self.naive = block == "naive"
        self.layers: nn.ModuleList | nn.Sequential
        if self.naive:
            self.layers = nn.ModuleList(
                nn.Sequential(*(ShuffleBlock(c) for _ in range(blocks))) for c in channels
            )
        else:
            self.layers = nn.Sequential(
                *(ConditionalChannelWeighting(channels, reduce_ratio) for _ in range(blocks))
            )
        n = len(channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_path(channels, source, target) for source in range(n))
            for target in range(n)
        )
        self.relu = nn.ReLU()
        # In eval both runs of branch 0's path give the same tensor (in training each run also
        # updates BatchNorm's running statistics, as the reference's do). A mobile lowering sets
        # this to run it once: XNNPACK's quantiser annotates a weight at its first use only, so
        # the second run stayed float and its program did not load.
        self.first_path_once = False

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        if self.naive:
            xs = [branch(x) for branch, x in zip(self.layers, xs, strict=True)]
        else:
            xs = self.layers(xs)
        paths: Any = self.fuse_layers  # nested ModuleLists: indexing gives Modules

        def received(target: int, source: int, x: Tensor) -> Tensor:
            y = paths[target][source](x)
            if source > target:
                y = F.interpolate(y, size=xs[target].shape[-2:], mode="nearest")
            return y

        others = range(1, len(xs))
        first = 2 * xs[0] + _sum(received(0, j, xs[j]) for j in others)
        out = [self.relu(first)]
        for i in others:
            if self.first_path_once and not self.training:
                from_first = received(i, 0, first)
                total = from_first + from_first + xs[i]
            else:
                total = received(i, 0, first) + received(i, 0, first) + xs[i]
            total = total + _sum(received(i, j, xs[j]) for j in others if j != i)
            out.append(self.relu(total))
        return out


def _sum(tensors: Any) -> Any:
    total: Any = 0
    for t in tensors:
        total = total + t
    return total


def _fuse_path(channels: Sequence[int], source: int, target: int) -> nn.Module:
    if source == target:
        return nn.Identity()
    if source > target:  # coarser: 1x1 projection + BN; upsampled in HRModule.forward
        return nn.Sequential(
            nn.Conv2d(channels[source], channels[target], 1, bias=False),
            nn.BatchNorm2d(channels[target]),
        )
    # Finer: one stride-2 separable conv per halving, widening only at the last one, with a
    # ReLU between them but none after the last (the sum gets one).
    steps = [
        _separable(channels[source], channels[source], stride=2, relu=True)
        for _ in range(target - source - 1)
    ]
    steps.append(_separable(channels[source], channels[target], stride=2, relu=False))
    return nn.Sequential(*steps)


def _transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
    """Into a stage: existing branches re-projected where their width changes, each new branch
    strided down from the coarsest existing one."""
    paths: list[nn.Module] = []
    for i, width in enumerate(current):
        if i < len(previous):
            same = width == previous[i]
            paths.append(nn.Identity() if same else _separable(previous[i], width, 1, relu=True))
            continue
        coarsest = previous[-1]
        steps = [
            _separable(coarsest, coarsest, stride=2, relu=True) for _ in range(i - len(previous))
        ]
        steps.append(_separable(coarsest, width, stride=2, relu=True))
        paths.append(nn.Sequential(*steps))
    return nn.ModuleList(paths)


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvBN(in_channels, in_channels, 3, groups=in_channels, act=None)
        self.pointwise_conv = ConvBN(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class AggregationHead(nn.Module):
    """From the coarsest branch up: each branch plus the (bilinearly upsampled) result so far,
    through a separable conv to the next finer width; the last output is at stride 4."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        coarse_first = list(channels)[::-1]
        outs = [*coarse_first[1:], coarse_first[-1]]
        self.projects = nn.ModuleList(
            DepthwiseSeparable(c_in, c_out) for c_in, c_out in zip(coarse_first, outs, strict=True)
        )

    def forward(self, xs: list[Tensor]) -> Tensor:
        y: Tensor | None = None
        for x, project in zip(xs[::-1], self.projects, strict=True):
            if y is not None:
                x = x + F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
            y = project(x)
        assert y is not None
        return y


class LiteHRNet(nn.Module):
    """Lite-HRNet backbone: normalised RGB (B, 3, h, w) -> (B, out_channels, h / 4, w / 4).

    Built from a variant of `VARIANTS` by name, or from an explicit `spec` (a LiteHRNetSpec or
    its dict form; `name` then only labels it). There are no ImageNet weights for Lite-HRNet in
    any model hub: `pretrained` needs `pretrained_file`, a state dict in the reference layout
    (safetensors or torch; `state_dict`/`model` wrappers and `module.` prefixes are fine; of
    a whole pose checkpoint, its `backbone.*` tensors are taken). It is loaded strictly.
    Input sides must be multiples of 32 (`input_multiple`), as the reference's.
    """

    def __init__(
        self,
        name: str = "litehrnet_18",
        spec: LiteHRNetSpec | Mapping[str, Any] | None = None,
        in_channels: int = 3,
        pretrained: bool = False,
        pretrained_file: str | None = None,
    ) -> None:
        super().__init__()
        if spec is None:
            if name not in VARIANTS:
                raise ValueError(
                    f"unknown Lite-HRNet variant {name!r} (model.backbone.name); known: "
                    f"{', '.join(VARIANTS)}, or give model.backbone.spec"
                )
            spec = VARIANTS[name]
        elif not isinstance(spec, LiteHRNetSpec):
            spec = LiteHRNetSpec.from_dict(spec)
        self.name = name
        self.spec = spec
        self.stem = Stem(in_channels, spec.stem_channels, spec.stem_out_channels,
                         spec.expand_ratio)  # fmt: skip
        widths: Sequence[int] = [spec.stem_out_channels]
        # Registered in this order (transition0, stage0, transition1, ...) as in the reference.
        for i, stage in enumerate(spec.stages):
            self.add_module(f"transition{i}", _transition(widths, stage.channels))
            modules = (HRModule(stage.channels, stage.blocks, stage.block, stage.reduce_ratio)
                       for _ in range(stage.modules))  # fmt: skip
            self.add_module(f"stage{i}", nn.Sequential(*modules))
            widths = stage.channels
        self.head_layer = AggregationHead(widths)
        self.out_channels: int = widths[0]
        self.reduction: int = 4
        # The coarsest branch's stride: other input sides would round its feature maps (and the
        # reference refuses them: its fusion upsamples by fixed factors).
        self.input_multiple: int = 4 * 2 ** (len(widths) - 1)
        self.mean: tuple[float, ...] | None = IMAGENET_MEAN
        self.std: tuple[float, ...] | None = IMAGENET_STD
        self.reset_parameters()
        if pretrained:
            if pretrained_file is None:
                raise ValueError(
                    f"no ImageNet weights exist for backbone {name!r} (Lite-HRNet) in any model "
                    "hub: train from scratch with `init=plain`, or give a Lite-HRNet state dict "
                    f"with `init=imagenet init.file=/path/to/{name}.safetensors`"
                )
            self.load_weights(pretrained_file)

    def reset_parameters(self) -> None:
        """MMPose's default initialisation of Lite-HRNet, as its `init_weights` leaves it."""
        normal_init_(self)
        # MMPose's Normal(0.001) is followed by each direct child module's own init, which in
        # the stem reaches its four top-level conv units (not those inside a Sequential) and
        # re-initialises them the way mmcv's ConvModule does: Kaiming normal, fan-out.
        stem = self.stem
        for unit in (stem.conv1, stem.expand_conv, stem.depthwise_conv, stem.linear_conv):
            nn.init.kaiming_normal_(unit.conv.weight, mode="fan_out", nonlinearity="relu")

    def load_weights(self, file: str) -> None:
        """Load a Lite-HRNet state dict (see the class doc) strictly, or say what does not fit."""
        path = Path(file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"Lite-HRNet weights for backbone {self.name!r} not found at {str(path)!r} "
                "(init.file). Give an existing safetensors or torch file, or train from "
                "scratch with `init=plain`."
            )
        state = _backbone_state_dict(path)
        own = self.state_dict()
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or unexpected:
            raise ValueError(
                f"weights in {str(path)!r} do not fit backbone {self.name!r} (another "
                f"architecture or variant?): {len(missing)} missing keys {missing[:8]}, "
                f"{len(unexpected)} unexpected keys {unexpected[:8]}"
            )
        resized = [f"{k} {list(state[k].shape)} (ours {list(v.shape)})"
                   for k, v in own.items() if state[k].shape != v.shape]  # fmt: skip
        if resized:
            raise ValueError(
                f"weights in {str(path)!r} do not fit backbone {self.name!r} (other widths?): "
                f"{len(resized)} tensors of other shapes: {resized[:4]}"
            )
        self.load_state_dict(state, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.stem(x)]
        for i in range(len(self.spec.stages)):
            transition: nn.ModuleList = getattr(self, f"transition{i}")
            inputs = [
                path(branches[min(j, len(branches) - 1)]) for j, path in enumerate(transition)
            ]
            branches = getattr(self, f"stage{i}")(inputs)
        return self.head_layer(branches)


def _backbone_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        if path.suffix == ".safetensors":
            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot read weights from {str(path)!r}: {err} (torch files are read with "
            "weights_only=True, tensors only: save the state dict as safetensors)"
        ) from err
    if isinstance(state, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
                break
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(path)!r} holds no state dict (a mapping of tensor names)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # A whole pose checkpoint: its backbone, as timm leaves a classifier out of an ImageNet init.
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items()
                 if k.startswith("backbone.")}  # fmt: skip
    return dict(state)
