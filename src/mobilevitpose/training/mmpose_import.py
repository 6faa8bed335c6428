"""MMPose top-down heatmap checkpoints as mobilevitpose checkpoints (`mvp-import`).

MMPose's zoo publishes COCO weights for the Table-2 baselines and Lite-HRNet. Their tensors map
onto this project's models by name, with no reshaping, as `SUPPORTED` lists:

- the backbone: MMPose's `backbone.*` names are the names of our Lite-HRNet as they are, and
  those of timm's ResNet and HRNet (`features_only`, under `backbone.body.`), which build the
  same layers in the same order;
- the head: MMPose's `HeatmapHead` (1.x, `head.*`) and `TopdownHeatmapSimpleHead` (0.x,
  `keypoint_head.*`) have the layers of our `DeconvHead`/`ConvHead` (k=4 s=2 p=1 deconvolutions
  without bias, BN, ReLU; a 1x1 conv to 17 heatmaps), named `deconv_layers`/`final_layer` where
  ours are `deconv`/`final`.

MMPose's HRNet builds the last module of its last stage with one output (the stride-4 branch,
all a top-down head reads); timm's builds all four. The fusion layers of the three outputs that
nothing reads are absent from MMPose's files, and are written here as zero convolutions.

The result is an ordinary checkpoint of the model config (`read_checkpoint` reads it;
`mvp-eval`, `mvp-predict` and `mvp-export` take it), with the codec, flip test and pixel
normalisation of the source model's MMPose config. It holds no optimizer or loop state: it is
a model to evaluate and deploy, not a run that `mvp-train ckpt_path=...` could resume.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from mobilevitpose.inference.checkpoint import CONFIG_KEY
from mobilevitpose.keypoints import NUM_KEYPOINTS
from mobilevitpose.models.build import build_pose_model
from mobilevitpose.training.config import compose, config_dir, instantiate
from mobilevitpose.training.module import PoseLitModule


@dataclass(frozen=True)
class Source:
    """An MMPose model that imports as the model config of the same name."""

    # MMPose 1.3.2's COCO config at 256x192 (in configs/body_2d_keypoint/topdown_heatmap/coco/).
    config: str
    # Tensors of ours that MMPose's files lack and that no output depends on (a regex on our
    # names), written as a neutral layer.
    unused: str | None = None


# timm's HRNet keeps every output of its last module; MMPose's keeps the first.
_HRNET_UNUSED = r"^backbone\.body\.stage4\.\d+\.fuse_layers\.[1-9]\d*\."

SUPPORTED: dict[str, Source] = {
    "litehrnet_18": Source("td-hm_litehrnet-18_8xb64-210e_coco-256x192.py"),
    "litehrnet_30": Source("td-hm_litehrnet-30_8xb64-210e_coco-256x192.py"),
    # MMPose ships no config: the authors' wider_naive_litehrnet_18_coco_256x192.py (0.x).
    "wider_naive_litehrnet_18": Source(
        "wider_naive_litehrnet_18_coco_256x192.py (Lite-HRNet repo)"
    ),
    "hrnet_w32": Source("td-hm_hrnet-w32_8xb64-210e_coco-256x192.py", _HRNET_UNUSED),
    "hrnet_w48": Source("td-hm_hrnet-w48_8xb32-210e_coco-256x192.py", _HRNET_UNUSED),
    "simplebaseline_r50": Source("td-hm_res50_8xb64-210e_coco-256x192.py"),
    "simplebaseline_r152": Source("td-hm_res152_8xb32-210e_coco-256x192.py"),
}

CODECS = ("msra", "udp", "dark")
DEFAULT_INPUT_SIZE = (192, 256)  # (w, h), as every config above
# MMPose's configs draw sigma-2 targets at 256x192 and sigma-3 ones at 384x288.
LARGE_INPUT_HEIGHT = 384
# The PoseDataPreprocessor of every supported config: mean [123.675, 116.28, 103.53] and std
# [58.395, 57.12, 57.375] on 0-255 RGB.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

LAYOUT_PREFIXES = {"0.x": "keypoint_head.", "1.x": "head."}
_HEATMAP_HEAD = re.compile(r"^(deconv_layers\.\d+|final_layer)\.")


# --- reading an MMPose file -----------------------------------------------------------------
def _numpy_globals() -> list[Any]:
    """What a numpy array or scalar in a checkpoint's `meta` (MMPose stores its dataset meta
    there: sigmas, colours) needs from torch's weights-only unpickler: numpy's array rebuilder
    and its dtype classes, which build data, never run code. The `numpy.core` names are those
    a file pickled under numpy 1.x refers to."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    codes = np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?SU"
    dtypes = sorted({type(np.dtype(code)) for code in codes}, key=str)
    allowed: list[Any] = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]
    if torch.__version__ >= "2.6":  # allowlisting under another name came with torch 2.6
        allowed += [(multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                    (multiarray.scalar, "numpy.core.multiarray.scalar")]  # fmt: skip
    return allowed


def _load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"MMPose checkpoint not found: {str(path)!r}")
    # torch < 2.5 has no scoped allowlist: numpy values in `meta` are then refused, by name.
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    allowed = safe_globals(_numpy_globals()) if safe_globals else contextlib.nullcontext()
    try:
        with allowed:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.findall(r"GLOBAL ([\w.]+)", str(err))
        if not refused:
            raise ValueError(f"{str(path)!r} is not a torch checkpoint file") from None
        raise ValueError(
            f"{str(path)!r} holds Python objects ({', '.join(sorted(set(refused)))}) besides "
            "tensors, plain values and numpy arrays; mvp-import reads files with "
            "torch.load(weights_only=True), which refuses them because unpickling them could "
            'run code. If you trust the file, keep its weights only: python -c "import torch; '
            "c = torch.load('SRC', weights_only=False); torch.save({'state_dict': "
            "c['state_dict']}, 'weights.pth')\""
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"cannot read {str(path)!r} (truncated, or not a torch file): {first}"
        ) from None


@dataclass(frozen=True)
class MMPoseWeights:
    """The tensors of an MMPose top-down checkpoint, named as in 1.x (`backbone.*`, `head.*`),
    and the layout the file had (`0.x`: the head under `keypoint_head.`)."""

    path: Path
    state: dict[str, Tensor]
    layout: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int | None:
        final = self.state.get("head.final_layer.weight")
        return None if final is None else int(final.shape[0])


def _examples(keys: Sequence[str], count: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - count} more)" if len(keys) > count else ""
    return ", ".join(keys[:count]) + more


def _describe_head(head_keys: Sequence[str]) -> str:
    parts = {part for key in head_keys for part in key.split(".")}
    if parts & {"loss", "loss_module", "flow", "flow_model"}:
        return "a regression head with a learnt loss (RLE: fc and flow layers)"
    if "fc" in parts:
        return "a fully connected head (DeepPose regression, or an image classifier)"
    if parts & {"final_layers", "offset", "offset_conv_layers", "heatmap_conv_layers", "iia",
                "gfd", "tag"}:  # fmt: skip
        return "a bottom-up head (associative embedding, DEKR or CID)"
    if parts & {"mlp", "cls_x", "cls_y", "gau"}:
        return "a SimCC head (RTMPose)"
    if "conv_layers" in parts:
        return "a heatmap head with extra conv layers, which mobilevitpose's heads have not"
    return "not a heatmap head"


def _state_dict(contents: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    meta: dict[str, Any] = {}
    if isinstance(contents, Mapping):
        if "hyper_parameters" in contents and "state_dict" in contents:
            raise ValueError(
                f"{str(path)!r} is already a mobilevitpose (Lightning) checkpoint: use it as it "
                "is with mvp-eval, mvp-predict and mvp-export"
            )
        if isinstance(contents.get("meta"), Mapping):
            meta = dict(contents["meta"])
        for wrapper in ("state_dict", "model"):
            if isinstance(contents.get(wrapper), Mapping):
                contents = contents[wrapper]
                break
    if (
        not isinstance(contents, Mapping)
        or not contents
        or not all(isinstance(v, Tensor) for v in contents.values())
    ):
        raise ValueError(
            f"{str(path)!r} holds no state dict (a mapping of tensor names, bare or under "
            "'state_dict' or 'model')"
        )
    # DataParallel and DistributedDataParallel prefix every name.
    return {str(k).removeprefix("module."): v for k, v in contents.items()}, meta


def read_mmpose_checkpoint(path: str | Path) -> MMPoseWeights:
    """The weights of an MMPose top-down heatmap model (0.x or 1.x layout, bare or under
    `state_dict`/`model`, `module.` prefixes allowed). ValueError naming what the file is
    instead: a classification checkpoint, a bottom-up, regression or SimCC model, a model with
    a neck, not a checkpoint."""
    path = Path(path).expanduser()
    state, meta = _state_dict(_load(path), path)
    keys = list(state)
    backbone = [k for k in keys if k.startswith("backbone.")]
    if not backbone:
        classifier = [
            k for k in keys if k.split(".")[0] in ("fc", "classifier", "head", "last_linear")
        ]
        if classifier:
            raise ValueError(
                f"{str(path)!r} is a classification checkpoint (e.g. ImageNet; keys "
                f"{_examples(classifier)}), not an MMPose top-down pose model: its backbone "
                "can start a training run (init=imagenet init.file=...), not mvp-import"
            )
        raise ValueError(
            f"{str(path)!r} has no backbone.* tensors, so it is no MMPose model (keys "
            f"{_examples(keys)})"
        )
    found = {layout: [k for k in keys if k.startswith(prefix)]
             for layout, prefix in LAYOUT_PREFIXES.items()}  # fmt: skip
    layouts = [layout for layout, head in found.items() if head]
    if len(layouts) != 1:
        what = "both keypoint_head.* (0.x) and head.* (1.x)" if layouts else "no head"
        raise ValueError(
            f"{str(path)!r} has {what} tensors: not an MMPose top-down model with one heatmap "
            "head (0.x keypoint_head.*, 1.x head.*)"
        )
    layout = layouts[0]
    prefix = LAYOUT_PREFIXES[layout]
    others = [k for k in keys if not k.startswith(("backbone.", prefix))]
    if others:
        raise ValueError(
            f"{str(path)!r} has tensors outside backbone and head ({_examples(others)}; e.g. a "
            "neck): none of the supported top-down models has such layers"
        )
    head = [k[len(prefix) :] for k in found[layout]]
    not_heatmap = [prefix + k for k in head if not _HEATMAP_HEAD.match(k)]
    if not_heatmap:
        raise ValueError(
            f"{str(path)!r} has {_describe_head(not_heatmap)}: {_examples(not_heatmap)}; "
            "mvp-import takes top-down heatmap models (MMPose's HeatmapHead, or "
            "TopdownHeatmapSimpleHead in 0.x)"
        )
    renamed = {("head." + k[len(prefix) :] if k.startswith(prefix) else k): v
               for k, v in state.items()}  # fmt: skip
    weights = MMPoseWeights(path, renamed, layout, meta)
    if weights.num_keypoints not in (None, NUM_KEYPOINTS):
        raise ValueError(
            f"{str(path)!r} predicts {weights.num_keypoints} keypoints: a model of another "
            f"keypoint set (MPII has 16, AIC 14, COCO-WholeBody 133); mobilevitpose's models "
            f"are COCO's {NUM_KEYPOINTS}"
        )
    return weights


# --- mapping onto a model config -------------------------------------------------------------
def _ours(key: str, backbone_prefix: str) -> str:
    if key.startswith("backbone."):
        return backbone_prefix + key[len("backbone.") :]
    return key.replace("head.deconv_layers.", "head.deconv.", 1).replace(
        "head.final_layer.", "head.final.", 1
    )


def _theirs(key: str, backbone_prefix: str) -> str:
    if key.startswith(backbone_prefix):
        return "backbone." + key[len(backbone_prefix) :]
    return key.replace("head.deconv.", "head.deconv_layers.", 1).replace(
        "head.final.", "head.final_layer.", 1
    )


def _check_supported(name: str) -> None:
    if name not in SUPPORTED:
        raise ValueError(
            f"--model {name!r} cannot be imported from MMPose; supported: {', '.join(SUPPORTED)}"
        )


Shapes = Mapping[str, tuple[int, ...]]


def _shapes(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@functools.cache
def _layout(name: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a supported model, by our names. The model config file alone
    decides them (no override changes a name or shape), and the model is built on the meta
    device: names and shapes only, without memory or initialisation."""
    _check_supported(name)
    config = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / f"{name}.yaml"))
    with torch.device("meta"):
        model = build_pose_model(cast("dict[str, Any]", config))
    return _shapes(model.state_dict())


def _backbone_prefix(names: Iterable[str]) -> str:
    # timm backbones (TimmBackbone) hold the network under `body`; Lite-HRNet is ours.
    return "backbone.body." if any(k.startswith("backbone.body.") for k in names) else "backbone."


@dataclass(frozen=True)
class _Fit:
    missing: list[str]  # MMPose names
    unexpected: list[str]
    reshaped: list[str]
    filled: list[str]  # our names, absent from the file and neutral

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.reshaped)


def _fit(weights: MMPoseWeights, name: str, shapes: Shapes | None = None) -> _Fit:
    """How `weights` fit model `name` (its tensor `shapes` if known, else from its config)."""
    shapes = _layout(name) if shapes is None else shapes
    prefix = _backbone_prefix(shapes)
    unused = SUPPORTED[name].unused
    mapped = {_ours(k, prefix): v for k, v in weights.state.items()}
    absent = [k for k in shapes if k not in mapped]
    # Checkpoints of torch < 0.4.1 have no BN step counters; eval and fine-tuning ignore them.
    filled = [
        k
        for k in absent
        if k.endswith(".num_batches_tracked") or (unused is not None and re.match(unused, k))
    ]
    return _Fit(
        missing=[_theirs(k, prefix) for k in absent if k not in filled],
        unexpected=[_theirs(k, prefix) for k in mapped if k not in shapes],
        reshaped=[
            f"{_theirs(k, prefix)} {list(v.shape)} (ours {list(shapes[k])})"
            for k, v in mapped.items()
            if k in shapes and tuple(v.shape) != shapes[k]
        ],
        filled=filled,
    )


def fitting_models(weights: MMPoseWeights) -> list[str]:
    """The supported models whose tensor names and shapes the weights have."""
    return [name for name in SUPPORTED if _fit(weights, name).exact]


def _mismatch(fit: _Fit) -> str:
    return (
        f"{len(fit.missing)} missing [{_examples(fit.missing)}], {len(fit.unexpected)} "
        f"unexpected [{_examples(fit.unexpected)}], {len(fit.reshaped)} of another shape "
        f"[{_examples(fit.reshaped, 2)}]"
    )


def detect_model(weights: MMPoseWeights) -> str:
    """The supported model whose tensor names and shapes the weights have; ValueError naming
    the closest one and what differs when there is none."""
    fits = {name: _fit(weights, name) for name in SUPPORTED}
    exact = [name for name, fit in fits.items() if fit.exact]
    if exact:
        return exact[0]

    def distance(name: str) -> int:
        fit = fits[name]
        return len(fit.missing) + len(fit.unexpected) + len(fit.reshaped)

    closest = min(fits, key=distance)
    raise ValueError(
        f"{str(weights.path)!r} fits none of the models mvp-import supports "
        f"({', '.join(SUPPORTED)}); the closest, {closest}, has {_mismatch(fits[closest])}"
    )


def _check_fits(weights: MMPoseWeights, name: str, shapes: Shapes) -> _Fit:
    fit = _fit(weights, name, shapes)
    if fit.exact:
        return fit
    others = [other for other in fitting_models(weights) if other != name]
    hint = (
        f"it is a {others[0]} checkpoint: use --model {others[0]}"
        if others
        else f"it fits none of the supported models ({', '.join(SUPPORTED)})"
    )
    raise ValueError(
        f"{str(weights.path)!r} does not fit --model {name} (MMPose {SUPPORTED[name].config}): "
        f"{_mismatch(fit)}; {hint}"
    )


def _neutral(key: str, like: Tensor) -> Tensor:
    """An identity BatchNorm (scale and variance 1) or a zero tensor."""
    if like.ndim == 1 and key.endswith((".weight", ".running_var")):
        return torch.ones_like(like)
    return torch.zeros_like(like)


def pose_state_dict(
    weights: MMPoseWeights, name: str, own: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The state dict of model config `name` (whose own state dict is `own`: dtypes and the
    tensors the file lacks) from MMPose weights; ValueError naming the model they fit when
    they do not fit `name`."""
    _check_supported(name)
    fit = _check_fits(weights, name, _shapes(own))
    prefix = _backbone_prefix(own)
    state = {_ours(k, prefix): v for k, v in weights.state.items()}
    state.update({k: _neutral(k, own[k]) for k in fit.filled})
    # fp16 zoo files load into the fp32 model; counters stay integers.
    return {k: state[k].to(dtype=v.dtype).contiguous() for k, v in own.items()}


# --- writing the mobilevitpose checkpoint ---------------------------------------------------
@dataclass(frozen=True)
class ImportSettings:
    """What the MMPose config, not the checkpoint, says about the model: input size (w, h),
    codec, heatmap sigma (training targets only) and flip test."""

    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    codec: str = "msra"
    sigma: float | None = None  # None: MMPose's choice for the input size
    flip_test: bool = True

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}; got {self.codec!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 32:
            raise ValueError(f"input size must be (width, height) >= 32; got {self.input_size}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0; got {self.sigma}")

    @property
    def heatmap_sigma(self) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        return 3.0 if self.input_size[1] >= LARGE_INPUT_HEIGHT else 2.0

    def overrides(self) -> list[str]:
        """The train config's overrides that give these settings."""
        width, height = self.input_size
        return [
            f"codec={self.codec}",
            "init=plain",
            "data=coco",
            f"model.input_size=[{width},{height}]",
            f"++model.mean=[{','.join(map(str, MEAN))}]",
            f"++model.std=[{','.join(map(str, STD))}]",
            f"codec.sigma={self.heatmap_sigma}",
            f"evaluation.flip_test={str(self.flip_test).lower()}",
        ]


@dataclass(frozen=True)
class ImportReport:
    path: Path
    model: str
    layout: str
    tensors: int
    filled: int
    settings: ImportSettings

    def summary(self) -> str:
        width, height = self.settings.input_size
        flip = "on" if self.settings.flip_test else "off"
        filled = f", {self.filled} absent ones filled" if self.filled else ""
        return (
            f"wrote {self.path}: {self.model} from MMPose {self.layout} weights ({self.tensors} "
            f"tensors{filled}), input {width}x{height} (w x h), codec {self.settings.codec} "
            f"sigma {self.settings.heatmap_sigma:g}, flip test {flip}"
        )


# The run facts an imported checkpoint carries (CONFIG_KEY): what mvp-eval, mvp-export's
# calibration and a later run read, without what belongs to one machine or run directory.
_RUN_FACTS = ("task_name", "experiment_name", "seed", "augment", "data")


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_mmpose(
    source: str | Path,
    out: str | Path,
    model: str | None = None,
    settings: ImportSettings | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> ImportReport:
    """Write the MMPose checkpoint `source` as a mobilevitpose checkpoint `out` of model config
    `model` (default: the supported model whose layout the file has), with `settings`."""
    settings = settings or ImportSettings()
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass --overwrite to replace it")
    weights = read_mmpose_checkpoint(source)
    model = model or detect_model(weights)
    _check_supported(model)
    _check_fits(weights, model, _layout(model))  # before building the model: fail fast
    cfg = compose("train", [f"model={model}", *settings.overrides()])
    module: PoseLitModule = instantiate(cfg.module)
    own = module.model.state_dict()
    state = pose_state_dict(weights, model, own)
    module.model.load_state_dict(state, strict=True)
    checkpoint: dict[str, Any] = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    module.on_save_checkpoint(checkpoint)  # as Lightning does: init, mean/std, format
    facts = {key: _plain(cfg[key]) for key in _RUN_FACTS}
    filled = len(state) - len(weights.state)
    version = weights.meta.get("mmpose_version")
    facts["mmpose_import"] = {
        "source": str(weights.path.resolve()),
        "sha256": _sha256(weights.path),
        "layout": weights.layout,
        # Plain values only: the checkpoint must load with weights_only=True.
        "mmpose_version": None if version is None else str(version),
        "mmpose_config": SUPPORTED[model].config,
        "filled_tensors": filled,
    }
    checkpoint[CONFIG_KEY] = facts
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    torch.save(checkpoint, partial)
    os.replace(partial, out)  # a reader never sees half a file
    report = ImportReport(out, model, weights.layout, len(weights.state), filled, settings)
    if log is not None:
        log(report.summary())
    return report
