"""Continuous-time flows: a path, a network and what the network predicts."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..paths import AffinePath
from ..rng import BatchRandom
from ..solvers import get_solver, uniform_grid
from ..protocol import GenerativeModel


class ContinuousFlow(GenerativeModel):
    """A velocity field ``v_theta(x, t)`` trained by conditional flow matching.

    The loss is the flow-matching regression (Lipman et al., 2023,
    arXiv:2210.02747, eq. 23; Liu et al., 2022, arXiv:2209.03003, eq. 1):

    .. math:: \\mathcal L = \\mathbb E_{t, x_0, \\varepsilon}
              \\lVert v_\\theta(x_t, t) - \\dot x_t \\rVert^2,
              \\quad t \\sim U[0, 1],

    averaged over dimensions. Sampling integrates ``dx/dt = v_theta`` from
    ``t = 1`` (Gaussian noise) to ``t = 0`` (data).

    Arguments:
        path: the noising path (:mod:`flowforge.paths`).
        net: a backbone ``net(x, t)`` returning a tensor of the shape of ``x``.
        shape: per-example data shape.
    """

    def __init__(self, path: AffinePath, net: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.path = path
        self.net = net
        self.shape = tuple(shape)

    def velocity(self, x: Tensor, t: Tensor) -> Tensor:
        """The learnt ``dx/dt`` at ``x`` (batch, *shape) and ``t`` (batch,)."""
        return self.net(x, t)

    def loss(self, x: Tensor, rng: BatchRandom | None = None) -> Tensor:
        self.check_batch(x)
        rng = rng or BatchRandom.local(x.shape[0])
        noise = rng.randn(self.shape, like=x)  # (B, *shape)
        t = rng.rand((), like=x)  # (B,)
        ps = self.path.sample(x, noise, t)
        pred = self.velocity(ps.x_t, t).float()  # float32 even under bf16 autocast
        return (pred - ps.dx_t.float()).square().flatten(1).mean(1).mean()

    @torch.no_grad()
    def sample(self, n: int, *, sampler: str = "euler", steps: int = 100,
               generator: torch.Generator | None = None, progress: bool = False) -> Tensor:
        """Integrate the learnt ODE from noise: ``n`` samples (n, *shape), with ``steps`` steps of ``sampler``."""
        device = next(self.parameters()).device
        x = self.path.prior_sample((n, *self.shape), generator=generator).to(device)
        result = get_solver(sampler).solve(self.velocity, x, uniform_grid(steps), progress=progress)
        return result.x
