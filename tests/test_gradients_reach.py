"""One backward pass of every preset's loss reaches every parameter: a weight dropped from the computation (a
coupling's learned scale, an embedding no block reads, a gate that multiplies by a constant) gets no gradient.

Each preset in configs/ is built small on 8x8 images or 2-D points, its all-zero parameters (zero-initialised
final layers and gates, which would stop every gradient before them) are given random values, and the gradient of
one loss must be non-zero in every parameter tensor.
"""

from pathlib import Path

import pytest
import torch
from conftest import perturb_zero_layers

from flowforge import load_config
from flowforge.models import MODELS, NETS, build_model
from flowforge.rng import BatchRandom

PRESETS = sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml"))
IMAGES = {"shape": [1, 8, 8], "kind": "image", "levels": 256}
POINTS = {"shape": [2], "kind": "points", "levels": None, "value_range": None}
SMALL = {  # per backbone or flow: the least that keeps each of its parts
    "mlp": {"model.net.width": 16, "model.net.depth": 2, "model.net.time_embed_dim": 8},
    "unet": {"model.net.channels": 8, "model.net.channel_mult": "[1,2]", "model.net.num_res_blocks": 1,
             "model.net.attention_levels": "[1]", "model.net.heads": 2, "model.net.time_embed_dim": 16},
    "dit": {"model.net.size": "tiny", "model.net.patch": 2, "model.net.time_embed_dim": 16},
    "mmdit": {"model.net.size": "tiny", "model.net.patch": 2, "model.net.time_embed_dim": 16},
    # the perceptual term's feature network is pinned (frozen, not the model's); the pixel and KL terms reach all
    "autoencoder": {"model.autoencoder.width": 8, "model.autoencoder.groups": 4, "model.autoencoder.latent_channels": 2,
                    "model.autoencoder.downsampling": 2, "model.autoencoder.perceptual": 0.0},
    "flow": {"model.flow.hidden": 8, "model.flow.hidden_layers": 1, "model.flow.blocks": 1, "model.flow.couplings": 2,
             "model.flow.steps_per_level": 2, "model.flow.levels": 2},
}


# Parameters that no loss reaches by design, each with the reason. MMDiT's last joint block: its text stream's
# output is discarded (SD3 keeps only the image tokens after the last block), so the text queries' RMSNorm there
# shapes nothing the loss sees (its keys and values do: they share the fused qkv weight).
UNREACHABLE = {"mmdit-fashion-text": {"net.blocks.3.text.attn.q_norm.weight"}}


def small_model(preset: Path):
    cfg = load_config(preset)
    part = {"continuous": cfg.model.net.name, "autoencoder": "autoencoder"}.get(cfg.model.kind, "flow")
    extra = {"model.label_dropout": 0.5} if cfg.model.num_classes else {}  # the "no label" embedding is used too
    cfg = load_config(preset, [f"{k}={v}" for k, v in {**SMALL[part], **extra}.items()])
    images = {**IMAGES, "value_range": [-1.0, 1.0] if cfg.data.image_range == "symmetric" else [0.0, 1.0]}
    data = {**(POINTS if cfg.data.name in ("moons", "checkerboard") else images), "name": cfg.data.name}
    return cfg, build_model(cfg.model, data), data


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_one_backward_pass_reaches_every_parameter(preset):
    torch.manual_seed(0)
    cfg, model, data = small_model(preset)
    lo, hi = data["value_range"] or (0.0, 1.0)
    x = lo + (hi - lo) * torch.rand(8, *data["shape"])
    labels = torch.arange(8) % cfg.model.num_classes if cfg.model.num_classes else None
    model.train()
    model.loss(x, BatchRandom(torch.Generator().manual_seed(0), 8, 0, 8), labels)  # data-dependent init (ActNorm)
    perturb_zero_layers(model)
    model.zero_grad()
    loss = model.loss(x, BatchRandom(torch.Generator().manual_seed(1), 8, 0, 8), labels)
    loss.backward()
    params = dict(model.named_parameters())
    assert params, preset.stem
    missing = [name for name, p in params.items() if p.grad is None]
    zero = [name for name, p in params.items() if p.grad is not None and not p.grad.any()]
    assert not missing and set(zero) == UNREACHABLE.get(preset.stem, set()), (preset.stem, missing, zero)


def test_the_presets_cover_every_net_and_model_kind():
    """Every backbone of the registry and every model kind is built by at least one preset above."""
    cfgs = [load_config(p).model for p in PRESETS]
    assert {c.net.name for c in cfgs if c.kind == "continuous"} == set(NETS)
    assert {c.kind for c in cfgs} == set(MODELS)
