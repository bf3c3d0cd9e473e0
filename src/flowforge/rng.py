"""Randomness that does not depend on how a batch is split over processes."""

from __future__ import annotations

import torch
from torch import Tensor


def device_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: noise drawn where the network runs, with no copy from the
    host. On the CPU it gives the stream ``torch.Generator().manual_seed(seed)`` gives; a GPU's stream is another,
    so a seed gives the same draws again on the device kind it ran on, not across kinds."""
    return torch.Generator(device=device).manual_seed(seed)


class BatchRandom:
    """Draws for rows ``[start, stop)`` of a global batch of ``global_size`` examples.

    Each call draws the numbers of the *whole* global batch from ``generator``
    and keeps this process's rows, so example ``i`` of a global batch gets the
    same noise whether the batch runs in one process or is split over several.
    The extra draws cost a few microseconds against a network's forward pass;
    in exchange a multi-process run reproduces the single-process run.

    ``BatchRandom.local(n)`` is the single-process case on torch's global RNG.
    """

    def __init__(self, generator: torch.Generator | None, global_size: int, start: int, stop: int):
        if not 0 <= start < stop <= global_size:
            raise ValueError(f"rows [{start}, {stop}) are not inside a batch of {global_size}")
        self.generator, self.global_size, self.start, self.stop = generator, global_size, start, stop

    @classmethod
    def local(cls, n: int) -> "BatchRandom":
        return cls(None, n, 0, n)

    @property
    def size(self) -> int:
        return self.stop - self.start

    def _draw(self, fn, shape: tuple[int, ...], like: Tensor | None) -> Tensor:
        gen_device = self.generator.device if self.generator is not None else torch.device("cpu")
        out = fn((self.global_size, *shape), generator=self.generator, device=gen_device)[self.start:self.stop]
        if like is not None:
            out = out.to(device=like.device, dtype=like.dtype)
        return out

    def randn(self, shape: tuple[int, ...] = (), like: Tensor | None = None) -> Tensor:
        """Standard normal draws of per-example ``shape``: (size, *shape)."""
        return self._draw(torch.randn, tuple(shape), like)

    def rand(self, shape: tuple[int, ...] = (), like: Tensor | None = None) -> Tensor:
        """Uniform [0, 1) draws of per-example ``shape``: (size, *shape)."""
        return self._draw(torch.rand, tuple(shape), like)
