"""Log-likelihood of a continuous normalizing flow: the instantaneous change of variables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class LikelihoodResult:
    x1: Tensor  # (batch, ...) the state at the noise end
    delta_log_p: Tensor  # (batch,) integral of the divergence, log p_0(x0) - log p_1(x1)
    nfe: int  # velocity evaluations (each with one vector-Jacobian product per probe or dimension)


def exact_divergence(velocity: Velocity, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``v(x, t)`` and its exact divergence ``sum_i d v_i / d x_i`` (batch,), one backward pass per dimension."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        flat = v.flatten(1)  # (B, D)
        div = torch.zeros(x.shape[0], dtype=v.dtype, device=x.device)
        for i in range(flat.shape[1]):
            (grad,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < flat.shape[1] - 1)
            div = div + grad.flatten(1)[:, i]
    return v.detach(), div.detach()


def hutchinson_divergence(velocity: Velocity, x: Tensor, t: Tensor, probes: Tensor) -> tuple[Tensor, Tensor]:
    """``v(x, t)`` and the Hutchinson estimate ``mean_k z_k^T (dv/dx) z_k`` (batch,).

    Unbiased for probes with ``E[z z^T] = I`` (Hutchinson, 1989; Grathwohl et
    al., 2019, arXiv:1810.01367): ``probes`` is (K, batch, ...), Rademacher.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        total = torch.zeros(x.shape[0], dtype=v.dtype, device=x.device)
        for k, z in enumerate(probes):
            (vjp,) = torch.autograd.grad(v, x, grad_outputs=z, retain_graph=k < len(probes) - 1)
            total = total + (vjp * z).flatten(1).sum(1)
    return v.detach(), (total / len(probes)).detach()


def rademacher(shape: tuple[int, ...], generator: torch.Generator | None = None, dtype=torch.float32) -> Tensor:
    """Independent +-1 entries with probability 1/2."""
    device = generator.device if generator is not None else None  # drawn on the generator's device
    return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1


@torch.no_grad()
def ode_likelihood(velocity: Velocity, x0: Tensor, t_end: float, *, divergence: Literal["exact", "hutchinson"] = "exact",
                   probes: int = 1, method: str = "dopri5", steps: int = 100, rtol: float = 1e-5, atol: float = 1e-5,
                   generator: torch.Generator | None = None) -> LikelihoodResult:
    """Integrate ``dx/dt = v`` with ``d log p / dt = -div v`` from the data (``t = 0``) to ``t_end``.

    The instantaneous change of variables (Chen et al., 2018, arXiv:1806.07366,
    Theorem 1) gives ``log p_0(x_0) = log p_1(x_1) + int_0^1 div v(x_t, t) dt``;
    this returns ``x_1`` and the integral, the caller adds the prior's
    ``log p_1(x_1)``. ``method`` is a torchdiffeq method (``dopri5`` adaptive
    with ``rtol``/``atol``; ``euler``, ``midpoint``, ``rk4`` with ``steps``
    fixed steps). For Hutchinson the same probes are used along the whole
    trajectory (FFJORD), so the estimate is that of one fixed random projection.
    """
    from .dopri5 import odeint_checked

    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    z = None
    if divergence == "hutchinson":
        z = rademacher((probes, *x0.shape), generator, x0.dtype).to(x0.device)
    nfe = 0

    def augmented(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        nonlocal nfe
        nfe += 1
        x = state[0]
        tb = t.to(x.dtype).expand(x.shape[0])
        v, div = exact_divergence(velocity, x, tb) if z is None else hutchinson_divergence(velocity, x, tb, z)
        return v, div

    ends = torch.tensor([0.0, t_end], dtype=torch.float64, device=x0.device)
    state = (x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device))
    options = {} if method == "dopri5" else {"step_size": t_end / steps}
    kwargs = {"rtol": rtol, "atol": atol} if method == "dopri5" else {}
    xs, integrals = odeint_checked(augmented, state, ends, method=method, options=options, **kwargs)
    return LikelihoodResult(x1=xs[-1], delta_log_p=integrals[-1], nfe=nfe)
