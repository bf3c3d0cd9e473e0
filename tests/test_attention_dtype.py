"""Attention's QK-norm and the rotary positions keep a float64 model in float64, and bf16 in float32 as before."""

import torch

from flowforge.nets.attention import Attention
from flowforge.nets.positions import grid_positions
from flowforge.nets.rope import RotaryEmbedding2d


def test_attention_with_qk_norm_and_rope_passes_gradcheck_in_float64():
    torch.manual_seed(0)
    attn = Attention(64, 4, qk_norm=True).double()
    rotation = RotaryEmbedding2d(16).double()(grid_positions(2, 2))  # 4 tokens, head size 64 / 4
    assert rotation.cos.dtype == torch.float64
    x = torch.randn(1, 4, 64, dtype=torch.float64, requires_grad=True)
    assert attn(x).dtype == torch.float64
    assert torch.autograd.gradcheck(lambda x: attn(x), (x,))
    assert torch.autograd.gradcheck(lambda x: attn(x, rotation), (x,))


def test_bf16_queries_and_keys_are_still_normalised_and_rotated_in_float32():
    torch.manual_seed(0)
    attn, rope = Attention(32, 2, qk_norm=True), RotaryEmbedding2d(16)
    rotation = rope(grid_positions(2, 2))
    x = torch.randn(2, 4, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as training runs it: float32 weights, bf16 matmuls
        q, k, v = attn.project(x, rotation)
        # the computation as it was written before float64 was promoted: an explicit float32 cast
        qkv = attn.qkv(x).reshape(2, 4, 3, 2, 16).permute(2, 0, 3, 1, 4).unbind(0)
        norm_q, norm_k = attn.q_norm(qkv[0].float()).bfloat16(), attn.k_norm(qkv[1].float()).bfloat16()
    angles = grid_positions(2, 2).float()[:, :, None] * rope.theta  # (L, 2, d/4) in float32

    def rotate(t):
        x1, x2 = t.float().reshape(2, 2, 4, 2, 2, 4).unbind(-2)
        cos, sin = torch.cos(angles), torch.sin(angles)
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-2).reshape(2, 2, 4, 16).bfloat16()

    assert q.dtype == k.dtype == v.dtype == torch.bfloat16 and rotation.cos.dtype == torch.float32
    assert torch.equal(q, rotate(norm_q)) and torch.equal(k, rotate(norm_k))
