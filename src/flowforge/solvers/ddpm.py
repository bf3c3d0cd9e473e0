"""DDPM's ancestral sampler."""

from __future__ import annotations

from .ddim import DDIM


class DDPMAncestral(DDIM):
    """Ho et al. (2020, arXiv:2006.11239, Algorithm 2): draw ``x_{i+1}`` from the posterior ``q(x_{i+1} | x_i, x0 = D)``.

    The posterior's variance is DDIM's at ``eta = 1`` (Song et al., 2021,
    arXiv:2010.02502, Section 4.1), on any grid, not only DDPM's 1000 steps.
    """

    name = "ddpm"
    order = 0

    def __init__(self) -> None:
        super().__init__(eta=1.0)
