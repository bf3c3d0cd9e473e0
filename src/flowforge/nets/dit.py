"""DiT: a transformer on image patches ``f(x, t, cond)``, with adaLN-Zero conditioning and SD3's refinements.

References:
    Peebles, Xie (2023). Scalable Diffusion Models with Transformers. https://arxiv.org/abs/2212.09748
    Esser et al. (2024). Scaling Rectified Flow Transformers for High-Resolution Image Synthesis (SD3).
    https://arxiv.org/abs/2403.03206
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention
from .backbone import Backbone
from .conditioning import IntervalEmbedding, LabelEmbedding, TimeEmbedding, add_interval, add_labels, zero_module
from .packing import DocumentMask
from .positions import grid_positions, sincos_2d
from .rope import RotaryEmbedding2d, Rotation


@dataclass(frozen=True)
class DiTSize:
    """The shape of a DiT: how deep and how wide."""

    depth: int  # transformer blocks
    hidden: int  # token width D
    heads: int  # attention heads; the head size is hidden / heads


DIT_SIZES: dict[str, DiTSize] = {
    # sized for a CPU (MNIST 28x28 at patch 2 or 4)
    "tiny": DiTSize(depth=4, hidden=64, heads=4),  # 0.3M parameters: tests and smoke runs
    "mini": DiTSize(depth=5, hidden=96, heads=4),  # 0.8M: between the two, for benchmarks.sd3_scaling
    "small": DiTSize(depth=6, hidden=128, heads=4),  # 1.8M: the size of configs/fm-mnist-cpu.yaml's U-Net
    # Peebles & Xie (2023), Table 1: DiT-S, -B, -L, -XL, for GPUs
    "S": DiTSize(depth=12, hidden=384, heads=6),
    "B": DiTSize(depth=12, hidden=768, heads=12),
    "L": DiTSize(depth=24, hidden=1024, heads=16),
    "XL": DiTSize(depth=28, hidden=1152, heads=16),
}

POSITION_ENCODINGS = ("sincos", "rope")  # absolute 2-D sin-cos added to the tokens; 2-D rotary in attention


def patchify(x: Tensor, patch: int) -> Tensor:
    """Cut images into non-overlapping ``patch x patch`` squares, one token each, in row-major order.

    Shapes: (B, C, H, W) -> (B, H/p * W/p, p * p * C), channels last within a token (as DiT's ``unpatchify``).
    """
    b, c, height, width = x.shape
    h, w = height // patch, width // patch
    x = x.reshape(b, c, h, patch, w, patch)  # (B, C, h, p, w, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, patch * patch * c)  # (B, h w, p p C)


def unpatchify(tokens: Tensor, patch: int, height: int, width: int) -> Tensor:
    """The inverse of :func:`patchify`. Shapes: (B, H/p * W/p, p * p * C) -> (B, C, H, W).

    Example:
        >>> x = torch.randn(2, 3, 4, 6)
        >>> bool(torch.equal(unpatchify(patchify(x, 2), 2, 4, 6), x))
        True
    """
    b, _, dim = tokens.shape
    h, w, c = height // patch, width // patch, dim // (patch * patch)
    x = tokens.reshape(b, h, w, patch, patch, c)  # (B, h, w, p, p, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, height, width)  # (B, C, H, W)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: :math:`(1 + \\gamma) \\odot x + \\beta`. Shapes: ``x`` (B, L, D), ``shift``, ``scale`` (B, 1, D)."""
    return torch.addcmul(shift, x, 1 + scale)  # (B, L, D)


def by_example(fn: Callable[..., Tensor], x: Tensor, rows: tuple[Tensor, ...],
               mask: Tensor | DocumentMask | None = None) -> Tensor:
    """``fn(x, *rows)`` with each example's conditioning rows broadcast over its tokens.

    Shapes: ``x`` (B, L, D), ``rows`` (B, D) each -> (B, L, D); in a pack (``mask`` a
    :class:`~flowforge.nets.packing.DocumentMask` of N images) ``x`` (1, L, D), ``rows`` (N, D) each, each
    image's row broadcast over its own tokens (:meth:`~flowforge.nets.packing.DocumentMask.by_image`).
    """
    if isinstance(mask, DocumentMask):
        return mask.by_image(fn, x, *rows)  # (1, L, D)
    return fn(x, *(r[:, None] for r in rows))  # (B, L, D)


class DiTBlock(nn.Module):
    """A transformer block conditioned by adaptive layer norm with zero-initialised gates (adaLN-Zero).

    .. math:: (\\beta_1, \\gamma_1, \\alpha_1, \\beta_2, \\gamma_2, \\alpha_2) = W \\,\\mathrm{SiLU}(c) + b

    .. math:: h = x + \\alpha_1 \\odot \\mathrm{Attn}((1 + \\gamma_1) \\odot \\mathrm{LN}(x) + \\beta_1), \\quad
              \\mathrm{out} = h + \\alpha_2 \\odot \\mathrm{MLP}((1 + \\gamma_2) \\odot \\mathrm{LN}(h) + \\beta_2)

    ``W`` and ``b`` start at zero, so the gates ``alpha`` are zero and the block is the identity
    (Peebles & Xie 2023, Sec. 3.2: the best of their conditioning schemes, at negligible cost).

    Shapes: ``x`` (B, L, D), ``c`` (B, D) -> (B, L, D); in a pack (``mask`` a
    :class:`~flowforge.nets.packing.DocumentMask` of N images) ``x`` (1, L, D), ``c`` (N, D), each token modulated
    by its image's ``c``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: Tensor, c: Tensor, rotation: Rotation | None = None,
                mask: Tensor | DocumentMask | None = None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)  # 6 x (B, D)
        h = by_example(modulate, self.norm1(x), (shift1, scale1), mask)  # (B, L, D)
        x = x + by_example(torch.mul, self.attn(h, rotation, mask), (gate1,), mask)  # (B, L, D)
        h = by_example(modulate, self.norm2(x), (shift2, scale2), mask)  # (B, L, D)
        return x + by_example(torch.mul, self.mlp(h), (gate2,), mask)  # (B, L, D)


class FinalLayer(nn.Module):
    """adaLN then a linear map of each token to its patch, all zero at initialisation.

    Shapes: ``x`` (B, L, D), ``c`` (B, D) -> (B, L, p * p * C); in a pack as for :class:`DiTBlock`.
    """

    def __init__(self, dim: int, patch_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, patch_dim)

    def forward(self, x: Tensor, c: Tensor, mask: DocumentMask | None = None) -> Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)  # 2 x (B, D)
        return self.linear(by_example(modulate, self.norm(x), (shift, scale), mask))  # (B, L, p p C)


def transformer_size(name: str, shape: tuple[int, ...], size: str | DiTSize, positions: str, patch: int) -> DiTSize:
    """The :class:`DiTSize` of ``size`` (a name of :data:`DIT_SIZES` or a size), after checking the arguments a
    patch transformer (DiT, MMDiT) shares: an image ``shape`` (C, H, W), known positions, a positive patch."""
    if len(shape) != 3:
        raise ValueError(f"{name} needs shape (C, H, W), got {tuple(shape)}")
    if isinstance(size, str):
        if size not in DIT_SIZES:
            raise ValueError(f"{name} size {size!r} is not one of {', '.join(DIT_SIZES)}")
        size = DIT_SIZES[size]
    if positions not in POSITION_ENCODINGS:
        raise ValueError(f"{name} positions {positions!r} is not one of {', '.join(POSITION_ENCODINGS)}")
    if patch < 1:
        raise ValueError(f"{name} patch size must be positive, got {patch}")
    return size


class DiT(Backbone):
    """``f(x, t, cond)``: a Diffusion Transformer (Peebles & Xie 2023) with SD3's QK-norm and 2-D positions.

    The image is cut into ``p x p`` patches, each linearly embedded as a token of width ``D``; ``depth``
    blocks (:class:`DiTBlock`) read the conditioning ``c = MLP(sin(t)) + E[cond]`` by adaLN-Zero; a final adaLN
    and a linear map return each token to its patch. The output has the input's shape (one prediction, not DiT's
    extra learnt variance).

    Conditioning (:mod:`flowforge.nets.conditioning`): ``t`` goes through a
    :class:`~flowforge.nets.conditioning.TimeEmbedding` (``t * time_scale``, a two-layer MLP); a class label
    ``cond`` adds a learnt embedding. Label ``num_classes`` is the *null* label (classifier-free guidance), as in
    :class:`flowforge.nets.unet.UNet`; ``cond=None`` means all null.

    Positions (``positions``), both on :func:`flowforge.nets.positions.grid_positions` with the construction
    shape's patch grid as reference, so the network takes any ``H, W`` divisible by ``p``:

    - ``sincos``: a fixed 2-D sin-cos table added to the tokens (DiT); at another resolution the table is
      sampled at the interpolated positions, so the same place in a resized image gets the same code;
    - ``rope``: no table; queries and keys are rotated by 2-D rotary embeddings (relative positions).

    Zero at initialisation: the adaLN modulations and the final linear map start at zero, so every block is
    the identity and the network outputs exactly 0 (the same baselines as the U-Net's: "stand still" for a
    velocity, ``D = c_skip x`` under EDM's preconditioning).

    Arguments:
        shape: per-example input shape ``(C, H, W)`` at which the model is built (the position reference).
        size: a name of :data:`DIT_SIZES` or a :class:`DiTSize`.
        patch: patch size ``p``; ``H`` and ``W`` must be divisible by it.
        qk_norm: RMSNorm on queries and keys (SD3).
        positions: ``sincos`` or ``rope``.
        checkpoint: recompute each block's activations in the backward pass instead of storing them
            (non-reentrant :func:`torch.utils.checkpoint.checkpoint`; in training only).
        time_embed_dim: size of the sinusoidal features of ``t`` (DiT: 256).
        num_classes: number of classes, or ``None`` for an unconditional net.
        time_scale: factor applied to ``t`` before the sinusoids; 1000 suits ``t`` in [0, 1].
        mlp_ratio: width of the blocks' MLPs, as a multiple of ``D``.
        interval: take MeanFlow's interval ``t - r`` (:class:`~flowforge.nets.conditioning.IntervalEmbedding`).

    Shapes: ``x`` (B, C, H, W) with ``H, W`` divisible by ``patch``, ``t`` (B,) float, ``cond`` (B,) int64 in
    ``[0, num_classes]`` or ``None``, ``interval`` (B,) or ``None`` -> (B, C, H, W).

    Example:
        >>> net = DiT((1, 8, 8), size="tiny", patch=2, positions="rope")
        >>> out = net(torch.randn(2, 1, 8, 8), torch.rand(2))
        >>> out.shape, bool(out.abs().max() == 0)
        (torch.Size([2, 1, 8, 8]), True)
        >>> net(torch.randn(2, 1, 12, 6), torch.rand(2)).shape  # another resolution
        torch.Size([2, 1, 12, 6])
    """

    shard_unit = DiTBlock
    packs = True
    can_checkpoint = True

    def __init__(self, shape: tuple[int, int, int], size: str | DiTSize = "tiny", patch: int = 2,
                 qk_norm: bool = True, positions: str = "sincos", checkpoint: bool = False,
                 time_embed_dim: int = 256, num_classes: int | None = None, time_scale: float = 1000.0,
                 mlp_ratio: float = 4.0, interval: bool = False):
        super().__init__()
        size = transformer_size("DiT", shape, size, positions, patch)
        if size.hidden % size.heads:
            raise ValueError(f"DiT width {size.hidden} needs heads dividing it, got heads={size.heads}")
        self.shape, self.patch, self.size, self.takes_interval = tuple(shape), patch, size, interval
        self.reference = self._grid(shape[1], shape[2])  # the patch grid that positions are measured in
        self.num_classes, self.positions, self.checkpoint = num_classes, positions, checkpoint
        dim = size.hidden
        if positions == "sincos" and dim % 4:
            raise ValueError(f"2-D sin-cos positions need a width divisible by 4, got {dim}")
        self.rope = RotaryEmbedding2d(dim // size.heads) if positions == "rope" else None

        self.embed_patches = nn.Linear(shape[0] * patch * patch, dim)
        self.time_embed = TimeEmbedding(time_embed_dim, dim, time_scale)
        self.label_embed = LabelEmbedding(num_classes, dim) if num_classes is not None else None
        self.interval_embed = IntervalEmbedding(time_embed_dim, dim, time_scale) if interval else None
        self.blocks = nn.ModuleList(DiTBlock(dim, size.heads, mlp_ratio, qk_norm) for _ in range(size.depth))
        self.final = FinalLayer(dim, shape[0] * patch * patch)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation: Xavier-uniform linear maps, N(0, 0.02) embeddings, and adaLN-Zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.label_embed is not None:
            nn.init.normal_(self.label_embed.weight, std=0.02)
        for layer in self.time_embed.linears:
            nn.init.normal_(layer.weight, std=0.02)
        if self.interval_embed is not None:
            nn.init.normal_(self.interval_embed.linears[0].weight, std=0.02)
            zero_module(self.interval_embed.linears[-1])
        for block in self.blocks:
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        for p in (*self.final.modulation.parameters(), *self.final.linear.parameters()):
            nn.init.zeros_(p)

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        if height % self.patch or width % self.patch:
            raise ValueError(f"DiT with patch size {self.patch} needs a height and width divisible by "
                             f"{self.patch}, got {height}x{width}")
        return height // self.patch, width // self.patch

    @classmethod
    def from_config(cls, cfg: Any, shape: tuple[int, ...], time_scale: float, cond_size: int | None,
                    interval: bool = False) -> DiT:
        if len(shape) != 3:
            raise ValueError(f"model.net.name=dit needs images (C, H, W), the data has shape {shape}; use mlp")
        return cls(shape, size=cfg.size, patch=cfg.patch, qk_norm=cfg.qk_norm, positions=cfg.positions,
                   checkpoint=cfg.checkpoint, time_embed_dim=cfg.time_embed_dim, num_classes=cond_size,
                   time_scale=time_scale, interval=interval)

    @staticmethod
    def describe(cfg: Any) -> str:
        return (f"DiT-{cfg.size}/{cfg.patch}, {cfg.positions} positions{', QK-norm' if cfg.qk_norm else ''}"
                f"{', checkpointed blocks' if cfg.checkpoint else ''}")

    def embed(self, t: Tensor, cond: Tensor | None, interval: Tensor | None = None) -> Tensor:
        """The conditioning of every block: ``MLP(sin(t)) [+ MLP(sin(t - r))] + E[cond]``.

        Shapes: ``t`` (B,), ``cond`` (B,) or ``None``, ``interval`` (B,) or ``None`` -> (B, D).
        """
        c = add_interval(self.time_embed(t), self.interval_embed, interval)  # (B, D)
        return add_labels(c, self.label_embed, cond, t, "DiT")  # (B, D)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, interval: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.shape[0] or t.shape != x.shape[:1]:
            raise ValueError(f"DiT on {self.shape[0]} channels needs x (B, {self.shape[0]}, H, W) and t (B,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        height, width = x.shape[-2:]
        h, w = self._grid(height, width)
        c = self.embed(t, cond, interval)  # (B, D)
        tokens = self.embed_patches(patchify(x, self.patch))  # (B, h w, D)
        pos = grid_positions(h, w, self.reference, device=x.device)  # (h w, 2)
        rotation = self.rope(pos) if self.rope is not None else None
        if self.positions == "sincos":
            tokens = tokens + sincos_2d(pos, tokens.shape[-1]).to(tokens.dtype)  # (B, h w, D)
        tokens = self._blocks(tokens, c, rotation)  # (B, h w, D)
        return unpatchify(self.final(tokens, c), self.patch, height, width)  # (B, C, H, W)

    def _blocks(self, tokens: Tensor, c: Tensor, rotation: Rotation | None,
                mask: DocumentMask | None = None) -> Tensor:
        """The transformer blocks, each checkpointed when asked (in training). Shapes: as :class:`DiTBlock`."""
        for block in self.blocks:
            if self.checkpoint and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, c, rotation, mask, use_reentrant=False)  # (B, L, D)
            else:
                tokens = block(tokens, c, rotation, mask)  # (B, L, D)
        return tokens

    def forward_packed(self, xs: Sequence[Tensor], t: Tensor, cond: Tensor | None = None,
                       kernel: str = "segments") -> list[Tensor]:
        """The forward pass of images of several resolutions at once, packed into one token sequence.

        The images' tokens are concatenated, without padding, into one sequence of ``L = sum_i h_i w_i`` tokens;
        each token gets its own image's 2-D position (measured on the same reference grid as in
        :meth:`forward`) and its own image's adaLN modulation from ``MLP(sin(t_i)) + E[cond_i]``; attention is
        restricted to each image by a :class:`~flowforge.nets.packing.DocumentMask` built once for all blocks
        (``kernel``: :data:`~flowforge.nets.packing.PACKED_ATTENTION`); the output is cut back into the images.
        Each output equals :meth:`forward` of its image alone, up to float rounding.

        Arguments:
            xs: groups of images, each (B_g, C, H_g, W_g) with ``H_g, W_g`` divisible by ``patch``: e.g. one
                group per resolution.
            t: (N,) times of the ``N = sum_g B_g`` images, in the order of ``xs``.
            cond: (N,) labels in the same order, or ``None``.

        Shapes: ``xs`` [(B_g, C, H_g, W_g)], ``t`` (N,), ``cond`` (N,) or ``None`` -> [(B_g, C, H_g, W_g)].

        Example:
            >>> net = DiT((1, 8, 8), size="tiny", patch=2)
            >>> out = net.forward_packed([torch.randn(2, 1, 8, 8), torch.randn(1, 1, 4, 6)], torch.rand(3))
            >>> [tuple(o.shape) for o in out]
            [(2, 1, 8, 8), (1, 1, 4, 6)]
        """
        if not xs:
            raise ValueError("DiT.forward_packed needs at least one group of images")
        grids = []
        for x in xs:
            if x.ndim != 4 or x.shape[1] != self.shape[0]:
                raise ValueError(f"DiT on {self.shape[0]} channels packs groups (B, {self.shape[0]}, H, W), "
                                 f"got {tuple(x.shape)}")
            grids.append(self._grid(*x.shape[-2:]))
        n = sum(x.shape[0] for x in xs)
        if t.shape != (n,):
            raise ValueError(f"DiT.forward_packed on {n} images needs t of shape ({n},), got {tuple(t.shape)}")
        device = t.device
        lengths = [h * w for x, (h, w) in zip(xs, grids) for _ in range(x.shape[0])]
        mask = DocumentMask.build(lengths, kernel, device=device)
        c = self.embed(t, cond)  # (N, D)
        tokens = torch.cat([patchify(x, self.patch).flatten(0, 1) for x in xs])[None]  # (1, L, p p C)
        tokens = self.embed_patches(tokens)  # (1, L, D)
        pos = torch.cat([grid_positions(h, w, self.reference, device=device).repeat(x.shape[0], 1)
                         for x, (h, w) in zip(xs, grids)])  # (L, 2)
        rotation = self.rope(pos) if self.rope is not None else None
        if self.positions == "sincos":
            tokens = tokens + sincos_2d(pos, tokens.shape[-1]).to(tokens.dtype)  # (1, L, D)
        tokens = self._blocks(tokens, c, rotation, mask)  # (1, L, D)
        out = self.final(tokens, c, mask)[0]  # (L, p p C)
        parts = out.split([x.shape[0] * h * w for x, (h, w) in zip(xs, grids)])  # [(B_g h_g w_g, p p C)]
        return [unpatchify(part.reshape(x.shape[0], h * w, -1), self.patch, *x.shape[-2:])  # (B_g, C, H_g, W_g)
                for part, x, (h, w) in zip(parts, xs, grids)]


__all__ = ["DIT_SIZES", "POSITION_ENCODINGS", "DiT", "DiTBlock", "DiTSize", "FinalLayer", "modulate", "patchify",
           "transformer_size", "unpatchify"]
