"""Lite-HRNet: our code against MMPose 1.3.2's, without MMPose installed.

What MMPose gave was measured once, in a separate virtual environment
(`bash /work/shared/tools/mmpose/install_mmpose.sh VENV`, then `import mm_stubs;
mm_stubs.install_all()` before `mmpose.models`), by building its COCO configs'
`TopdownPoseEstimator` (`MODELS.build(Config.fromfile(CONFIG).model)`; CONFIG is
`.mim/configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_litehrnet-{18,30}_8xb64-210e_coco-256x192.py`
in the mmpose package; the wider naive variant is the Lite-HRNet-18 config with
`module_type=('NAIVE',) * 3`, as the authors' wider_naive_litehrnet_18_coco_256x192.py):
its parameter counts, the layout of its state dict, and the reference file below.
"""

import functools
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from conftest import needs_executorch
from mobilevitpose.codec import HeatmapCodec
from mobilevitpose.models.heads import ConvHead
from mobilevitpose.models.litehrnet import (
    VARIANTS,
    ConditionalChannelWeighting,
    LiteHRNet,
    LiteHRNetSpec,
    ShuffleBlock,
    StageSpec,
    Stem,
)
from mobilevitpose.models.pose_model import PoseModel
from mobilevitpose.training.config import build_model

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "litehrnet_mmpose_reference.safetensors"

# The network of the reference file: Lite-HRNet-18's stem and depths at 2-2-2 modules, widths
# 16-32-64-128 (the full Lite-HRNet-18 in fp16 is 2.3 MB; this is 0.6 MB), and every block type:
# a "lite" stage, a "naive" one, then "lite" again over four branches.
REFERENCE_SPEC = LiteHRNetSpec(
    stages=(
        StageSpec(modules=2, blocks=2, channels=(16, 32), block="lite"),
        StageSpec(modules=2, blocks=2, channels=(16, 32, 64), block="naive"),
        StageSpec(modules=2, blocks=2, channels=(16, 32, 64, 128), block="lite"),
    )
)

# MMPose's names -> ours. The backbone's are the same (`backbone.` prefix on both sides, as
# PoseModel and MMPose's TopdownPoseEstimator both call it `backbone`); only the heatmap head's
# 1x1 conv differs: MMPose's HeatmapHead(deconv_out_channels=None) `head.final_layer`, our
# ConvHead `head.final`.
HEAD_KEYS = {"head.final_layer.weight": "head.final.weight",
             "head.final_layer.bias": "head.final.bias"}  # fmt: skip


def _ours(key: str) -> str:
    return HEAD_KEYS.get(key, key)


def _layout_digest(model: PoseModel) -> str:
    """sha256 of the sorted 'name [shape]' lines of a pose model's state dict, in MMPose's names."""
    theirs = {v: k for k, v in HEAD_KEYS.items()}
    lines = sorted(f"{theirs.get(k, k)} {list(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# Parameters (backbone + head) and state-dict layout digests of MMPose's models, measured as the
# module docstring says: `sum(p.numel() for p in model.parameters())` and `_layout_digest` over
# `model.state_dict()` (its names are MMPose's own there).
MMPOSE = {
    "litehrnet_18": (1_130_769, "8ce1d7946a17b1c2b861fbe59801f63a98ba252e9495d374bd31b295c828bea3"),
    "litehrnet_30": (1_763_717, "464eb0eb4ed46dd1438e3caffdcb43fb0504f916f671e2126d41034319a7a148"),
    "wider_naive_litehrnet_18":
        (1_318_625, "1f0faa6a812bb8e99dd68f71caa898985bcde24e7bf65435a97c12289287aa4b"),
}  # fmt: skip


def _pose_model(spec: LiteHRNetSpec, input_size=(64, 96), **backbone_kwargs) -> PoseModel:
    backbone = LiteHRNet("reference", spec, **backbone_kwargs)
    return PoseModel(backbone, functools.partial(ConvHead), input_size)


@pytest.mark.parametrize("name", sorted(MMPOSE))
def test_parameters_and_state_dict_layout_match_mmpose(name):
    params, digest = MMPOSE[name]
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    # Every tensor name and shape as in MMPose's checkpoints, so theirs load after a prefix strip.
    assert _layout_digest(model) == digest


def test_heatmaps_equal_mmposes_forward_of_the_same_weights():
    """The reference file (tests/data/litehrnet_mmpose_reference.safetensors, 0.6 MB): MMPose's
    LiteHRNet + HeatmapHead built with REFERENCE_SPEC, every weight and BN statistic drawn at
    random (conv weights N(0, 0.5 / fan_in), BN scale U(0.5, 1.5), shift and mean N(0, 0.1),
    variance U(0.5, 1.5); all rounded to fp16, stored so), a 1x3x96x64 input (fp16-exact) and
    what its `_forward` gave in eval mode (fp32). 96x64, not 64x48: MMPose needs sides that are
    multiples of 32 (at 64x48 its fusion upsamples the stride-32 branch to the wrong width)."""
    reference = load_file(str(REFERENCE))
    inputs, expected = reference.pop("input").float(), reference.pop("heatmaps")
    state = {_ours(k): v.float() if v.is_floating_point() else v for k, v in reference.items()}
    model = _pose_model(REFERENCE_SPEC).eval()
    model.load_state_dict(state, strict=True)  # every tensor of the file, and nothing else
    with torch.no_grad():
        heatmaps = model(inputs)
    assert expected.shape == heatmaps.shape == (1, 17, 24, 16)
    assert expected.std() > 0.5  # heatmaps of that size: the comparison is not of near-zeros
    assert (heatmaps - expected).abs().max().item() < 1e-4  # measured: 1.2e-6


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_configs_give_stride_4_heatmaps_at_256x192(name):
    model = build_model(name).eval()
    assert model.input_size == (192, 256) and model.heatmap_size == (48, 64)
    backbone = model.backbone
    assert (backbone.out_channels, backbone.reduction, backbone.input_multiple) == (40, 4, 32)
    assert model.mean == pytest.approx((0.485, 0.456, 0.406))
    assert model.std == pytest.approx((0.229, 0.224, 0.225))
    with torch.no_grad():
        heatmaps = model(torch.randn(2, 3, 256, 192))
    assert heatmaps.shape == (2, 17, 64, 48)


def test_384x288_is_an_input_size_override():
    model = build_model("litehrnet_18", ["model.input_size=[288,384]"]).eval()
    assert model.heatmap_size == (72, 96)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 384, 288)).shape == (1, 17, 96, 72)


def test_exports_to_onnx_with_the_same_heatmaps_and_to_onnx_int8(tmp_path):
    """The traced ONNX export (mvp-export) takes every op, the cross-resolution pooling of a
    batch-dynamic graph included. One module per stage, each block type; weights drawn large
    enough that the heatmaps are not all but zero, as a fresh model's are."""
    from mobilevitpose.inference.onnx import export_onnx, export_onnx_int8

    spec = LiteHRNetSpec(tuple(StageSpec(1, 1, s.channels, s.block) for s in REFERENCE_SPEC.stages))
    model = _pose_model(spec, input_size=(64, 64))
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=(0.5 / m.weight[0].numel()) ** 0.5)
    report = export_onnx(model, tmp_path / "lhr.onnx")  # refuses a graph that disagrees
    assert report.check["max_abs_heatmap"] > 0.1
    assert max(report.check["max_abs_diff"].values()) < 1e-4
    # The INT8 quantiser's shape inference takes the graph too (the channel shuffle's reshapes).
    crops = np.random.default_rng(0).integers(0, 256, (4, 3, 64, 64), np.uint8)
    codec = HeatmapCodec(kind="msra", input_size=(64, 64), heatmap_size=(16, 16))
    path = tmp_path / "lhr.int8.onnx"
    export_onnx_int8(model, path, crops, codec, check_keypoints_px=math.inf)
    assert path.is_file()


@needs_executorch
def test_the_batch_stays_dynamic_through_executorchs_edge_lowering():
    """mvp-export's ExecuTorch programs take batches of 1 to 8. A channel `split`/`chunk` would
    fix the exported batch at the example's (2) when ExecuTorch lowers the graph, and the
    program would then refuse a batch of one."""
    from executorch.exir import to_edge

    class EveryBlock(torch.nn.Module):  # each module that splits channels, once
        def __init__(self) -> None:
            super().__init__()
            self.stem = Stem(3, 16, 16, expand_ratio=1)
            self.lite = ConditionalChannelWeighting([16, 16], reduce_ratio=2)
            self.naive = ShuffleBlock(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            fine, coarse = self.lite([x, F.avg_pool2d(x, 2)])
            return self.naive(fine) + F.interpolate(coarse, scale_factor=2.0)

    batch = torch.export.Dim("batch", min=1, max=8)
    exported = torch.export.export(
        EveryBlock().eval(), (torch.randn(2, 3, 32, 32),), dynamic_shapes={"x": {0: batch}}
    )
    graph = to_edge(exported).exported_program().graph
    (output,) = next(n for n in graph.nodes if n.op == "output").args[0]
    assert not isinstance(output.meta["val"].shape[0], int)


def test_initialisation_is_mmposes_default():
    """MMPose's LiteHRNet.init_weights, as it leaves the weights (checked there): Normal(0, 0.001)
    for every conv, zero biases, BN scale 1 and shift 0, except the stem's four top-level conv
    units, which mmcv's ConvModule re-initialises: Kaiming normal, fan-out, ReLU gain."""
    torch.manual_seed(0)
    backbone = LiteHRNet("litehrnet_18")
    stem = backbone.stem
    kaiming = {stem.conv1.conv, stem.expand_conv.conv, stem.depthwise_conv.conv,
               stem.linear_conv.conv}  # fmt: skip
    normal = []
    for m in backbone.modules():
        if isinstance(m, torch.nn.Conv2d):
            if m.bias is not None:
                assert not m.bias.any()
            if m in kaiming:
                fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
                assert m.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.15)
            else:
                normal.append(m.weight.flatten())
        elif isinstance(m, torch.nn.BatchNorm2d):
            assert bool((m.weight == 1).all()) and not m.bias.any()
    weights = torch.cat(normal)
    assert weights.std().item() == pytest.approx(0.001, rel=0.02)
    assert weights.abs().max().item() < 0.01


def test_trains_with_batches_through_every_block_type():
    model = _pose_model(REFERENCE_SPEC, input_size=(64, 64)).train()
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_spec_from_config_values_equals_the_dataclass():
    plain = {"stages": [{"modules": 2, "blocks": 2, "channels": [16, 32], "block": "lite"},
                        {"modules": 2, "blocks": 2, "channels": [16, 32, 64], "block": "naive"},
                        {"modules": 2, "blocks": 2, "channels": [16, 32, 64, 128]}]}  # fmt: skip
    assert LiteHRNetSpec.from_dict(plain) == REFERENCE_SPEC


def test_unknown_variant_and_bad_stage_are_named():
    with pytest.raises(ValueError, match=r"litehrnet_19.*litehrnet_18"):
        LiteHRNet("litehrnet_19")
    with pytest.raises(ValueError, match="block"):
        StageSpec(modules=1, blocks=1, channels=(16, 32), block="tiny")


# --- pretrained weights -------------------------------------------------------------------------


def test_pretrained_without_file_says_there_are_no_hub_weights():
    with pytest.raises(ValueError, match=r"no ImageNet weights.*init=plain.*init\.file="):
        LiteHRNet("litehrnet_18", pretrained=True)
    with pytest.raises(ValueError, match="no ImageNet weights"):  # as a run config gets there
        build_model("litehrnet_18", init="imagenet")


@pytest.mark.parametrize(
    ("filename", "wrap", "prefix"),
    [("w.safetensors", None, ""), ("w.pth", "state_dict", "module."), ("w.pth", "model", "")],
)
def test_pretrained_file_loads_every_backbone_tensor(tmp_path, filename, wrap, prefix):
    torch.manual_seed(1)
    source = LiteHRNet("reference", REFERENCE_SPEC)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    state = {prefix + k: v for k, v in source.state_dict().items()}
    path = tmp_path / filename
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    loaded = LiteHRNet("reference", REFERENCE_SPEC, pretrained=True, pretrained_file=str(path))
    for (key, got), want in zip(loaded.state_dict().items(), source.state_dict().values(),
                                strict=True):  # fmt: skip
        assert torch.equal(got, want), key


def test_pretrained_file_of_a_whole_mmpose_checkpoint_takes_its_backbone(tmp_path):
    """An MMPose checkpoint ({'meta', 'state_dict': {'backbone.*', 'head.*'}}) inits the backbone;
    its head is left out, as timm leaves out a classifier."""
    reference = load_file(str(REFERENCE))
    checkpoint = {k: v for k, v in reference.items() if k.startswith(("backbone.", "head."))}
    path = tmp_path / "mmpose.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": checkpoint}, path)
    model = _pose_model(REFERENCE_SPEC, pretrained=True, pretrained_file=str(path))
    got = model.backbone.state_dict()
    assert got.keys() == {k.removeprefix("backbone.") for k in checkpoint if "backbone." in k}
    for key, value in got.items():
        assert torch.equal(value, checkpoint["backbone." + key].to(value.dtype)), key
    assert model.head.final.weight.std().item() < 0.01  # fresh: Normal(0, 0.001)


def test_pretrained_file_missing_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors.*init\.file"):
        LiteHRNet(
            "litehrnet_18", pretrained=True, pretrained_file=str(tmp_path / "nope.safetensors")
        )


def test_pretrained_file_of_another_variant_lists_keys(tmp_path):
    path = tmp_path / "lhr30.safetensors"
    save_file(LiteHRNet("litehrnet_30").state_dict(), str(path))
    with pytest.raises(
        ValueError,
        match=r"do not fit backbone 'litehrnet_18'.*"
        r"0 missing keys.*[1-9]\d* unexpected keys.*stage0\.2\.",
    ):
        LiteHRNet("litehrnet_18", pretrained=True, pretrained_file=str(path))


def test_pretrained_file_of_other_widths_names_the_shapes(tmp_path):
    path = tmp_path / "narrow.safetensors"
    save_file(LiteHRNet("reference", REFERENCE_SPEC).state_dict(), str(path))
    stages = REFERENCE_SPEC.stages
    wider = LiteHRNetSpec(
        tuple(StageSpec(s.modules, s.blocks, tuple(c * 3 // 2 for c in s.channels), s.block)
              for s in stages)
    )  # fmt: skip
    first = r"transition0\.0\.2\.weight \[16, 32, 1, 1\] \(ours \[24, 32, 1, 1\]\)"
    with pytest.raises(ValueError, match=rf"backbone 'wider'.*tensors of other shapes: \['{first}"):
        LiteHRNet("wider", wider, pretrained=True, pretrained_file=str(path))


def test_unreadable_pretrained_file_is_named(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read weights from .*broken\.pth"):
        LiteHRNet("litehrnet_18", pretrained=True, pretrained_file=str(path))


@needs_executorch
def test_executorchs_int8_quantiser_quantises_every_convolution():
    """XNNPACK's quantiser annotates a weight at its first use only: the fusion's second run of
    branch 0's path kept float weights, and XNNPACK refused to load the INT8 program."""
    from mobilevitpose.inference.executorch_program import _dynamic_batch, _quantised
    from mobilevitpose.inference.fidelity import calibration_inputs
    from mobilevitpose.models.lowering import for_mobile_delegates

    spec = LiteHRNetSpec((StageSpec(1, 1, (16, 32), "lite"),))  # one fusion: the smallest graph
    model = _pose_model(spec, input_size=(32, 32)).eval()
    exported = torch.export.export(
        for_mobile_delegates(model, upsampling_as_conv=False),
        (torch.randn(2, 3, 32, 32),),
        dynamic_shapes=_dynamic_batch(),
    )
    crops = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), np.uint8)
    graph = _quantised(exported, calibration_inputs(model, crops)).graph
    convolutions = [n for n in graph.nodes if n.target == torch.ops.aten.conv2d.default]
    dequantised = {n for n in graph.nodes if str(n.target).startswith("quantized_decomposed.dequ")}
    float_inputs = [n.name for n in convolutions if not set(n.args[:2]) <= dequantised]
    assert len(convolutions) > 10 and not float_inputs
