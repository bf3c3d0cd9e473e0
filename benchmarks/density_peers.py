"""The density estimators of flowforge and its peers, built the way each library's documentation builds them.

Shared by ``benchmarks.density_vs_peers`` (unconditional NSF / MAF on the 2-D sets and digits) and
``benchmarks.sbi_vs_zuko`` (a conditional NSF). Every builder of :data:`BUILDERS` takes the data's dimension, the
context's (0 for none), the hidden width and the spline bound (one size for all: the same budget), and returns an
:class:`Entry` whose ``loss(x, c)`` is the training objective and ``nll(x, c)`` the mean negative log-likelihood in
nats per example. The builders of :data:`RECIPES` take only the dimension: each library's flow and optimiser as
its own README or example builds them ("as a user gets it"), with the source named in the entry's note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

TRANSFORMS, BINS = 3, 8  # zuko's NSF / MAF defaults: 3 transforms, 8 bins; every library gets the same


@dataclass
class Entry:
    name: str
    module: torch.nn.Module
    loss: Callable  # (x, c) -> scalar
    nll: Callable  # (x, c) -> mean NLL per example, nats
    note: str
    lr: float | None = None  # the recipe's Adam learning rate; None: the benchmark's --lr
    weight_decay: float = 0.0
    params: int = field(init=False)

    def __post_init__(self) -> None:
        self.params = sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def flowforge_entry(kind: str, dim: int, context: int, hidden: int, bound: float) -> Entry:
    from flowforge.config import FlowConfig
    from flowforge.flows import maf, nsf

    fc = FlowConfig(couplings=TRANSFORMS, hidden=hidden, hidden_layers=2, bins=BINS, tail_bound=bound)
    model = (nsf if kind == "nsf" else maf)(fc, {"shape": [dim], "context_dim": context})
    return Entry(f"flowforge-{kind}", model, lambda x, c: -model.log_prob(x, context=c).mean(),
                 lambda x, c: -model.log_prob(x, context=c).mean(),
                 f"{kind.upper()}: {TRANSFORMS} autoregressive layers, MADE 2x{hidden}, "
                 + (f"{BINS}-bin RQ spline on [-{bound:g}, {bound:g}]" if kind == "nsf" else "affine (log-scale +-3)"))


def zuko_entry(kind: str, dim: int, context: int, hidden: int, bound: float) -> Entry:
    import zuko

    cls = zuko.flows.NSF if kind == "nsf" else zuko.flows.MAF
    flow = cls(dim, context, transforms=TRANSFORMS, hidden_features=(hidden, hidden))

    def nll(x, c):
        return -flow(c).log_prob(x).mean()

    return Entry(f"zuko-{kind}", flow, nll, nll, f"zuko.flows.{cls.__name__}({dim}, {context}, transforms="
                 f"{TRANSFORMS}, hidden_features=({hidden}, {hidden})): defaults (NSF: 8 bins on [-5, 5])")


def normflows_entry(kind: str, dim: int, context: int, hidden: int, bound: float) -> Entry:
    import normflows as nf

    flows = []
    for _ in range(TRANSFORMS):  # normflows' NSF examples: an autoregressive spline then an LU linear permutation
        flows += [nf.flows.AutoregressiveRationalQuadraticSpline(dim, 2, hidden, num_context_channels=context or None,
                                                                  num_bins=BINS, tail_bound=bound),
                  nf.flows.LULinearPermute(dim)]
    model = nf.ConditionalNormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), flows)

    def nll(x, c):
        return -model.log_prob(x, c).mean() if context else -model.log_prob(x).mean()

    return Entry("normflows-nsf", model, nll, nll, f"({BINS}-bin AutoregressiveRationalQuadraticSpline(2 blocks "
                 f"of {hidden}, tail bound {bound:g}) + LULinearPermute) x{TRANSFORMS}, fixed DiagGaussian")


def nflows_entry(kind: str, dim: int, context: int, hidden: int, bound: float) -> Entry:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, ReversePermutation
    from nflows.transforms.autoregressive import MaskedPiecewiseRationalQuadraticAutoregressiveTransform as RQ

    layers = []
    for _ in range(TRANSFORMS):  # nflows' README recipe, with its spline transform
        layers += [RQ(dim, hidden, context_features=context or None, num_bins=BINS, tails="linear",
                      tail_bound=bound, num_blocks=2), ReversePermutation(dim)]
    flow = Flow(CompositeTransform(layers), StandardNormal([dim]))

    def nll(x, c):
        return -flow.log_prob(x, context=c).mean()

    return Entry("nflows-nsf", flow, nll, nll, f"(MaskedPiecewiseRationalQuadraticAutoregressiveTransform({BINS} "
                 f"bins, linear tails at {bound:g}, 2 residual blocks of {hidden}) + ReversePermutation) x{TRANSFORMS}")


BUILDERS: dict[str, Callable[..., Entry]] = {
    "flowforge-nsf": lambda *a: flowforge_entry("nsf", *a), "flowforge-maf": lambda *a: flowforge_entry("maf", *a),
    "zuko-nsf": lambda *a: zuko_entry("nsf", *a), "zuko-maf": lambda *a: zuko_entry("maf", *a),
    "normflows-nsf": lambda *a: normflows_entry("nsf", *a), "nflows-nsf": lambda *a: nflows_entry("nsf", *a),
}


def flowforge_recipe(kind: str, dim: int) -> Entry:
    """flowforge's preset, ``configs/{kind}-moons.yaml`` (the 2-D preset; other sets are a data override)."""
    from flowforge import load_config
    from flowforge.models import build_model

    config = load_config(f"configs/{kind}-moons.yaml")
    model = build_model(config.model, {"shape": [dim]})
    fc = config.model.flow

    def nll(x, c):
        return -model.log_prob(x).mean()

    return Entry(f"flowforge-{kind}", model, nll, nll, f"configs/{kind}-moons.yaml: {fc.couplings} layers, MADE "
                 f"{fc.hidden_layers}x{fc.hidden}, Adam {config.train.lr:g}", lr=config.train.lr)


def zuko_recipe(kind: str, dim: int) -> Entry:
    """zuko's README: ``NSF(features, context, transforms=3, hidden_features=[128] * 3)``, Adam 1e-3; its MAF has
    no README recipe, so the class defaults (3 transforms, MADE 2 x 64)."""
    import zuko

    flow = (zuko.flows.NSF(dim, 0, transforms=3, hidden_features=[128] * 3) if kind == "nsf"
            else zuko.flows.MAF(dim, 0))

    def nll(x, c):
        return -flow().log_prob(x).mean()

    note = ("README: NSF(transforms=3, hidden_features=[128] * 3), 8 bins" if kind == "nsf"
            else "MAF() class defaults: 3 transforms, hidden (64, 64)")
    return Entry(f"zuko-{kind}", flow, nll, nll, note + ", Adam 1e-3", lr=1e-3)


def normflows_recipe(dim: int) -> Entry:
    """normflows' ``examples/neural_spline_flow.ipynb``: K = 16 x (AutoregressiveRationalQuadraticSpline(2 blocks of
    128) + LULinearPermute), a fixed DiagGaussian, Adam 1e-3 with weight decay 1e-5."""
    import normflows as nf

    flows = []
    for _ in range(16):
        flows += [nf.flows.AutoregressiveRationalQuadraticSpline(dim, 2, 128), nf.flows.LULinearPermute(dim)]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), flows)

    def nll(x, c):
        return -model.log_prob(x).mean()

    return Entry("normflows-nsf", model, nll, nll, "examples/neural_spline_flow.ipynb: 16 x (ARQS 2x128, 8 bins, "
                 "tails 3 + LULinearPermute), Adam 1e-3, weight decay 1e-5", lr=1e-3, weight_decay=1e-5)


def nflows_recipe(dim: int) -> Entry:
    """nflows' ``examples/moons.ipynb``: 5 x (ReversePermutation + MaskedAffineAutoregressiveTransform(hidden_features
    =4)), a standard normal, ``Adam(flow.parameters())`` (lr 1e-3); nflows documents no NSF recipe."""
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, ReversePermutation
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform

    layers = []
    for _ in range(5):
        layers += [ReversePermutation(dim), MaskedAffineAutoregressiveTransform(dim, hidden_features=4)]
    flow = Flow(CompositeTransform(layers), StandardNormal([dim]))

    def nll(x, c):
        return -flow.log_prob(x).mean()

    return Entry("nflows-maf", flow, nll, nll, "examples/moons.ipynb: 5 x (ReversePermutation + "
                 "MaskedAffineAutoregressiveTransform(hidden_features=4)), Adam 1e-3", lr=1e-3)


RECIPES: dict[str, Callable[[int], Entry]] = {
    "flowforge-nsf": lambda d: flowforge_recipe("nsf", d), "flowforge-maf": lambda d: flowforge_recipe("maf", d),
    "zuko-nsf": lambda d: zuko_recipe("nsf", d), "zuko-maf": lambda d: zuko_recipe("maf", d),
    "normflows-nsf": normflows_recipe, "nflows-maf": nflows_recipe,
}


def versions() -> dict[str, str]:
    import importlib.metadata as md

    return {name: md.version(name) for name in ("torch", "zuko", "normflows", "nflows")}
