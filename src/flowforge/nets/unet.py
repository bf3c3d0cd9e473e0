"""A compact U-Net ``f(x, t, cond)`` for image diffusion and flow matching, in the DDPM / ADM / DDPM++ family.

References:
    Ho, Jain, Abbeel (2020). Denoising Diffusion Probabilistic Models. https://arxiv.org/abs/2006.11239
    Nichol, Dhariwal (2021). Improved Denoising Diffusion Probabilistic Models. https://arxiv.org/abs/2102.09672
    Karras, Aittala, Aila, Laine (2022). Elucidating the Design Space of Diffusion-Based Generative Models.
    https://arxiv.org/abs/2206.00364
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attend
from .backbone import Backbone
from .conditioning import IntervalEmbedding, LabelEmbedding, TimeEmbedding, add_interval, add_labels, zero_module


def norm_groups(channels: int, max_groups: int = 32, min_per_group: int = 4) -> int:
    """Groups for ``GroupNorm(channels)``: at most 32 and at least 4 channels a group, dividing ``channels``.

    DDPM and ADM always use 32 groups, which on a 32-channel CPU-sized net would
    be one channel a group (instance norm); EDM's ``GroupNorm`` caps the count at
    ``channels // 4`` for this reason. We take the largest count under both caps
    that divides ``channels``, since ``nn.GroupNorm`` requires it.

    >>> norm_groups(128), norm_groups(32), norm_groups(48), norm_groups(3)
    (32, 8, 12, 1)
    """
    groups = max(1, min(max_groups, channels // min_per_group))
    while channels % groups:
        groups -= 1
    return groups


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` with its scale and shift cast to the input's dtype (the same parameters and state dict).

    Under bf16 autocast the plain module mixes dtypes in forward-mode AD: with float32 affine parameters its
    tangent comes out in float32 beside a bf16 primal, and the next convolution's JVP fails ("Input type
    (torch.FloatTensor) and weight type (CPUBFloat16Type) should be the same"). MeanFlow's target is such a JVP
    (``torch.func.jvp``), so a U-Net MeanFlow run could not train in bf16. In float32 this is ``nn.GroupNorm``
    exactly. Normalising in float32 instead would also mend the JVP, but it cost 17% of a bf16 training step of
    the MNIST U-Net on an AMX CPU; this costs 3% (``GroupNorm`` against ``nn.GroupNorm``, one process, alternated).
    """

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.to(x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.group_norm(x, self.num_groups, w, b, self.eps)


def _norm(channels: int) -> nn.GroupNorm:
    return GroupNorm(norm_groups(channels), channels)


class ResBlock(nn.Module):
    """A residual block conditioned on an embedding by scale and shift (FiLM), as in improved DDPM.

    .. math:: u = W_1 * \\mathrm{SiLU}(\\mathrm{GN}(x)), \\quad
              h = W_2 * \\mathrm{drop}(\\mathrm{SiLU}((1 + \\gamma(e))\\,\\mathrm{GN}(u) + \\beta(e))), \\quad
              \\mathrm{out} = \\mathrm{skip}(x) + h

    ``W_2`` starts at zero, so the block starts as the (projected) identity.

    Shapes: ``x`` (B, c_in, H, W), ``emb`` (B, emb_dim) -> (B, c_out, H, W).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.drop = _norm(c_out), nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        gamma, beta = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # 2 x (B, c_out, 1, 1)
        h = torch.addcmul(beta, self.norm2(h), 1 + gamma)  # (B, c_out, H, W)
        h = self.conv2(self.drop(F.silu(h)))  # (B, c_out, H, W)
        return self.skip(x) + h  # (B, c_out, H, W)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the ``H * W`` pixels, residual, with a zero-initialised output projection.

    Goes through :func:`flowforge.nets.attention.attend` (fused
    :func:`torch.nn.functional.scaled_dot_product_attention`), which never
    materialises the (HW, HW) score matrix.

    Shapes: (B, C, H, W) -> (B, C, H, W); ``C`` divisible by ``heads``.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention over {channels} channels needs heads dividing it, got heads={heads}")
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, nh, C/nh, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # 3 x (B, nh, HW, C/nh)
        a = attend(q, k, v)  # (B, nh, HW, C/nh)
        a = a.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(a)  # (B, C, H, W)


class _Block(nn.Module):
    """A :class:`ResBlock`, followed by :class:`SelfAttention` if ``attention``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, attention: bool, heads: int):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, dropout)
        self.attn = SelfAttention(c_out, heads) if attention else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.attn(self.res(x, emb))  # (B, c_out, H, W)


class Upsample(nn.Module):
    """Nearest-neighbour doubling then a 3x3 conv. Shapes: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


def _check_resolutions(shape: tuple[int, int, int], channel_mult: tuple[int, ...]) -> None:
    """Every level but the last is halved, so its resolution must be even (up-sampling restores 2x, not 2x+1)."""
    _, height, width = shape
    for level in range(len(channel_mult) - 1):
        h, w = height >> level, width >> level
        if h % 2 or w % 2 or h < 2 or w < 2:
            raise ValueError(
                f"UNet on shape {tuple(shape)} with channel_mult {tuple(channel_mult)}: level {level} has "
                f"resolution {h}x{w}, which is odd and cannot be halved and restored; use a channel_mult with at "
                f"most {level + 1} levels, e.g. {tuple(channel_mult[:level + 1])}")


class UNet(Backbone):
    """``f(x, t, cond)``: a U-Net on images with a noise-level embedding and optional class conditioning.

    The layout is that of DDPM (Ho et al. 2020) as refined by improved DDPM / ADM
    (Nichol & Dhariwal 2021) and EDM's DDPM++ (Karras et al. 2022), at CPU size:
    ``len(channel_mult)`` resolution levels, level ``i`` at ``H / 2**i`` with
    ``channels * channel_mult[i]`` channels and ``num_res_blocks`` residual
    blocks; a stride-2 conv between levels on the way down and nearest
    up-sampling + conv on the way up; every encoder output is concatenated into
    the decoder (which has ``num_res_blocks + 1`` blocks a level); self-attention
    at ``attention_levels`` and in the bottleneck (ResBlock, attention, ResBlock).

    Conditioning (:mod:`flowforge.nets.conditioning`): ``t`` goes through a
    :class:`~flowforge.nets.conditioning.TimeEmbedding` (``t * time_scale``, a two-layer MLP) to
    ``emb_dim = 4 * channels``; a class label ``cond`` adds a learnt embedding
    (:class:`~flowforge.nets.conditioning.LabelEmbedding`). Label ``num_classes`` is the *null* label
    (classifier-free guidance: the trainer drops labels to it, the sampler mixes the two predictions).
    Every residual block reads ``emb`` as a scale and shift after its second norm.

    Zero at initialisation: the last conv of every residual branch, the output
    projection of every attention, and the final conv start at zero, so each block
    starts as the identity and the network outputs exactly 0. For a velocity
    model this is "stand still", with initial loss the target's variance; under
    EDM's preconditioning ``D = c_skip x + c_out F`` it makes ``D = c_skip x``, the
    best per-pixel linear denoiser for zero-mean data of standard deviation ``sigma_data``. Training
    starts from these baselines instead of from a random function.

    Odd resolutions are supported only at the coarsest level: 28 -> 14 -> 7 and
    8 -> 4 -> 2 work; a level that must be halved at an odd resolution raises a
    ``ValueError`` at construction (rather than padding and cropping, which would
    let border pixels see a different receptive field than the rest).

    Arguments:
        shape: per-example input shape ``(C, H, W)``; the output has the same shape.
        channels: base channel count (a multiple of 4 keeps group norms well formed).
        channel_mult: channel multiplier per resolution level.
        num_res_blocks: residual blocks per level in the encoder (decoder: one more).
        attention_levels: indices of the levels with self-attention after each block.
        heads: attention heads; must divide the channels of every attended level.
        dropout: dropout in the residual blocks.
        time_embed_dim: size of the sinusoidal features of ``t``.
        num_classes: number of classes, or ``None`` for an unconditional net.
        time_scale: factor applied to ``t`` before the sinusoids; 1000 suits ``t`` in [0, 1].
        interval: take MeanFlow's interval ``t - r`` (:class:`~flowforge.nets.conditioning.IntervalEmbedding`).

    Shapes: ``x`` (B, C, H, W), ``t`` (B,) float, ``cond`` (B,) int64 in ``[0, num_classes]`` or ``None``,
    ``interval`` (B,) or ``None`` -> (B, C, H, W).

    Example:
        >>> net = UNet((1, 8, 8), channels=16, channel_mult=(1, 2), attention_levels=(1,))
        >>> out = net(torch.randn(2, 1, 8, 8), torch.rand(2))
        >>> out.shape, bool(out.abs().max() == 0)
        (torch.Size([2, 1, 8, 8]), True)
    """

    def __init__(self, shape: tuple[int, int, int], channels: int = 32, channel_mult: tuple[int, ...] = (1, 2, 2),
                 num_res_blocks: int = 2, attention_levels: tuple[int, ...] = (2,), heads: int = 4,
                 dropout: float = 0.0, time_embed_dim: int = 128, num_classes: int | None = None,
                 time_scale: float = 1000.0, interval: bool = False):
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"UNet needs shape (C, H, W), got {tuple(shape)}")
        if not channel_mult or num_res_blocks < 1:
            raise ValueError("UNet needs at least one level (channel_mult) and one residual block a level")
        if any(not 0 <= i < len(channel_mult) for i in attention_levels):
            raise ValueError(f"attention_levels {tuple(attention_levels)} must index levels 0..{len(channel_mult) - 1}")
        _check_resolutions(shape, channel_mult)
        self.shape = tuple(shape)
        self.num_classes, self.takes_interval = num_classes, interval
        emb_dim = 4 * channels  # DDPM's temb_ch = 4 * ch
        self.time_embed = TimeEmbedding(time_embed_dim, emb_dim, time_scale)
        self.label_embed = LabelEmbedding(num_classes, emb_dim) if num_classes is not None else None
        self.interval_embed = IntervalEmbedding(time_embed_dim, emb_dim, time_scale) if interval else None

        block = dict(emb_dim=emb_dim, dropout=dropout, heads=heads)
        widths = [channels * m for m in channel_mult]
        self.inp = nn.Conv2d(shape[0], channels, 3, padding=1)
        skips, c = [channels], channels  # channels of each tensor the decoder will concatenate
        self.enc, self.down = nn.ModuleList(), nn.ModuleList()
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(_Block(c, width, attention=level in attention_levels, **block))
                c = width
                skips.append(c)
            self.enc.append(blocks)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([_Block(c, c, attention=True, **block), _Block(c, c, attention=False, **block)])
        self.dec, self.up = nn.ModuleList(), nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(_Block(c + skips.pop(), width, attention=level in attention_levels, **block))
                c = width
            self.dec.append(blocks)
            if level > 0:
                self.up.append(Upsample(c))
        self.out = nn.Sequential(_norm(c), nn.SiLU(), zero_module(nn.Conv2d(c, shape[0], 3, padding=1)))

    @classmethod
    def from_config(cls, cfg: Any, shape: tuple[int, ...], time_scale: float, cond_size: int | None,
                    interval: bool = False) -> UNet:
        if len(shape) != 3:
            raise ValueError(f"model.net.name=unet needs images (C, H, W), the data has shape {shape}; use mlp")
        return cls(shape, channels=cfg.channels, channel_mult=tuple(cfg.channel_mult),
                   num_res_blocks=cfg.num_res_blocks, attention_levels=tuple(cfg.attention_levels), heads=cfg.heads,
                   dropout=cfg.dropout, time_embed_dim=cfg.time_embed_dim, num_classes=cond_size,
                   time_scale=time_scale, interval=interval)

    @staticmethod
    def describe(cfg: Any) -> str:
        return (f"U-Net, {cfg.channels} channels x {cfg.channel_mult}, {cfg.num_res_blocks} res blocks/level, "
                f"attention at levels {cfg.attention_levels}")

    def embed(self, t: Tensor, cond: Tensor | None, interval: Tensor | None = None) -> Tensor:
        """The conditioning vector of every residual block: ``MLP(sin(t)) [+ MLP(sin(t - r))] + E[cond]``.

        Shapes: ``t`` (B,), ``cond`` (B,) or ``None``, ``interval`` (B,) or ``None`` -> (B, emb_dim).
        """
        emb = add_interval(self.time_embed(t), self.interval_embed, interval)  # (B, emb_dim)
        return add_labels(emb, self.label_embed, cond, t, "UNet")  # (B, emb_dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, interval: Tensor | None = None) -> Tensor:
        if x.shape[1:] != self.shape or t.shape != x.shape[:1]:
            raise ValueError(f"UNet on {self.shape} needs x (B, *{self.shape}) and t (B,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        emb = self.embed(t, cond, interval)  # (B, emb_dim)
        h = self.inp(x)  # (B, ch, H, W)
        hs = [h]
        for level, blocks in enumerate(self.enc):
            for blk in blocks:
                h = blk(h, emb)  # (B, ch_level, H_level, W_level)
                hs.append(h)
            if level < len(self.down):
                h = self.down[level](h)  # (B, ch_level, H_level / 2, W_level / 2)
                hs.append(h)
        for blk in self.mid:
            h = blk(h, emb)  # (B, ch_last, H_last, W_last)
        for i, blocks in enumerate(self.dec):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], dim=1), emb)  # (B, ch_level, H_level, W_level)
            if i < len(self.up):
                h = self.up[i](h)  # (B, ch_level, 2 H_level, 2 W_level)
        return self.out(h)  # (B, C, H, W)
