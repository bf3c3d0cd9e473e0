"""Invertible layers: round trips, log-dets against autograd Jacobians, and bad input (float64, seeded)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from flowforge.transforms import (ActNorm, AdditiveCoupling, AffineCoupling, Compose, FactorOut, InvertibleConv1x1,
                                  Logit, Permutation, Reverse, Scaling, Squeeze, StandardGaussian, StandardLogistic,
                                  Unsqueeze, channel_mask, checkerboard_mask, half_mask)
from _float64 import float64_seeded  # noqa: F401  (autouse: float64, seeded)

VECTOR = (3, 6)  # (B, D)
IMAGE = (2, 4, 4, 4)  # (B, C, H, W)




# ---------------------------------------------------------------- tiny conditioners with random weights

def mlp(dim: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, out))


def cnn(channels: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, out, 3, padding=1))


def perturbed(layer: nn.Module, scale: float = 0.3) -> nn.Module:
    """Move every parameter off its initial value: zero-init scales/shifts would make the checks vacuous."""
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn_like(p))
    return layer


def initialised_actnorm(shape: tuple[int, ...]) -> ActNorm:
    layer = ActNorm(shape[1])
    layer(3 + 2 * torch.randn(8, *shape[1:]))  # data-dependent init on a warm-up batch
    return layer


def unit_interval(shape):  # inputs of Logit
    return 0.02 + 0.96 * torch.rand(shape)


def logit_image(shape):  # the image of [0, 1] under Logit(0.05), so inverse outputs stay in [0, 1]
    p = 0.05 + 0.9 * torch.rand(shape)
    return torch.log(p) - torch.log1p(-p)


# (id, event shape kind, constructor, sampler of forward inputs or None for N(0, 1), sampler of inverse inputs)
CASES = [
    ("additive-vec", "vec", lambda: AdditiveCoupling(half_mask(6, 0), mlp(6, 6)), None, None),
    ("additive-vec-interleaved", "vec", lambda: AdditiveCoupling(half_mask(6, 1, interleave=True), mlp(6, 6)),
     None, None),
    ("affine-tanh-vec", "vec", lambda: perturbed(AffineCoupling(half_mask(6, 1), mlp(6, 12), "tanh")), None, None),
    ("affine-sigmoid-vec", "vec", lambda: AffineCoupling(half_mask(6, 0), mlp(6, 12), "sigmoid"), None, None),
    ("scaling-vec", "vec", lambda: perturbed(Scaling((6,))), None, None),
    ("actnorm-vec", "vec", lambda: perturbed(initialised_actnorm(VECTOR)), None, None),
    ("conv1x1-vec", "vec", lambda: perturbed(InvertibleConv1x1(6, seed=2)), None, None),
    ("reverse-vec", "vec", lambda: Reverse(), None, None),
    ("permutation-vec", "vec", lambda: Permutation(6, seed=1), None, None),
    ("logit-vec", "vec", lambda: Logit(0.05), unit_interval, logit_image),
    ("factor-out-vec", "vec", lambda: FactorOut(AffineCoupling(half_mask(3, 0), mlp(3, 6))), None, None),
    ("factor-out-keep-vec", "vec", lambda: FactorOut(perturbed(InvertibleConv1x1(4)), keep=2), None, None),
    ("glow-step-vec", "vec", lambda: Compose(perturbed(initialised_actnorm(VECTOR)), perturbed(InvertibleConv1x1(6)),
                                             AffineCoupling(half_mask(6, 0), mlp(6, 12), "sigmoid")), None, None),
    ("additive-checker", "img", lambda: AdditiveCoupling(checkerboard_mask((4, 4, 4), 0), cnn(4, 4)), None, None),
    ("affine-checker", "img", lambda: perturbed(AffineCoupling(checkerboard_mask((4, 4, 4), 1), cnn(4, 8))),
     None, None),
    ("affine-channel", "img", lambda: AffineCoupling(channel_mask((4, 4, 4), 0), cnn(4, 8), "sigmoid"), None, None),
    ("scaling-img", "img", lambda: perturbed(Scaling((4, 4, 4))), None, None),
    ("actnorm-img", "img", lambda: perturbed(initialised_actnorm(IMAGE)), None, None),
    ("conv1x1-img", "img", lambda: perturbed(InvertibleConv1x1(4)), None, None),
    ("squeeze", "img", lambda: Squeeze(), None, None),
    ("unsqueeze", "img", lambda: Unsqueeze(), None, None),
    ("reverse-img", "img", lambda: Reverse(), None, None),
    ("permutation-img", "img", lambda: Permutation(4, seed=5), None, None),
    ("logit-img", "img", lambda: Logit(0.05), unit_interval, logit_image),
    ("factor-out-multiscale", "img",
     lambda: FactorOut(Compose(Squeeze(), AffineCoupling(channel_mask((8, 2, 2), 1), cnn(8, 16)), Unsqueeze())),
     None, None),
    ("realnvp-scale", "img",
     lambda: Compose(perturbed(AffineCoupling(checkerboard_mask((4, 4, 4), 0), cnn(4, 8))), Squeeze(),
                     AffineCoupling(channel_mask((16, 2, 2), 1), cnn(16, 32)),
                     FactorOut(Scaling((8, 2, 2))), Unsqueeze()), None, None),
]
IDS = [c[0] for c in CASES]


def build(case):
    _, kind, make, x_sampler, y_sampler = case
    layer = make()
    shape = VECTOR if kind == "vec" else IMAGE
    x = (x_sampler or torch.randn)(shape)
    if y_sampler is not None:
        y = y_sampler(shape)
    else:
        with torch.no_grad():
            y = torch.randn_like(layer(x)[0])  # of the output's shape (Squeeze changes it)
    return layer, x, y


def jacobian_logdets(f, x: torch.Tensor) -> torch.Tensor:
    """``log|det df/dx|`` per example from the autograd Jacobian of ``f`` on that example alone."""
    out = []
    for xi in x:
        jac = jacobian(lambda v: f(v.unsqueeze(0))[0].flatten(), xi)  # (n_out, *event)
        jac = jac.reshape(jac.shape[0], -1)
        assert jac.shape[0] == jac.shape[1]
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign != 0
        out.append(logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_round_trips(case):
    layer, x, y = build(case)
    z, _ = layer(x)
    assert z.shape[0] == x.shape[0] and z.numel() == x.numel()
    torch.testing.assert_close(layer.inverse(z)[0], x, atol=1e-10, rtol=0)
    x_back, _ = layer.inverse(y)
    torch.testing.assert_close(layer(x_back)[0], y, atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logdet_matches_autograd_jacobian(case):
    layer, x, y = build(case)
    z, logdet = layer(x)
    assert logdet.shape == (x.shape[0],)
    torch.testing.assert_close(logdet, jacobian_logdets(layer, x), atol=1e-9, rtol=1e-9)
    _, inv_logdet = layer.inverse(y)
    assert inv_logdet.shape == (y.shape[0],)
    torch.testing.assert_close(inv_logdet, jacobian_logdets(layer.inverse, y), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_inverse_logdets_cancel(case):
    layer, x, _ = build(case)
    z, logdet = layer(x)
    _, inv_logdet = layer.inverse(z)
    torch.testing.assert_close(logdet + inv_logdet, torch.zeros_like(logdet), atol=1e-10, rtol=0)


# ---------------------------------------------------------------- layer-specific properties

def test_couplings_are_not_trivial():
    x = torch.randn(VECTOR)
    for layer in (AdditiveCoupling(half_mask(6, 0), mlp(6, 6)), AffineCoupling(half_mask(6, 0), mlp(6, 12))):
        y, logdet = layer(x)
        assert torch.equal(y[:, :3], x[:, :3])  # identity part, bit for bit
        assert (y[:, 3:] - x[:, 3:]).abs().min() > 1e-6  # transformed part moved
    assert logdet.abs().min() > 1e-6  # the affine one changes volume


@pytest.mark.parametrize("kind", ["vec", "img"])
def test_additive_coupling_is_volume_preserving(kind):
    if kind == "vec":
        layer, x = AdditiveCoupling(half_mask(6, 1), mlp(6, 6)), torch.randn(VECTOR)
    else:
        layer, x = AdditiveCoupling(checkerboard_mask((4, 4, 4), 0), cnn(4, 4)), torch.randn(IMAGE)
    y, logdet = layer(x)
    assert torch.equal(logdet, torch.zeros(x.shape[0]))
    assert torch.equal(layer.inverse(y)[1], torch.zeros(x.shape[0]))


@pytest.mark.parametrize("shape", [VECTOR, IMAGE], ids=["vec", "img"])
def test_actnorm_first_batch_is_standardised(shape):
    layer = ActNorm(shape[1])
    x = 4 + 3 * torch.randn(shape[0] * 10, *shape[1:])
    y, logdet = layer(x)
    dims = [0] + list(range(2, y.dim()))
    torch.testing.assert_close(y.mean(dims), torch.zeros(shape[1]), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.var(dims, unbiased=False), torch.ones(shape[1]), atol=1e-5, rtol=0)
    assert int(layer.initialized) == 1
    spatial = math.prod(shape[2:])
    torch.testing.assert_close(logdet, (spatial * layer.log_scale.sum()).expand(x.shape[0]))
    # The second batch does not re-initialise.
    bias = layer.bias.detach().clone()
    layer(torch.randn(x.shape))
    assert torch.equal(layer.bias, bias)


def test_actnorm_initialisation_survives_state_dict():
    layer = ActNorm(4)
    layer(5 + 2 * torch.randn(IMAGE))
    fresh = ActNorm(4)
    fresh.load_state_dict(layer.state_dict())
    assert int(fresh.initialized) == 1
    x = torch.randn(IMAGE)  # different statistics: a re-initialisation would change the output
    torch.testing.assert_close(fresh(x)[0], layer(x)[0])
    torch.testing.assert_close(fresh.bias, layer.bias)


def test_actnorm_does_not_initialise_in_eval_mode_or_on_inverse():
    layer = ActNorm(6).eval()
    x = 3 + torch.randn(VECTOR)
    assert torch.equal(layer(x)[0], x)
    layer.train()
    assert torch.equal(layer.inverse(x)[0], x)
    assert int(layer.initialized) == 0


def test_actnorm_pools_initialisation_statistics_over_processes():
    """With torch.distributed up, the init statistics go through all_reduce (here a 1-process group)."""
    import torch.distributed as dist
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("needs torch.distributed and no process group already running")
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        layer = ActNorm(4)
        y, _ = layer(1 + 2 * torch.randn(IMAGE))
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(4), atol=1e-10, rtol=0)


def test_actnorm_refuses_to_initialise_on_one_value_per_channel():
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        ActNorm(6)(torch.randn(1, 6))


@pytest.mark.parametrize("shape", [VECTOR, IMAGE], ids=["vec", "img"])
def test_scaling_data_init_standardises_the_first_batch_and_stays_exact(shape):
    """NICE's scaling with init="data": the first training batch comes out with the target std in every
    dimension (spreads from 1e-3 to 5, as MNIST's background and stroke pixels differ), the layer stays exactly
    invertible, its log-det equals the autograd Jacobian's, and later batches do not re-initialise it."""
    spread = torch.logspace(-3, math.log10(5), math.prod(shape[1:])).reshape(shape[1:])
    x = 0.2 + spread * torch.randn(shape[0] * 40, *shape[1:])
    layer = Scaling(shape[1:], init="data", target_std=math.pi / math.sqrt(3))
    assert int(layer.initialized) == 0
    y, logdet = layer(x)
    assert int(layer.initialized) == 1
    torch.testing.assert_close(y.std(0, unbiased=False), torch.full(shape[1:], math.pi / math.sqrt(3)),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.inverse(y)[0], x, atol=1e-12, rtol=1e-12)
    x0 = x[:1]
    jac = jacobian(lambda v: layer(v.reshape(x0.shape))[0].flatten(), x0.flatten())
    torch.testing.assert_close(logdet[:1], torch.linalg.slogdet(jac)[1].reshape(1))
    s = layer.log_scale.detach().clone()
    layer(torch.randn(x.shape))
    assert torch.equal(layer.log_scale, s)


def test_scaling_data_init_survives_state_dict_and_old_state_dicts_load_as_initialised():
    layer = Scaling((6,), init="data")
    layer(torch.randn(50, 6) * 3)
    fresh = Scaling((6,), init="data")
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(VECTOR)  # other statistics: a re-initialisation would change the output
    torch.testing.assert_close(fresh(x)[0], layer(x)[0])
    old = {"log_scale": layer.log_scale.detach().clone()}  # saved before the buffer existed: a trained layer
    fresh = Scaling((6,), init="data")
    fresh.load_state_dict(old)
    assert int(fresh.initialized) == 1
    torch.testing.assert_close(fresh(x)[0], layer(x)[0])


def test_scaling_zero_init_is_the_papers():
    layer = Scaling((6,))
    x = 3 * torch.randn(20, 6)
    assert torch.equal(layer(x)[0], x)
    with pytest.raises(ValueError, match="at least 2 examples"):
        Scaling((6,), init="data")(torch.randn(1, 6))


@pytest.mark.parametrize("shape", [VECTOR, IMAGE], ids=["vec", "img"])
def test_conv1x1_logdet_is_slogdet_of_weight_times_spatial_size(shape):
    layer = perturbed(InvertibleConv1x1(shape[1], seed=3))
    _, logdet = layer(torch.randn(shape))
    sign, logabsdet = torch.linalg.slogdet(layer.weight())
    spatial = math.prod(shape[2:])
    torch.testing.assert_close(logdet, (spatial * logabsdet).expand(shape[0]), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(layer.inverse_weight() @ layer.weight(), torch.eye(shape[1]), atol=1e-12, rtol=0)


def test_conv1x1_starts_from_a_seeded_rotation():
    w = InvertibleConv1x1(5, seed=7).weight()
    torch.testing.assert_close(w @ w.T, torch.eye(5), atol=1e-12, rtol=0)
    assert torch.equal(w, InvertibleConv1x1(5, seed=7).weight())
    assert not torch.allclose(w, InvertibleConv1x1(5, seed=8).weight())
    assert InvertibleConv1x1(5).weight().dtype == torch.float64


def test_conv1x1_on_images_is_a_per_pixel_matrix_product():
    layer = perturbed(InvertibleConv1x1(4))
    x = torch.randn(IMAGE)
    expected = torch.einsum("ij,bjhw->bihw", layer.weight(), x)
    torch.testing.assert_close(layer(x)[0], expected)


def test_squeeze_layout_and_odd_sizes():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2x2 block
    for bad in [(1, 1, 3, 4), (1, 1, 4, 5)]:
        with pytest.raises(ValueError, match="even height and width"):
            Squeeze()(torch.zeros(bad))
    with pytest.raises(ValueError, match="divisible by 4"):
        Unsqueeze()(torch.zeros(1, 3, 2, 2))


def test_logit_rejects_out_of_range_and_non_finite_input():
    layer = Logit(0.05)
    with pytest.raises(ValueError, match=r"observed min -0\.5, max 0\.75"):
        layer(torch.tensor([[-0.5, 0.25, 0.75]]))
    with pytest.raises(ValueError, match=r"max 1\.5"):
        layer(torch.tensor([[0.0, 1.5]]))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="non-finite"):
            layer(torch.tensor([[0.5, bad]]))
    with pytest.raises(ValueError, match="open interval"):
        Logit(0.0)(torch.tensor([[0.0, 0.5]]))
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.5)
    y, logdet = layer(torch.tensor([[0.0, 1.0]]))  # the closed interval is fine
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()


def test_factor_out_passes_the_kept_channels_through():
    layer = FactorOut(perturbed(Scaling((1, 4, 4))), keep=3)
    x = torch.randn(IMAGE)
    y, logdet = layer(x)
    assert torch.equal(y[:, :3], x[:, :3])
    torch.testing.assert_close(logdet, layer.inner.log_scale.sum().expand(2))


def test_compose_order_and_iterable():
    scale, rev = perturbed(Scaling((3,))), Reverse()
    x = torch.randn(4, 3)
    y, logdet = Compose([scale, rev])(x)  # an iterable works too
    torch.testing.assert_close(y, (x * scale.log_scale.exp()).flip(1))
    torch.testing.assert_close(logdet, scale.log_scale.sum().expand(4))
    identity = Compose()
    assert torch.equal(identity(x)[0], x) and torch.equal(identity.inverse(x)[1], torch.zeros(4))
    with pytest.raises(TypeError):
        Compose(scale, "not a transform")


def test_masks():
    board = checkerboard_mask((2, 3, 3), 0)
    assert board.shape == (2, 3, 3) and board.dtype == torch.float64
    assert torch.equal(board[0], board[1]) and board[0, 0, 0] == 1 and board[0, 0, 1] == 0
    assert torch.equal(board + checkerboard_mask((2, 3, 3), 1), torch.ones(2, 3, 3))
    ch = channel_mask((4, 2, 2), 0)
    assert ch[:2].eq(1).all() and ch[2:].eq(0).all()
    assert torch.equal(ch + channel_mask((4, 2, 2), 1), torch.ones(4, 2, 2))
    assert half_mask(6, 0).tolist() == [1, 1, 1, 0, 0, 0]
    assert half_mask(6, 1).tolist() == [0, 0, 0, 1, 1, 1]
    assert half_mask(6, 0, interleave=True).tolist() == [1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match="parity"):
        half_mask(6, 2)
    with pytest.raises(ValueError, match="at least 2"):
        half_mask(1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        checkerboard_mask((4, 4), 0)


# ---------------------------------------------------------------- bad input

BAD_INPUT = [
    ("additive: input shape != mask shape", lambda: AdditiveCoupling(half_mask(6), mlp(6, 6)), (3, 5), "mask shape"),
    ("affine: image of the wrong size", lambda: AffineCoupling(checkerboard_mask((4, 4, 4)), cnn(4, 8)), (2, 4, 2, 2),
     "mask shape"),
    ("affine: conditioner without twice the channels", lambda: AffineCoupling(half_mask(6), mlp(6, 6)), (3, 6),
     "twice the input's channels"),
    ("additive: conditioner of the wrong size", lambda: AdditiveCoupling(half_mask(6), mlp(6, 12)), (3, 6),
     "conditioner must return"),
    ("scaling", lambda: Scaling((6,)), (3, 4), r"Scaling expects input of shape \(batch, 6\)"),
    ("actnorm: channel count", lambda: ActNorm(4), (2, 3, 4, 4), "built for 4 channels"),
    ("actnorm: 3-D input", lambda: ActNorm(4), (2, 4, 4), "expects input of shape"),
    ("conv1x1: channel count", lambda: InvertibleConv1x1(4), (3, 6), "built for 4 channels"),
    ("permutation: channel count", lambda: Permutation(4), (3, 6), "built for 4 channels"),
    ("squeeze: vectors", lambda: Squeeze(), (3, 6), r"\(batch, C, H, W\)"),
    ("factor-out: nothing left", lambda: FactorOut(Scaling((0,)), keep=6), (3, 6), "at least one channel"),
    ("factor-out: inner changes shape", lambda: FactorOut(Squeeze()), (2, 4, 4, 4), "Unsqueeze"),
    ("logit: no batch dim", lambda: Logit(), (6,), "batch"),
]


@pytest.mark.parametrize("make, shape, message", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_raises_clear_errors(make, shape, message):
    layer = make()
    with pytest.raises(ValueError, match=message):
        layer(torch.rand(shape))


def test_bad_masks_and_options():
    with pytest.raises(ValueError, match="0s and 1s"):
        AdditiveCoupling(torch.tensor([0.0, 0.5, 1.0]), mlp(3, 3))
    with pytest.raises(ValueError, match="all 1s"):
        AffineCoupling(torch.ones(4), mlp(4, 8))
    with pytest.raises(ValueError, match="scale_fn"):
        AffineCoupling(half_mask(4), mlp(4, 8), scale_fn="exp")


# ---------------------------------------------------------------- priors

def logistic_reference() -> torch.distributions.Distribution:
    from torch.distributions import SigmoidTransform, TransformedDistribution, Uniform
    return TransformedDistribution(Uniform(torch.tensor(0.0), torch.tensor(1.0)), [SigmoidTransform().inv])


@pytest.mark.parametrize("prior, reference", [
    (StandardGaussian(), lambda: torch.distributions.Normal(0.0, 1.0)),
    (StandardLogistic(), logistic_reference),
], ids=["gaussian", "logistic"])
def test_prior_log_prob_matches_torch_distributions_and_integrates_to_one(prior, reference):
    z = 3 * torch.randn(5, 2, 3, 3)
    expected = reference().log_prob(z).sum((1, 2, 3))
    torch.testing.assert_close(prior.log_prob(z), expected, atol=1e-10, rtol=1e-10)
    assert torch.isfinite(prior.log_prob(torch.tensor([[1e4, -1e4]]))).all()
    grid = torch.linspace(-40, 40, 40001).unsqueeze(1)  # (N, 1): N examples of one dimension
    mass = torch.trapezoid(prior.log_prob(grid).exp(), grid.squeeze(1))
    assert abs(mass.item() - 1) < 1e-6


@pytest.mark.parametrize("prior, unit_std", [(StandardGaussian(), 1.0), (StandardLogistic(), math.pi / math.sqrt(3))],
                         ids=["gaussian", "logistic"])
def test_prior_sampling_shape_temperature_and_determinism(prior, unit_std):
    def draw(temperature=1.0):
        return prior.sample((20000, 2), generator=torch.Generator().manual_seed(1), temperature=temperature)

    z = draw()
    assert z.shape == (20000, 2) and z.dtype == torch.float64 and torch.isfinite(z).all()
    assert torch.equal(z, draw())
    assert abs(z.std().item() / unit_std - 1) < 0.03
    torch.testing.assert_close(draw(0.5), 0.5 * z)
    with pytest.raises(ValueError, match="temperature"):
        prior.sample((2, 2), temperature=0.0)
