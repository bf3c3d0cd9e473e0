"""MADE and masked autoregressive layers: triangular Jacobians in every order, round trips, log-dets vs autograd."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.autograd.functional import jacobian

from flowforge.config import FlowConfig, ModelConfig
from flowforge.flows.density import layer_orders
from flowforge.models import build_model
from flowforge.nets import MADE
from flowforge.transforms import Inverted, MaskedAutoregressive, MonotonicAffine, RationalQuadratic, SplineShape
from _float64 import float64_seeded  # noqa: F401  (autouse: float64, seeded)

D = 4
MAPS = {"affine": MonotonicAffine(), "spline": RationalQuadratic(SplineShape(bins=5, bound=2.0))}


def layer(order, map_name: str = "affine", context: int = 0) -> MaskedAutoregressive:
    made = MADE(D, MAPS[map_name].params, hidden=12, layers=2, order=torch.tensor(order), context=context)
    with torch.no_grad():  # off the zero initialisation, so the checks see a non-trivial layer
        for p in made.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return MaskedAutoregressive(D, made, MAPS[map_name])


@pytest.mark.parametrize("order", list(itertools.permutations(range(1, D + 1))), ids=str)
def test_made_jacobian_is_triangular_in_its_order(order):
    """dz_i / dx_j = 0 unless x_j comes before x_i in the order (or j = i): checked from the autograd Jacobian."""
    f = layer(order)
    x = torch.randn(D)
    jac = jacobian(lambda v: f(v[None])[0][0], x)  # (D, D): [i, j] = dz_i / dx_j
    deg = torch.tensor(order)
    allowed = (deg[None, :] < deg[:, None]) | torch.eye(D, dtype=torch.bool)
    assert torch.all(jac[~allowed] == 0)
    assert torch.all(jac.diagonal() > 0)  # monotone in each feature
    ld = f(x[None])[1][0]
    assert torch.allclose(ld, torch.linalg.slogdet(jac).logabsdet, atol=1e-10, rtol=0)


@pytest.mark.parametrize("map_name", sorted(MAPS))
@pytest.mark.parametrize("context", [0, 2])
def test_autoregressive_round_trip_and_log_det(map_name, context):
    f = layer((2, 4, 1, 3), map_name, context)
    x = 2.5 * torch.randn(6, D)
    c = torch.randn(6, context) if context else None
    z, ld = f(x, c)
    x_back, ld_inv = f.inverse(z, c)
    # slopes reach the 1e-3 floor here, so inverting amplifies float64 rounding about 1e3-fold
    assert torch.allclose(x_back, x, atol=1e-8) and torch.allclose(ld + ld_inv, torch.zeros(6), atol=1e-8)
    g = Inverted(f)  # IAF: the same layer the other way round
    assert torch.allclose(g(z, c)[0], x, atol=1e-8) and torch.allclose(g.inverse(x, c)[0], z, atol=1e-12)
    for i in range(3):
        ci = c[i:i + 1] if c is not None else None
        jac = jacobian(lambda v: g(v[None], ci)[0][0], z[i])
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, g(z[i:i + 1], ci)[1][0], atol=1e-10, rtol=0)


def test_made_refuses_a_bad_order_and_a_missing_context():
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, 2, order=torch.tensor([1, 1, 2]))
    with pytest.raises(ValueError, match="context of size 2"):
        MADE(3, 2, context=2)(torch.zeros(1, 3))


def test_layer_orders():
    assert [o.tolist() for o in layer_orders(3, 2, "reversed")] == [[1, 2, 3], [3, 2, 1]]
    random = layer_orders(5, 4, "random", seed=1)
    assert all(sorted(o.tolist()) == [1, 2, 3, 4, 5] for o in random)
    assert random[0].tolist() == [1, 2, 3, 4, 5] and len({tuple(o.tolist()) for o in random}) > 1


@pytest.mark.parametrize("settings", [
    {"kind": "maf"}, {"kind": "maf", "direction": "iaf"}, {"kind": "maf", "elementwise": "spline", "order": "random"},
    {"kind": "nsf"}, {"kind": "nsf", "conditioner": "coupling"},
], ids=str)
def test_flow_presets_invert_and_start_at_the_prior(settings):
    kind = settings.pop("kind")
    model = build_model(ModelConfig(kind=kind, flow=FlowConfig(couplings=3, hidden=16, hidden_layers=2, **settings)),
                        {"shape": [D]})
    x = torch.randn(5, D)
    prior = -0.5 * (x * x).sum(1) - D / 2 * torch.log(torch.tensor(2 * torch.pi))
    assert torch.allclose(model.log_prob(x), prior, atol=1e-10)  # zero-initialised outputs: the identity
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z, _ = model(x)
    assert torch.allclose(model.inverse(z)[0], x, atol=1e-9)


@pytest.mark.parametrize("preset, extra", [
    ("configs/nsf-moons.yaml", {}),
    ("configs/maf-digits.yaml", {"data.name": "digits", "model.flow.hidden": 16, "train.batch_size": 50}),
])
def test_presets_train_and_evaluate_through_the_engine(tmp_path, tiny, preset, extra):
    import math

    from flowforge import evaluate, load, load_config
    from flowforge.train import train

    torch.set_default_dtype(torch.float32)
    overrides = [o for o in tiny(tmp_path / "run", **{"eval.n_samples": 200, **extra}) if not o.startswith("model.net")]
    if "digits" in preset:
        overrides = [o for o in overrides if not o.startswith("data.n_")]
    result = train(load_config(preset, overrides), progress=False)
    lk = evaluate(tmp_path / "run")["likelihood"]
    assert math.isfinite(lk["nll"]) and math.isfinite(lk["bits_per_dim"])
    assert ("matched_gaussian_nll" in lk) == ("moons" in preset)  # continuous points: the baseline's NLL beside
    assert load(tmp_path / "run").sample(3).shape == (3, *result.model.shape)
