"""The same network written in operators a mobile delegate takes whole (ExecuTorch's XNNPACK).

XNNPACK has no LayerNorm, and torch.export turns timm's multi-head attention (4-D matmuls,
`unbind` of the fused qkv) into `expand`/`squeeze` copies it does not take either: each such op
runs in ExecuTorch's portable kernels and cuts the delegated graph in two, with a layout
conversion (and, quantised, a dequantise/quantise pair) at every cut. Written with 3-D `bmm`,
slices and 4-D means instead, the MobileViT blocks are delegated whole at a fixed batch (XNNPACK
takes reshapes and slices of static shapes only: a batch-dynamic program still runs those in
portable kernels). XNNPACK runs transposed convolutions slowly: the head's upsampling becomes an
ordinary convolution. Lite-HRNet's fusion runs one path twice on the same input (as its
reference does); here it runs once, its output added twice. The rewrites compute what the
modules they replace compute (a test checks).
"""

from __future__ import annotations

import copy

import torch
from timm.layers import Attention
from torch import nn

from mobilevitpose.models.litehrnet import HRModule


class BmmAttention(nn.Module):
    """timm's `Attention` (no q/k norm, gate or scale norm: what MobileViT uses) with 3-D
    batched matmuls over (batch x heads) and slices of the fused qkv projection."""

    def __init__(self, attention: Attention) -> None:
        super().__init__()
        unsupported = [
            name
            for name in ("q_norm", "k_norm", "norm")
            if not isinstance(getattr(attention, name), nn.Identity)
        ]
        if unsupported or attention.gate is not None:
            what = unsupported or "a gate"
            raise ValueError(f"BmmAttention cannot rewrite an Attention with {what}")
        self.qkv, self.proj = attention.qkv, attention.proj
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        self.scale = attention.scale

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("BmmAttention has no attention mask (MobileViT uses none)")
        batch, tokens, _ = x.shape
        heads, width = self.num_heads, self.num_heads * self.head_dim
        qkv = self.qkv(x)

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(batch, tokens, heads, self.head_dim).transpose(1, 2)
            return t.reshape(batch * heads, tokens, self.head_dim)

        q = split_heads(qkv[..., :width]) * self.scale
        k = split_heads(qkv[..., width : 2 * width])
        v = split_heads(qkv[..., 2 * width :])
        attention = torch.bmm(q, k.transpose(1, 2)).softmax(dim=-1)
        out = torch.bmm(attention, v).reshape(batch, heads, tokens, self.head_dim)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class MeanLayerNorm(nn.Module):
    """A LayerNorm over the last dimension, its statistics taken as means over the two innermost
    dimensions of a 4-D view (the last one of size 1): the reduction XNNPACK delegates."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        if len(norm.normalized_shape) != 1 or norm.weight is None or norm.bias is None:
            raise ValueError("MeanLayerNorm rewrites affine LayerNorms over one dimension")
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x4 = x.reshape(-1, shape[-2], shape[-1], 1)
        centred = x4 - x4.mean(dim=(-2, -1), keepdim=True)
        variance = (centred * centred).mean(dim=(-2, -1), keepdim=True)
        normalised = (centred / torch.sqrt(variance + self.eps)).reshape(shape)
        return normalised * self.weight + self.bias


class PhaseConvTranspose(nn.Module):
    """A ConvTranspose2d with kernel 4, stride 2, padding 1 (the heatmap head's upsampling) as
    one 2x2 convolution to its four output phases, interleaved by a permute.

    Output row 2m + a takes input rows (m - 1, m) with kernel rows (3, 1) for a = 0 and rows
    (m, m + 1) with kernel rows (2, 0) for a = 1; columns alike. Over the input padded by one,
    both are 2x2 windows, at offsets a and b of one 2x2 convolution's (H + 1, W + 1) output.
    The same multiply-adds as the transposed convolution, in the operator XNNPACK runs fastest
    (its own fp32 transposed convolution is 2.5x slower on this head).
    """

    TAPS = ((3, 1), (2, 0))  # kernel rows (or columns) of phase 0 and phase 1

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if not is_phase_convertible(deconv):
            raise ValueError(
                f"PhaseConvTranspose needs kernel 4, stride 2, padding 1; got {deconv}"
            )
        self.out_channels = deconv.out_channels
        weight = deconv.weight.detach()  # (in, out, 4, 4)
        blocks = [
            weight[:, :, self.TAPS[a]][:, :, :, self.TAPS[b]].transpose(0, 1)
            for a in range(2)
            for b in range(2)
        ]
        self.conv = nn.Conv2d(
            deconv.in_channels, 4 * self.out_channels, 2, padding=1, bias=deconv.bias is not None
        )
        self.conv.weight.data.copy_(torch.cat(blocks))
        if deconv.bias is not None and self.conv.bias is not None:
            self.conv.bias.data.copy_(deconv.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        channels = self.out_channels
        y = self.conv(x)
        phases = [
            y[:, (2 * a + b) * channels : (2 * a + b + 1) * channels, a : a + height, b : b + width]
            for a in range(2)
            for b in range(2)
        ]
        y = torch.stack(phases, dim=2).reshape(batch, channels, 2, 2, height, width)
        return y.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, 2 * height, 2 * width)


def is_phase_convertible(deconv: nn.ConvTranspose2d) -> bool:
    return (
        deconv.kernel_size == (4, 4)
        and deconv.stride == (2, 2)
        and deconv.padding == (1, 1)
        and deconv.output_padding == (0, 0)
        and deconv.dilation == (1, 1)
        and deconv.groups == 1
    )


def for_mobile_delegates(model: nn.Module, upsampling_as_conv: bool = True) -> nn.Module:
    """A copy of `model` with timm `Attention`, `nn.LayerNorm` (exact class, not subclasses such
    as channels-first LayerNorm2d) and, if `upsampling_as_conv`, kernel-4 stride-2
    `ConvTranspose2d` rewritten as above, and Lite-HRNet's fusion running branch 0's path once.
    (Quantised, XNNPACK's own INT8 transposed convolution
    measured no slower at batch 1 and faster at batch 8 than the phases and their interleave.)"""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        if isinstance(parent, HRModule):
            parent.first_path_once = True
        for name, child in list(parent.named_children()):
            if isinstance(child, Attention):
                setattr(parent, name, BmmAttention(child))
            elif type(child) is nn.LayerNorm and len(child.normalized_shape) == 1:
                setattr(parent, name, MeanLayerNorm(child))
            elif (
                upsampling_as_conv
                and isinstance(child, nn.ConvTranspose2d)
                and is_phase_convertible(child)
            ):
                setattr(parent, name, PhaseConvTranspose(child))
    return model
