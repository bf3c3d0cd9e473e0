"""``model.kind: autoencoder``: a KL autoencoder (diffusers ``AutoencoderKL``) as a flowforge model, so the
training engine trains it like any other (EMA, resume, bf16 by capability, the lock, checkpoints bound to the
config), and the latent flows of :mod:`flowforge.data.latents` encode with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import UserError
from ..nets.autoencoder import KLAutoencoder, PatchDiscriminator
from ..protocol import GenerativeModel
from ..rng import BatchRandom
from .objectives.autoencoder import AutoencoderLoss, FeatureMaps, PatchAdversary, conv_features


class Autoencoder(GenerativeModel):
    """An autoencoder trained by ``objective``; :meth:`sample` decodes draws of its prior ``N(0, I)`` (a
    picture of what the decoder makes of the prior; a latent flow is what generates well).

    Arguments:
        autoencoder: the network.
        shape: the images' ``(C, H, W)``.
        objective: the training objective (:class:`AutoencoderLoss`).
    """

    def __init__(self, autoencoder: KLAutoencoder, shape: tuple[int, ...], objective: AutoencoderLoss):
        super().__init__()
        self.autoencoder, self.shape, self.objective = autoencoder, tuple(shape), objective
        self.latent_shape = autoencoder.latent_shape(self.shape)

    def loss(self, x: Tensor, rng: BatchRandom | None = None, labels: Tensor | None = None) -> Tensor:
        return self.objective(self, x, rng, labels)

    @property
    def adversary(self) -> PatchAdversary | None:
        """The patch discriminator the engine trains beside the autoencoder (``model.autoencoder.disc_weight``
        > 0), with an optimiser of its own; None without one."""
        return self.objective.adversary

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoded posterior mean of images ``x`` (B, C, H, W)."""
        return self.autoencoder.decode(self.autoencoder.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        self.check_settings("sample", options)
        device = next(self.parameters()).device
        where = generator.device if generator is not None else device  # drawn on the generator's device
        z = torch.randn((n, *self.latent_shape), generator=generator, device=where).to(device)  # (n, C', h, w)
        return self.autoencoder.decode(z)


def pinned_features(data: dict[str, Any]) -> FeatureMaps | None:
    """The perceptual term's feature maps: the convolutional stages of the data set's pinned CNN
    (:data:`flowforge.metrics.EXTRACTORS`: fashion-mnist, mnist, digits); None for a data set without one."""
    from ..metrics.extractors import EXTRACTORS, default_extractor, load_extractor

    name = default_extractor(str(data.get("name")), tuple(data["shape"]))
    if name is None or EXTRACTORS[name].num_classes is None:  # inception: RGB, no conv stages to compare
        return None
    return conv_features(load_extractor(name).net, tuple(data.get("value_range") or (-1.0, 1.0)))


def build_autoencoder(cfg: Any, data: dict[str, Any], vocabulary: Sequence[str] | None = None) -> Autoencoder:
    """The autoencoder of ``model.autoencoder`` for the images of ``data`` (the run's data spec)."""
    if len(data["shape"]) != 3:
        raise ValueError(f"model.kind=autoencoder encodes images (C, H, W); data set {data.get('name')!r} holds "
                         f"examples of shape {tuple(data['shape'])}")
    if cfg.num_classes is not None or cfg.text.captions != "none":
        raise ValueError("model.kind=autoencoder takes no labels or captions; unset model.num_classes")
    if data.get("latent"):
        raise ValueError("model.kind=autoencoder trains on pixels; unset data.latent")
    if tuple(data.get("value_range") or ()) != (-1.0, 1.0):
        raise ValueError(f"model.kind=autoencoder takes images in [-1, 1] as diffusers' autoencoders do; got "
                         f"value_range {data.get('value_range')}: set data.image_range=symmetric")
    ae = cfg.autoencoder
    shape = tuple(data["shape"])
    net = KLAutoencoder.build(shape[0], ae.latent_channels, ae.width, ae.downsampling, ae.layers_per_block,
                              ae.groups, ae.attention)
    features = pinned_features(data) if ae.perceptual > 0 else None
    # built after the autoencoder, so that its weights draw the same numbers with or without a discriminator
    disc = PatchDiscriminator(shape[0], ae.disc_width, ae.disc_layers) if ae.disc_weight > 0 else None
    if disc is not None:
        check_discriminator(disc, shape, ae.disc_layers)
    objective = AutoencoderLoss.from_config(cfg, None, None, features=features, discriminator=disc)
    model = Autoencoder(net, shape, objective)
    objective.check(model)
    return model


def check_discriminator(disc: PatchDiscriminator, shape: tuple[int, ...], layers: int) -> None:
    """Refuse a PatchGAN too deep for the images: its patches would shrink to nothing."""
    try:
        with torch.no_grad():  # in eval mode: BatchNorm's running statistics stay as they are
            ok = disc.eval()(torch.zeros(1, *shape)).numel() > 0
    except RuntimeError:  # a convolution's input smaller than its kernel
        ok = False
    finally:
        disc.train()
    if not ok:
        raise UserError(f"model.autoencoder.disc_layers={layers} halves {shape[1]} x {shape[2]} px images too often "
                        f"for the discriminator's 4 x 4 convolutions; lower model.autoencoder.disc_layers")


def describe_autoencoder(cfg: Any) -> str:
    ae = cfg.autoencoder
    perceptual = f", perceptual {ae.perceptual:g} in the pinned CNN" if ae.perceptual > 0 else ""
    disc = (f"; patch discriminator ({ae.disc_layers} layers, width {ae.disc_width}, hinge loss, weight "
            f"{ae.disc_weight:g} x adaptive) after step {ae.disc_start}" if ae.disc_weight > 0 else "")
    return (f"KL autoencoder (diffusers AutoencoderKL): {ae.latent_channels} latent channels, downsampling "
            f"{ae.downsampling}, width {ae.width}; {ae.loss} reconstruction{perceptual}, KL {ae.kl:g}{disc}")


__all__ = ["Autoencoder", "build_autoencoder", "describe_autoencoder", "pinned_features"]
