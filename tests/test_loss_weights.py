"""Every loss weighting against its formula written out here, never against the code under test.

The weights are stated in the x0 error's units and converted to the target's by ``k^2``, where
``|x0 error| = k |prediction error|``; the closed forms below are the papers' own:

- ``none``: 1 in the target's units (flow matching, DDPM's simple loss).
- ``min-snr`` (Hang et al., 2023, arXiv:2303.09556, eq. 9 and Sec. 3.4): ``min(SNR, 5)`` on x0,
  ``min(SNR, 5) / SNR`` on eps, ``min(SNR, 5) / (SNR + 1)`` on v (VP path), with ``SNR = alpha^2 / sigma^2``.
- ``edm`` (Karras et al., 2022, Table 1): ``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``
  on x0, ``sigma = sigma_t / alpha_t``; on eps ``x0 = (x_t - sigma_t eps) / alpha_t`` gives ``k = sigma``.
- the linear path's velocity ``eps - x0`` at ``x_t = (1 - t) x0 + t eps``: ``x0 = x_t - t v``, so ``k = t``.
"""

import math

import pytest
import torch
from torch import nn

from flowforge.models import ContinuousFlow, Paired
from flowforge.models.objectives import Regression
from flowforge.paths import LinearPath, VPPath

T = torch.tensor([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98], dtype=torch.float64)
GAMMA, SIGMA_DATA = 5.0, 0.5


def vp_alpha_sigma(t):
    """VP linear schedule, written out (Song et al., 2021, eq. 33): ``alpha = exp(-(beta_d t^2 / 2 + beta_min t) / 2)``."""
    alpha = torch.exp(-0.5 * (19.9 * t**2 / 2 + 0.1 * t))
    return alpha, torch.sqrt(1 - alpha**2)


def linear_alpha_sigma(t):
    return 1 - t, t


def expected(path, target, weighting, t):
    alpha, sigma = (vp_alpha_sigma if path == "vp" else linear_alpha_sigma)(t)
    snr = alpha**2 / sigma**2
    if weighting == "none":
        return torch.ones_like(t)
    if weighting == "min-snr":
        return {"x0": torch.clamp(snr, max=GAMMA), "eps": torch.clamp(snr, max=GAMMA) / snr,
                "v": torch.clamp(snr, max=GAMMA) / (snr + 1), "velocity": torch.clamp(snr, max=GAMMA) * t**2}[target]
    s = sigma / alpha  # EDM's noise level
    lam = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
    return {"x0": lam, "eps": lam * s**2, "velocity": lam * t**2}[target]


CASES = [("vp", "eps", "none"), ("linear", "velocity", "none"),
         ("vp", "x0", "min-snr"), ("vp", "eps", "min-snr"), ("vp", "v", "min-snr"), ("linear", "velocity", "min-snr"),
         ("linear", "x0", "min-snr"),
         ("vp", "x0", "edm"), ("linear", "x0", "edm"), ("vp", "eps", "edm"), ("linear", "velocity", "edm")]
PATHS = {"vp": VPPath, "linear": LinearPath}


class Zero(nn.Module):
    """A network that predicts 0: its squared error is the target's own square."""

    def forward(self, x, t):
        return torch.zeros_like(x)


class FixedTime:
    """A time sampler that hands the loss the times it is told."""

    def __init__(self, t):
        self.t = t

    def sample(self, rng, path, like):
        return self.t.to(like)


def model_for(path, target, weighting, t=T):
    return ContinuousFlow(PATHS[path](), Zero(), (3,), target=target,
                          objective=Regression(FixedTime(t), weighting=weighting))


def weight(model, t):
    """The weight the model trains with at times ``t`` (B,), through its public method."""
    return model.loss_weight(t, model.path.coefficients(t))


def test_the_paths_here_are_the_libraries():
    """The hand-written schedules above are the ones the library's paths use (else the cases below test nothing)."""
    for name, fn in (("vp", vp_alpha_sigma), ("linear", linear_alpha_sigma)):
        c, (alpha, sigma) = PATHS[name]().coefficients(T), fn(T)
        torch.testing.assert_close(c.alpha, alpha, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(c.sigma, sigma, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path,target,weighting", CASES)
def test_weight_is_its_formula(path, target, weighting):
    model = model_for(path, target, weighting)
    torch.testing.assert_close(weight(model, T).double().flatten(), expected(path, target, weighting, T),
                               rtol=1e-9, atol=0)


@pytest.mark.parametrize("path,target,weighting", CASES)
def test_loss_applies_the_weight(path, target, weighting):
    """The training loss of a zero network on paired noise at fixed times: ``mean_b w(t_b) mean_d y_b^2``."""
    torch.set_default_dtype(torch.float64)
    try:
        gen = torch.Generator().manual_seed(0)
        x0, eps = torch.randn(len(T), 3, generator=gen), torch.randn(len(T), 3, generator=gen)
        loss = model_for(path, target, weighting).loss(Paired(x0, eps))
        alpha, sigma = (vp_alpha_sigma if path == "vp" else linear_alpha_sigma)(T)
        y = {"x0": x0, "eps": eps, "velocity": eps - x0,
             "v": alpha[:, None] * eps - sigma[:, None] * x0}[target]  # v = alpha eps - sigma x0 (Salimans & Ho)
        want = (expected(path, target, weighting, T) * y.square().mean(1)).mean()
        assert loss.item() == pytest.approx(want.item(), rel=1e-6), (path, target, weighting)
    finally:
        torch.set_default_dtype(torch.float32)


def test_min_snr_clips_only_above_gamma():
    """min(SNR, 5): the weight equals SNR where SNR < 5 and 5 where SNR > 5 (a min / max slip fails both)."""
    model = model_for("vp", "x0", "min-snr")
    alpha, sigma = vp_alpha_sigma(T)
    snr = alpha**2 / sigma**2
    w = weight(model, T).double().flatten()
    assert (snr > GAMMA).any() and (snr < GAMMA).any()
    torch.testing.assert_close(w[snr > GAMMA], torch.full_like(w[snr > GAMMA], GAMMA))
    torch.testing.assert_close(w[snr < GAMMA], snr[snr < GAMMA])


def test_preconditioned_model_weighs_by_edm_lambda():
    """With EDM's preconditioning the model predicts x0 and is weighted by lambda(sigma), whatever it was told."""
    model = ContinuousFlow(VPPath(), Zero(), (3,), target="eps", objective=Regression(weighting="none"),
                           precond=SIGMA_DATA)
    torch.testing.assert_close(weight(model, T).double().flatten(), expected("vp", "x0", "edm", T), rtol=1e-9, atol=0)
    s = 0.7
    assert float(expected("linear", "x0", "edm", torch.tensor([s / (1 + s)], dtype=torch.float64))) == \
        pytest.approx((s**2 + 0.25) / (s * 0.5) ** 2)
    assert math.isclose(float(expected("vp", "eps", "min-snr", torch.tensor([0.9], dtype=torch.float64))), 1.0)


def test_mean_flow_adaptive_weights_are_their_formulas():
    """MeanFlow (Geng et al., 2025, Sec. 4.3): ``sg(w) ||Delta||^2`` with ``w = 1 / (||Delta||^2 + c)^p`` per example;
    ``apart`` weighs only the ``r != t`` pairs; ``group`` gives each group the weight of its mean error."""
    from flowforge.models.objectives import adaptive_loss

    p, c = 0.5, 1e-3
    err = torch.tensor([0.0, 0.5, 2.0, 8.0], dtype=torch.float64, requires_grad=True)
    apart = torch.tensor([False, True, False, True])
    e = err.detach()
    w = 1 / (e + c) ** p
    cases = {
        "example": w,
        "apart": torch.where(apart, w, torch.ones_like(w)),
        "group": torch.where(apart, 1 / (e[apart].mean() + c) ** p, 1 / (e[~apart].mean() + c) ** p),
    }
    for weighting, weight in cases.items():
        loss = adaptive_loss(err, p, c, apart, weighting)
        assert loss.item() == pytest.approx((weight * e).mean().item(), rel=1e-12), weighting
        (grad,) = torch.autograd.grad(loss, err)
        torch.testing.assert_close(grad, weight / len(e), rtol=1e-12, atol=0)  # the weight is a constant (sg)
