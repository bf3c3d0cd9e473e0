"""MMDiT: SD3's two-stream transformer ``f(x, t, cond)`` on a caption's token ids ``cond``, image and text tokens
joined in one attention.

References:
    Esser et al. (2024). Scaling Rectified Flow Transformers for High-Resolution Image Synthesis (SD3; MMDiT,
    Sec. 4 and Fig. 2). https://arxiv.org/abs/2403.03206
    Peebles, Xie (2023). Scalable Diffusion Models with Transformers (adaLN-Zero). https://arxiv.org/abs/2212.09748
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention, attend
from .backbone import Backbone
from .conditioning import TimeEmbedding
from .dit import DiTSize, FinalLayer, modulate, patchify, transformer_size, unpatchify
from .positions import grid_positions, sincos_1d, sincos_2d
from .rope import RotaryEmbedding2d, Rotation

PAD = 0  # token id of padding: the empty (null) caption is all padding


class Stream(nn.Module):
    """One stream's half of a joint block: its own adaLN-Zero modulation, norms, QKV and output projections, MLP.

    ``pre`` makes the stream's queries, keys and values from ``(1 + gamma_1) LN(x) + beta_1``; ``post`` adds
    the gated attention output and the gated MLP, as :class:`~flowforge.nets.dit.DiTBlock` does. A stream
    built with ``out=False`` only gives keys and values (SD3's last text block: its output would be discarded,
    and parameters without gradients would stall data-parallel training).

    Shapes: ``x`` (B, L, D), ``c`` (B, D); ``pre`` -> 3 x (B, heads, L, d) and the modulation; ``post`` takes
    the attention output (B, heads, L, d) -> (B, L, D).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False, out: bool = True):
        super().__init__()
        self.out = out
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, qk_norm=qk_norm)
        if out:
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            hidden = int(dim * mlp_ratio)
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        else:
            self.attn.proj = nn.Identity()  # no output: keys and values only
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, (6 if out else 2) * dim))

    def pre(self, x: Tensor, c: Tensor, rotation: Rotation | None) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        mods = list(self.modulation(c)[:, None].chunk(6 if self.out else 2, dim=-1))  # (B, 1, D) each
        q, k, v = self.attn.project(modulate(self.norm1(x), mods[0], mods[1]), rotation)  # 3 x (B, nh, L, d)
        return q, k, v, mods

    def post(self, x: Tensor, a: Tensor, mods: list[Tensor]) -> Tensor:
        _, _, gate1, shift2, scale2, gate2 = mods
        b, length, dim = x.shape
        x = x + gate1 * self.attn.proj(a.transpose(1, 2).reshape(b, length, dim))  # (B, L, D)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, L, D)


class JointBlock(nn.Module):
    """An MMDiT block: two :class:`Stream` s with separate weights that meet only in one attention.

    .. math:: [o_x; o_c] = \\mathrm{softmax}\\big([q_x; q_c] [k_x; k_c]^\\top / \\sqrt d + M\\big) [v_x; v_c]

    over the concatenated sequence of ``N`` image and ``L`` text tokens; ``M`` masks the text's padding keys,
    so a padded caption attends and is attended to exactly like the unpadded one. A padded *query* still sees
    every image key, so its row of the softmax is never empty (no NaN); its output is never read.

    Shapes: ``x`` (B, N, D), ``text`` (B, L, D), ``c`` (B, D), ``mask`` (B, 1, 1, N + L) bool or None
    -> (B, N, D) and (B, L, D) (``None`` for a last block, built with ``text_out=False``).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False, text_out: bool = True):
        super().__init__()
        self.image = Stream(dim, heads, mlp_ratio, qk_norm)
        self.text = Stream(dim, heads, mlp_ratio, qk_norm, out=text_out)

    def forward(self, x: Tensor, text: Tensor, c: Tensor, rotation: Rotation | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        qx, kx, vx, mods_x = self.image.pre(x, c, rotation)  # image tokens rotated by their 2-D positions
        qc, kc, vc, mods_c = self.text.pre(text, c, None)  # (B, nh, L, d)
        a = attend(torch.cat([qx, qc], 2), torch.cat([kx, kc], 2), torch.cat([vx, vc], 2), mask)  # (B, nh, N+L, d)
        ax, ac = a.split([x.shape[1], text.shape[1]], dim=2)
        x = self.image.post(x, ax, mods_x)  # (B, N, D)
        return x, (self.text.post(text, ac, mods_c) if self.text.out else None)


class MMDiT(Backbone):
    """``f(x, t, cond)``: the multimodal diffusion transformer of SD3 (Esser et al. 2024, Sec. 4), for short captions.

    Image patches (as :class:`~flowforge.nets.dit.DiT`'s, with its 2-D ``sincos`` or ``rope`` positions) and
    caption tokens (learnt embeddings of a word-level vocabulary, plus 1-D sin-cos positions by word order) are
    two token streams with separate weights, joined only inside the attention of each :class:`JointBlock`.
    Every block reads the conditioning vector

    .. math:: c = \\mathrm{MLP}(\\sin t) + \\mathrm{MLP}(\\mathrm{pool}(\\text{text}))

    by adaLN-Zero, where the pooled text is the mean of the caption's token embeddings over its words (SD3 pools
    CLIP's outputs instead), or a learnt null vector for the empty caption. The last block's text stream only gives
    keys and values (SD3's ``context_pre_only``), and the final adaLN layer maps image tokens back to patches.

    The condition ``cond`` is a caption's token ids (B, L), padded at the end with :data:`PAD`; the padding is
    masked out of the attention and the pooling, so the output does not depend on how much padding there is,
    whatever the padding's embedding row holds. An all-padding row (or ``cond=None``) is the empty caption: the
    null condition of classifier-free guidance.

    Zero at initialisation: every block's modulation and the final layer start at zero, so both streams pass
    through every block unchanged and the network outputs exactly 0.

    Arguments:
        shape: per-example input shape ``(C, H, W)`` at which the model is built (the position reference).
        vocab_size: number of token ids, :data:`PAD` included.
        size, patch, qk_norm, positions, checkpoint, time_embed_dim, time_scale, mlp_ratio: as for
            :class:`~flowforge.nets.dit.DiT`; a size of ``depth`` joint blocks has about twice the DiT's weights.

    Shapes: ``x`` (B, C, H, W) with ``H, W`` divisible by ``patch``, ``t`` (B,) float, ``cond`` (B, L) int64 in
    ``[0, vocab_size)`` or ``None`` -> (B, C, H, W). No ``interval`` yet (MeanFlow).

    Example:
        >>> net = MMDiT((1, 8, 8), vocab_size=12, size="tiny", patch=2)
        >>> text = torch.tensor([[3, 5, 0, 0], [7, 0, 0, 0]])  # two captions of 2 and 1 words, padded
        >>> out = net(torch.randn(2, 1, 8, 8), torch.rand(2), text)
        >>> out.shape, bool(out.abs().max() == 0)
        (torch.Size([2, 1, 8, 8]), True)
    """

    shard_unit = JointBlock
    reads_text = True
    can_checkpoint = True

    def __init__(self, shape: tuple[int, int, int], vocab_size: int, size: str | DiTSize = "tiny", patch: int = 2,
                 qk_norm: bool = True, positions: str = "sincos", checkpoint: bool = False,
                 time_embed_dim: int = 256, time_scale: float = 1000.0, mlp_ratio: float = 4.0):
        super().__init__()
        size = transformer_size("MMDiT", shape, size, positions, patch)
        if size.hidden % size.heads or size.hidden % 4:
            raise ValueError(f"MMDiT width {size.hidden} needs heads dividing it and a multiple of 4, "
                             f"got heads={size.heads}")
        if vocab_size < 2:
            raise ValueError(f"MMDiT needs a vocabulary of at least 2 tokens (padding and a word), got {vocab_size}")
        self.shape, self.patch, self.size, self.vocab_size = tuple(shape), patch, size, vocab_size
        self.reference = self._grid(shape[1], shape[2])
        self.positions, self.checkpoint = positions, checkpoint
        dim = size.hidden
        self.rope = RotaryEmbedding2d(dim // size.heads) if positions == "rope" else None

        self.embed_patches = nn.Linear(shape[0] * patch * patch, dim)
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.time_embed = TimeEmbedding(time_embed_dim, dim, time_scale)
        self.null_pooled = nn.Parameter(torch.zeros(dim))  # the pooled text of the empty caption
        self.pooled_embed = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(JointBlock(dim, size.heads, mlp_ratio, qk_norm, text_out=i < size.depth - 1)
                                    for i in range(size.depth))
        self.final = FinalLayer(dim, shape[0] * patch * patch)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's initialisation (Xavier-uniform linear maps, N(0, 0.02) time MLP, adaLN-Zero); token embeddings
        N(0, 1), the scale of the sin-cos positions added to them."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.embed_tokens.weight)
        with torch.no_grad():
            self.embed_tokens.weight[PAD].zero_()
        nn.init.normal_(self.null_pooled, std=0.02)
        for layer in self.time_embed.linears:
            nn.init.normal_(layer.weight, std=0.02)
        for block in self.blocks:
            for stream in (block.image, block.text):
                nn.init.zeros_(stream.modulation[-1].weight)
                nn.init.zeros_(stream.modulation[-1].bias)
        for p in (*self.final.modulation.parameters(), *self.final.linear.parameters()):
            nn.init.zeros_(p)

    def _grid(self, height: int, width: int) -> tuple[int, int]:
        if height % self.patch or width % self.patch:
            raise ValueError(f"MMDiT with patch size {self.patch} needs a height and width divisible by "
                             f"{self.patch}, got {height}x{width}")
        return height // self.patch, width // self.patch

    @classmethod
    def from_config(cls, cfg: Any, shape: tuple[int, ...], time_scale: float, cond_size: int | None,
                    interval: bool = False) -> MMDiT:
        if len(shape) != 3:
            raise ValueError(f"model.net.name=mmdit needs images (C, H, W), the data has shape {shape}")
        if interval:
            raise ValueError("MeanFlow (model.objective=mean-flow) needs a backbone with an interval input; "
                             "model.net.name=mmdit has none yet")
        if cond_size is None:
            raise ValueError("model.net.name=mmdit needs the size of the captions' vocabulary")
        return cls(shape, cond_size, size=cfg.size, patch=cfg.patch, qk_norm=cfg.qk_norm, positions=cfg.positions,
                   checkpoint=cfg.checkpoint, time_embed_dim=cfg.time_embed_dim, time_scale=time_scale)

    @staticmethod
    def describe(cfg: Any) -> str:
        return (f"MMDiT-{cfg.size}/{cfg.patch} (image and caption streams), {cfg.positions} positions"
                f"{', QK-norm' if cfg.qk_norm else ''}{', checkpointed blocks' if cfg.checkpoint else ''}")

    def embed_text(self, text: Tensor | None, batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Caption tokens with positions (B, L, D), which are real (B, L) bool, and the pooled text (B, D).

        The pool is the mean over the real (non-:data:`PAD`) tokens only: the padding's embedding row is zero at
        initialisation (``padding_idx``), but a trained or loaded row need not be, and the output must not depend
        on how much padding a caption has.
        """
        if text is None:
            text = torch.full((batch, 0), PAD, dtype=torch.long, device=device)  # the empty caption
        if text.ndim != 2 or text.shape[0] != batch or text.dtype.is_floating_point or text.dtype == torch.bool:
            raise ValueError(f"text must be integer token ids of shape ({batch}, L), got {text.dtype} "
                             f"{tuple(text.shape)}")
        valid = text != PAD  # (B, L)
        emb = self.embed_tokens(text)  # (B, L, D)
        count = valid.sum(1, keepdim=True)  # (B, 1)
        total = emb.masked_fill(~valid[..., None], 0).sum(1)  # (B, D): the words' embeddings only
        mean = total / count.clamp(min=1).to(emb.dtype)  # (B, D)
        pooled = torch.where(count > 0, mean, self.null_pooled.to(emb.dtype))  # (B, D)
        order = torch.arange(text.shape[1], device=device)  # word positions 0..L-1; right padding keeps them
        tokens = emb + sincos_1d(order, emb.shape[-1]).to(emb.dtype)  # (B, L, D)
        return tokens, valid, pooled

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, interval: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.shape[0] or t.shape != x.shape[:1]:
            raise ValueError(f"MMDiT on {self.shape[0]} channels needs x (B, {self.shape[0]}, H, W) and t (B,), "
                             f"got {tuple(x.shape)} and {tuple(t.shape)}")
        if interval is not None:
            raise ValueError("an interval t - r was given to an MMDiT, which has no interval input (MeanFlow) yet")
        height, width = x.shape[-2:]
        h, w = self._grid(height, width)
        words, valid, pooled = self.embed_text(cond, x.shape[0], x.device)  # (B, L, D), (B, L), (B, D)
        c = self.time_embed(t) + self.pooled_embed(pooled)  # (B, D)
        tokens = self.embed_patches(patchify(x, self.patch))  # (B, h w, D)
        pos = grid_positions(h, w, self.reference, device=x.device)  # (h w, 2)
        rotation = self.rope(pos) if self.rope is not None else None
        if self.positions == "sincos":
            tokens = tokens + sincos_2d(pos, tokens.shape[-1]).to(tokens.dtype)  # (B, h w, D)
        image_keys = torch.ones(valid.shape[0], tokens.shape[1], dtype=torch.bool, device=x.device)
        mask = torch.cat([image_keys, valid], 1)[:, None, None, :]  # (B, 1, 1, h w + L): True = a real key
        for block in self.blocks:
            if self.checkpoint and self.training and torch.is_grad_enabled():
                tokens, words = checkpoint(block, tokens, words, c, rotation, mask, use_reentrant=False)
            else:
                tokens, words = block(tokens, words, c, rotation, mask)  # (B, h w, D), (B, L, D)
        return unpatchify(self.final(tokens, c), self.patch, height, width)  # (B, C, H, W)


__all__ = ["PAD", "JointBlock", "MMDiT", "Stream"]
