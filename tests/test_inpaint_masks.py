"""Inpainting masks by NICE's list, and the flows' gradient inpainting: the known part kept exactly by every flow,
the options checked, and Langevin steps drawing from the conditional where plain ascent finds its mode."""

import math

import pytest
import torch

from flowforge.data.masks import MASK_NAMES, PAPER_MASKS, make_mask
from flowforge.errors import UserError
from flowforge.flows import NormalizingFlow
from flowforge.transforms import ActNorm
from flowforge.transforms.priors import StandardGaussian
from test_flows import BUILDERS, DIGITS, perturbed

# NICE, Fig. 6's caption (Dinh et al., 2015, §5.2), top to bottom: top rows, bottom rows, odd pixels, even
# pixels, left side, right side, middle vertically, middle horizontally, 75% random, 90% random.
PAPER = ["top", "bottom", "odd", "even", "left", "right", "middle-vertical", "middle-horizontal", "random:0.75",
         "random:0.9"]


def missing(spec, h=28, w=28):
    return ~make_mask(spec, (1, h, w), torch.Generator().manual_seed(0))[0]


def test_the_mask_names_are_the_papers_list():
    assert list(PAPER_MASKS) == PAPER
    assert set(PAPER_MASKS) - {"random:0.75", "random:0.9"} < set(MASK_NAMES) and "random:P" in MASK_NAMES


def test_each_paper_mask_hides_its_region():
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    expected = {"top": rows < 14, "bottom": rows >= 14, "left": cols < 14, "right": cols >= 14,
                "odd": (rows * 28 + cols) % 2 == 1, "even": (rows * 28 + cols) % 2 == 0,
                "middle-vertical": (cols >= 7) & (cols < 21), "middle-horizontal": (rows >= 7) & (rows < 21)}
    for spec, region in expected.items():
        assert torch.equal(missing(spec), region), spec
    assert torch.equal(missing("odd") | missing("even"), torch.ones(28, 28, dtype=torch.bool))
    assert not (missing("odd") & missing("even")).any()
    for spec, p in (("random:0.75", 0.75), ("random:0.9", 0.9)):
        share = float(missing(spec).double().mean())
        assert abs(share - p) < 3 * math.sqrt(p * (1 - p) / 784), (spec, share)
    odd_7 = missing("odd", 7, 7)  # an odd width: the pixels' row-major index, not the columns, decides
    assert bool(odd_7[0, 1]) and bool(odd_7[1, 0]) and not bool(odd_7[1, 1])


def test_an_unknown_mask_names_the_choices():
    with pytest.raises(UserError, match="middle-vertical.*random:P"):
        make_mask("diagonal", (1, 8, 8))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("options", [{}, {"lr": 0.1, "noise": 1.0, "line_search": False},
                                     {"temperature": 0.5, "line_search": False}])
def test_every_flow_keeps_the_known_part_exactly(kind, options):
    model = perturbed(BUILDERS[kind](DIGITS)).eval()
    x = torch.randint(0, 17, (4, 1, 8, 8), generator=torch.Generator().manual_seed(1)) / 16.0
    for spec in PAPER_MASKS:
        known = torch.stack([make_mask(spec, (1, 8, 8), torch.Generator().manual_seed(i)) for i in range(4)])
        filled = model.inpaint(x, known, steps=5, generator=torch.Generator().manual_seed(0), **options)
        assert torch.equal(filled[known], x[known]), (kind, spec)
        assert torch.equal(filled * 16, (filled * 16).round()) and filled.min() >= 0 and filled.max() <= 1


@pytest.mark.parametrize("bad", [{"noise": -1.0}, {"noise": float("nan")}, {"temperature": -0.1},
                                 {"temperature": float("inf")}])
def test_flow_inpainting_refuses_bad_noise_and_temperature(bad):
    model = BUILDERS["nice"](DIGITS).eval()
    name = next(iter(bad))
    with pytest.raises(UserError, match=f"inpaint {name}=.*expected a finite value >= 0"):
        model.inpaint(torch.zeros(2, 1, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool), steps=1, **bad)


def gaussian_flow():
    """x ~ N((0, 1), I) as a flow: an ActNorm with its bias set, onto a standard Gaussian prior."""
    layer = ActNorm(2)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.0, -1.0]))
        layer.initialized.fill_(1)
    return NormalizingFlow(StandardGaussian(), [layer], shape=(2,)).eval()


def test_ascent_finds_the_conditional_mode_and_langevin_its_spread():
    model = gaussian_flow()
    x = torch.stack([torch.zeros(4000), torch.linspace(-7.0, 9.0, 4000)], 1)  # the range the projection keeps
    known = torch.tensor([True, False])
    gen = torch.Generator().manual_seed(0)
    mode = model.inpaint(x, known, steps=300, lr=0.5, generator=gen)[:, 1]
    assert (mode - 1).abs().max() < 1e-3
    for temperature in (1.0, 0.25):
        fill = model.inpaint(x, known, steps=1500, lr=0.05, line_search=False, temperature=temperature,
                             generator=gen)[:, 1]
        assert abs(float(fill.mean()) - 1) < 0.1, temperature
        assert abs(float(fill.std()) - math.sqrt(temperature)) < 0.08 * math.sqrt(temperature), temperature


def test_the_cli_refuses_bad_noise_and_temperature_before_loading_anything(tmp_path):
    import argparse

    from flowforge.cli.inpaint import _inpaint

    base = {"run_dir": str(tmp_path / "none"), "mask": "left", "n": 2, "out": str(tmp_path / "x.png"), "seed": 0,
            "steps": None, "lr": None, "line_search": None, "noise": None, "temperature": None, "start": None,
            "sampler": None, "resample": None}
    for flag, value in (("noise", -1.0), ("temperature", float("nan"))):
        with pytest.raises(UserError, match=f"--{flag} {value}: expected a finite value >= 0"):
            _inpaint(argparse.Namespace(**{**base, flag: value}))


def test_line_search_climbs_where_the_papers_fixed_steps_overshoot():
    """A stiff conditional (std 0.01, gradients ~100 per unit, like a trained MNIST flow's): NICE's schedule at
    lr 0.05 jumps past the mode to the range's ends; the line search reaches the mode."""
    model = gaussian_flow()
    with torch.no_grad():
        model._layers()[0].log_scale.copy_(torch.tensor([0.0, math.log(100.0)]))  # x2 ~ N(1, 0.01^2)
    x = torch.stack([torch.zeros(200), torch.linspace(-3.0, 5.0, 200)], 1)
    known = torch.tensor([True, False])
    gen = torch.Generator().manual_seed(0)
    fixed = model.inpaint(x, known, steps=100, lr=0.05, line_search=False, generator=gen)[:, 1]
    searched = model.inpaint(x, known, steps=100, lr=0.05, generator=gen)[:, 1]
    assert ((fixed == -3.0) | (fixed == 5.0)).float().mean() > 0.9  # pinned to the ends
    assert (searched - 1).abs().max() < 1e-3
    with pytest.raises(UserError, match="line_search=False"):
        model.inpaint(x, known, steps=1, noise=1.0)


def test_the_ascent_starts_where_it_is_told_and_only_climbs_from_there():
    """``start``: the missing part begins at the given image (at the bins' centres), not at noise; the known part
    stays exact; a line search from it never lowers log p; a start of the wrong shape is refused."""
    model = perturbed(BUILDERS["realnvp"](DIGITS)).eval()
    x = torch.randint(0, 17, (4, 1, 8, 8), generator=torch.Generator().manual_seed(1)) / 16.0
    known = make_mask("left", (1, 8, 8))
    start = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2))  # one example's shape, broadcast
    first = model.inpaint(x, known, steps=0, start=start)
    centred = model.from_flow_input(model.to_flow_input(start.expand_as(x)))
    assert torch.equal(first[:, ~known], centred[:, ~known]) and torch.equal(first[:, known], x[:, known])
    noise = model.inpaint(x, known, steps=0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(noise, first)
    climbed = model.inpaint(x, known, steps=10, start=start)
    with torch.no_grad():
        before, after = (model.log_prob_flow(model.to_flow_input(v)) for v in (first, climbed))
    assert torch.all(after >= before - 1e-4) and torch.equal(climbed[:, known], x[:, known])
    with pytest.raises(ValueError, match="start has shape"):
        model.inpaint(x, known, steps=1, start=torch.zeros(8, 8))
    with pytest.raises(UserError, match="start='mean': give the missing part's first values as a tensor"):
        model.inpaint(x, known, steps=1, start="mean")
