"""The delegate-friendly rewrite computes what timm's (and Lite-HRNet's) modules compute."""

from collections import Counter

import pytest
import torch
from timm.layers import Attention
from torch import nn

from helpers import like_trained
from mobilevitpose.models.litehrnet import HRModule
from mobilevitpose.models.lowering import (
    BmmAttention,
    MeanLayerNorm,
    PhaseConvTranspose,
    for_mobile_delegates,
)
from mobilevitpose.training.config import build_model


@pytest.mark.parametrize("name", ["mobilevitpose_xxs", "mobilevitpose_s"])
def test_the_rewritten_network_gives_the_same_heatmaps(name):
    model = like_trained(build_model(name, ["model.input_size=[64,96]"]))
    rewritten = for_mobile_delegates(model)
    kinds = {type(m) for m in rewritten.modules()}
    assert {BmmAttention, MeanLayerNorm, PhaseConvTranspose} <= kinds
    assert not kinds & {Attention, nn.LayerNorm, nn.ConvTranspose2d}
    assert any(isinstance(m, Attention) for m in model.modules())  # the source is untouched
    x = torch.randn(3, 3, 96, 64)
    with torch.inference_mode():
        expected, actual = model(x), rewritten(x)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_lite_hrnets_fusion_runs_the_path_from_branch_0_once_with_the_same_heatmaps():
    model = like_trained(build_model("litehrnet_18", ["model.input_size=[64,96]"]))
    rewritten = for_mobile_delegates(model)
    calls: Counter[str] = Counter()
    for network, tag in ((model, "source"), (rewritten, "rewritten")):
        fusion = next(m for m in network.modules() if isinstance(m, HRModule))
        path = fusion.fuse_layers[1][0]  # branch 0 -> branch 1
        path.register_forward_hook(lambda *_, tag=tag: calls.update([tag]))
    x = torch.randn(2, 3, 96, 64)
    with torch.inference_mode():
        expected, actual = model(x), rewritten(x)
    assert calls == {"source": 2, "rewritten": 1}
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_layer_norm_over_the_last_dimension_of_any_rank():
    norm = nn.LayerNorm(8)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    for shape in [(5, 8), (2, 7, 8), (2, 3, 4, 8)]:
        x = torch.randn(shape) * 3 + 1
        torch.testing.assert_close(MeanLayerNorm(norm)(x), norm(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_a_stride_2_transposed_convolution_as_phases(bias):
    deconv = nn.ConvTranspose2d(6, 5, kernel_size=4, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 6, 7, 9)
    with torch.inference_mode():
        torch.testing.assert_close(PhaseConvTranspose(deconv)(x), deconv(x), rtol=0, atol=1e-5)


def test_what_cannot_be_rewritten_is_refused_or_kept():
    other = nn.Sequential(nn.ConvTranspose2d(4, 4, kernel_size=2, stride=2))
    assert isinstance(for_mobile_delegates(other)[0], nn.ConvTranspose2d)
    with pytest.raises(ValueError, match="kernel 4, stride 2, padding 1"):
        PhaseConvTranspose(other[0])
    with pytest.raises(ValueError, match="q_norm"):
        BmmAttention(Attention(16, num_heads=2, qk_norm=True, norm_layer=nn.LayerNorm))
    attention = BmmAttention(Attention(16, num_heads=2))
    with pytest.raises(ValueError, match="no attention mask"):
        attention(torch.randn(1, 4, 16), attn_mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="one dimension"):
        MeanLayerNorm(nn.LayerNorm([4, 8]))
