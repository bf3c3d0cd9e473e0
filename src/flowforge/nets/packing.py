"""Packing without padding: the tokens of several images as one sequence, attention kept inside each image.

A batch of images of different resolutions has token sequences of different lengths. Padding them to the
longest spends compute on pad tokens (in every layer, not only in attention); *packing* concatenates them into
one sequence of ``L = sum_i L_i`` tokens instead, so every per-token layer (projections, MLPs, norms) runs on
real tokens only, and the attention is restricted to each image by a block-diagonal *document mask*
(Dehghani et al. 2023, NaViT, arXiv:2307.06304; Krell et al. 2021, arXiv:2107.02027).

:class:`DocumentMask` is that mask, built once per pack from the images' patch grids and read by every
attention layer through :func:`flowforge.nets.attention.attend`. It offers three exact kernels, none of which
holds an ``L x L`` score matrix:

- ``segments`` (default): the pack is cut into runs of consecutive images with the same token count; each run
  is a dense ``(n, heads, l, d)`` batch, a view of the packed tensor, given to the fused
  :func:`~torch.nn.functional.scaled_dot_product_attention` without a mask. A pack built from per-resolution
  groups has one run per resolution.
- ``jagged``: a nested jagged tensor (``torch.nested``, ``layout=torch.jagged``) over the image offsets, given
  to the same SDPA.
- ``flex``: FlexAttention (:func:`torch.nn.attention.flex_attention.flex_attention`) with a block mask built
  from the per-token image ids; compiled by ``torch.compile`` on first use. On CPU torch has no FlexAttention
  backward (torch 2.13), so it serves inference there.

``benchmarks/packing.py`` measured the three against padding on a CPU and chose ``segments``; its results file
gives the ratios.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

PACKED_ATTENTION = ("segments", "jagged", "flex")

_compiled_flex: Any = None  # torch.compile(flex_attention), made on first use


def _flex() -> Any:
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex


@dataclass(frozen=True, eq=False)
class DocumentMask:
    """Which tokens of a pack belong to which image: attention is allowed only within an image.

    Arguments:
        lengths: token count of each image, in pack order.
        image_ids: (L,) int64, the image of each token (``0..N-1``, non-decreasing).
        offsets: (N + 1,) int64, where each image's tokens start, and ``L`` at the end.
        runs: ``(start, n, length)`` of each maximal run of consecutive images of equal length.
        kernel: one of :data:`PACKED_ATTENTION`.
        block_mask: FlexAttention's block mask (``kernel="flex"`` only), built once here.

    Build one with :meth:`build`.
    """

    lengths: tuple[int, ...]
    image_ids: Tensor
    offsets: Tensor
    runs: tuple[tuple[int, int, int], ...]
    kernel: str = "segments"
    block_mask: Any = field(default=None, repr=False)

    @classmethod
    def build(cls, lengths: list[int] | tuple[int, ...], kernel: str = "segments",
              device: torch.device | str | None = None) -> DocumentMask:
        """The mask of a pack whose images have ``lengths`` tokens, in order.

        Example:
            >>> mask = DocumentMask.build([4, 4, 9])
            >>> mask.runs, mask.image_ids.tolist()
            (((0, 2, 4), (8, 1, 9)), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2])
        """
        if kernel not in PACKED_ATTENTION:
            raise ValueError(f"packed attention kernel {kernel!r} is not one of {', '.join(PACKED_ATTENTION)}")
        lengths = tuple(int(n) for n in lengths)
        if not lengths or min(lengths) < 1:
            raise ValueError(f"a pack needs at least one image, each of at least one token; got lengths {lengths}")
        counts = torch.tensor(lengths, device=device)
        image_ids = torch.repeat_interleave(torch.arange(len(lengths), device=device), counts)  # (L,)
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # (N + 1,)
        runs, start, i = [], 0, 0
        while i < len(lengths):
            j = i
            while j < len(lengths) and lengths[j] == lengths[i]:
                j += 1
            runs.append((start, j - i, lengths[i]))
            start, i = start + (j - i) * lengths[i], j
        block_mask = None
        if kernel == "flex":
            from torch.nn.attention.flex_attention import create_block_mask

            def same_image(b, h, q_idx, kv_idx):
                return image_ids[q_idx] == image_ids[kv_idx]

            total = int(offsets[-1])
            block_mask = create_block_mask(same_image, None, None, total, total, device=str(image_ids.device))
        return cls(lengths, image_ids, offsets, tuple(runs), kernel, block_mask)

    @property
    def num_images(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return sum(self.lengths)

    def by_image(self, fn: Callable[..., Tensor], x: Tensor, *rows: Tensor) -> Tensor:
        """``fn(x, *rows)`` with each image's row of every ``rows`` broadcast over that image's tokens.

        Run by run: the tokens of ``n`` consecutive images of ``l`` tokens are an ``(n, l, D)`` view and their
        rows ``(n, 1, k)``, so nothing of size ``L x k`` is built (adaLN's per-token shift, scale and gate
        would otherwise be, and kept for the backward pass, in every block).

        Shapes: ``x`` (1, L, D), ``rows`` (N, k) each -> (1, L, D') for ``fn`` mapping (n, l, D) to (n, l, D').
        """
        # split, not slicing: its backward concatenates the parts' gradients, where a slice's writes into zeros
        parts = x[0].split([n * length for _, n, length in self.runs])  # (n l, D) each
        row_parts = [r.split([n for _, n, _ in self.runs]) for r in rows]  # (n, k) each
        outs = []
        for i, (part, (_, n, length)) in enumerate(zip(parts, self.runs)):
            out = fn(part.view(n, length, part.shape[-1]), *(rp[i][:, None] for rp in row_parts))  # (n, l, D')
            outs.append(out.reshape(n * length, out.shape[-1]))
        return (outs[0] if len(outs) == 1 else torch.cat(outs))[None]  # (1, L, D')

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention within each image of the pack. Shapes: ``q``, ``k``, ``v`` (1, heads, L, d) -> (1, heads, L, d)."""
        if q.shape[0] != 1 or q.shape[2] != self.num_tokens:
            raise ValueError(f"packed attention needs (1, heads, {self.num_tokens}, d) for this pack, "
                             f"got {tuple(q.shape)}")
        if self.kernel == "segments":
            return self._segments(q, k, v)
        if self.kernel == "jagged":
            return self._jagged(q, k, v)
        return _flex()(q, k, v, block_mask=self.block_mask)  # (1, nh, L, d)

    def _segments(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        heads, dim = q.shape[1], q.shape[3]
        sizes = [n * length for _, n, length in self.runs]
        splits = [x[0].split(sizes, dim=1) for x in (q, k, v)]  # 3 x runs x (nh, n l, d); split: cheap backward
        outs = []
        for i, (_, n, length) in enumerate(self.runs):
            run = [parts[i].reshape(heads, n, length, dim).transpose(0, 1) for parts in splits]  # 3 x (n, nh, l, d)
            out = F.scaled_dot_product_attention(*run)  # (n, nh, l, d)
            outs.append(out.transpose(0, 1).reshape(heads, n * length, dim))  # (nh, n l, d)
        return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1))[None]  # (1, nh, L, d)

    def _jagged(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        offsets = self.offsets.to(q.device)
        nested = [torch.nested.nested_tensor_from_jagged(x[0].transpose(0, 1).contiguous(), offsets).transpose(1, 2)
                  for x in (q, k, v)]  # 3 x (N, nh, j, d), j jagged
        out = F.scaled_dot_product_attention(*nested)  # (N, nh, j, d)
        return out.transpose(1, 2).values().transpose(0, 1)[None]  # (1, nh, L, d)


__all__ = ["PACKED_ATTENTION", "DocumentMask"]
