"""Multi-head self-attention through fused kernels, with SD3's QK-norm and optional 2-D rotary positions.

Every attention of :mod:`flowforge.nets` goes through :func:`attend`, which calls
:func:`torch.nn.functional.scaled_dot_product_attention`: FlashAttention or memory-efficient kernels on GPU,
a fused flash-style kernel on CPU, so the ``L x L`` score matrix is never held in memory (Dao et al. 2022).
The one place that computes the scores explicitly is :meth:`Attention.scores`, for inspection and tests.

References:
    Vaswani et al. (2017). Attention Is All You Need. https://arxiv.org/abs/1706.03762
    Dao et al. (2022). FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness.
    https://arxiv.org/abs/2205.14135
    Esser et al. (2024). Scaling Rectified Flow Transformers for High-Resolution Image Synthesis (SD3; QK-norm,
    Sec. 5.3.2). https://arxiv.org/abs/2403.03206
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .packing import DocumentMask
from .rope import Rotation


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | DocumentMask | None = None) -> Tensor:
    """Scaled dot-product attention, fused: :math:`\\mathrm{softmax}(q k^\\top / \\sqrt{d} + M)\\, v`.

    Arguments:
        q, k, v: queries, keys and values per head.
        mask: ``None``, a boolean mask (``True``: the query may attend to the key; every query needs at least
            one ``True``), or a float mask ``M`` added to the scores (``-inf`` to block), broadcastable to
            (B, heads, L, L); or a :class:`~flowforge.nets.packing.DocumentMask`: ``B = 1`` and the ``L`` tokens
            are a pack of several images, each attending only to itself, through a kernel that never builds the
            ``L x L`` mask (:mod:`flowforge.nets.packing`).

    Shapes: ``q``, ``k``, ``v`` (B, heads, L, d) -> (B, heads, L, d).
    """
    if isinstance(mask, DocumentMask):
        return mask.attend(q, k, v)  # (1, nh, L, d)
    if mask is not None and not (mask.dtype.is_floating_point or mask.dtype == torch.bool):
        raise ValueError(f"attention mask must be boolean or floating point, got {mask.dtype}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, L, d)


class Attention(nn.Module):
    """Multi-head self-attention over a token sequence, with optional QK-norm and rotary positions.

    .. math:: q = \\mathrm{N}_q(x W_q), \\; k = \\mathrm{N}_k(x W_k), \\; v = x W_v \\text{ per head}, \\quad
              \\mathrm{out} = \\mathrm{softmax}(R q (R k)^\\top / \\sqrt{d} + M)\\, v \\; W_o

    QK-norm (SD3, after Dehghani et al. 2023, arXiv:2302.05442): ``N_q``, ``N_k`` are RMSNorms with a learnt
    gain ``g`` over each head's ``d`` channels, so ``|q| = |g_q| sqrt(d)`` whatever the scale of ``x`` and every
    score is bounded by ``|g_q| |g_k| sqrt(d)`` (Cauchy-Schwarz): the attention logits cannot grow without bound
    and collapse the softmax to one-hot, which destabilises training (in bf16 in particular). ``R`` rotates by
    position (:class:`flowforge.nets.rope.Rotation`) and leaves norms, hence the bound, unchanged.

    Arguments:
        dim: token width ``D``.
        heads: number of heads; ``D / heads`` is the head size ``d``.
        qk_norm: RMSNorm on queries and keys.
        bias: biases in the input projection.

    Shapes: ``x`` (B, L, D), ``rotation`` for L tokens or ``None``, ``mask`` as for :func:`attend`
    -> (B, L, D).

    Example:
        >>> attn = Attention(16, heads=2, qk_norm=True)
        >>> attn(torch.randn(3, 10, 16)).shape
        torch.Size([3, 10, 16])
    """

    def __init__(self, dim: int, heads: int, qk_norm: bool = False, bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention over width {dim} needs heads dividing it, got heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.proj = nn.Linear(dim, dim)

    def project(self, x: Tensor, rotation: Rotation | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values per head, normalised and rotated. Shapes: (B, L, D) -> 3 x (B, heads, L, d)."""
        b, length, _ = x.shape
        qkv = self.qkv(x).reshape(b, length, 3, self.heads, self.head_dim)  # (B, L, 3, nh, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, L, d)
        if self.q_norm is not None and self.k_norm is not None:
            # in at least float32, like the rotation: under bf16 autocast the norms' weights stay float32, and a
            # float64 model stays float64 (promoted, never cast down)
            wide = torch.promote_types(q.dtype, torch.float32)
            q, k = self.q_norm(q.to(wide)).to(v.dtype), self.k_norm(k.to(wide)).to(v.dtype)  # (B, nh, L, d)
        if rotation is not None:
            q, k = rotation(q), rotation(k)  # (B, nh, L, d)
        return q, k, v

    def scores(self, x: Tensor, rotation: Rotation | None = None) -> Tensor:
        """The attention logits :math:`q k^\\top / \\sqrt{d}`, materialised: for inspection, not used by ``forward``.

        Shapes: (B, L, D) -> (B, heads, L, L).
        """
        q, k, _ = self.project(x, rotation)
        return q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, nh, L, L)

    def forward(self, x: Tensor, rotation: Rotation | None = None,
                mask: Tensor | DocumentMask | None = None) -> Tensor:
        b, length, dim = x.shape
        q, k, v = self.project(x, rotation)  # 3 x (B, nh, L, d)
        a = attend(q, k, v, mask)  # (B, nh, L, d)
        return self.proj(a.transpose(1, 2).reshape(b, length, dim))  # (B, L, D)


__all__ = ["Attention", "attend"]
