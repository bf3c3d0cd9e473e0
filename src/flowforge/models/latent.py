"""A flow trained on an autoencoder's latents (``data.latent``), seen from outside as a model of images.

The flow itself trains on the cached latents like on any data (:mod:`flowforge.data.latents`); a loaded run is
wrapped in :class:`LatentFlow`, whose :meth:`~LatentFlow.sample` decodes, whose :meth:`~LatentFlow.inpaint`
works on the latent grid and keeps the kept pixels exactly, and whose likelihood is the latent's, labelled so.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..data.latents import decode_latents, encode_images
from ..errors import UserError
from ..nets.autoencoder import KLAutoencoder
from ..protocol import GenerativeModel

PIXEL_BITS_REFUSED = (
    "bits/dim of pixels is refused for a latent model: its log_prob is a density of the autoencoder's latents "
    "({latent} dimensions), not of the {pixels} pixel values, and the decoder is not invertible, so no change of "
    "variables turns it into a pixel likelihood; a number in pixel bits/dim would look comparable to a pixel "
    "model's and is not. Use latent_bits_per_dim (bits per latent dimension, labelled as such)")


class LatentFlow(GenerativeModel):
    """A flow on normalised latents ``u = (z - shift) * scale`` and the autoencoder that decodes them.

    Arguments:
        flow: the trained model of the latents (a :class:`~flowforge.models.ContinuousFlow`).
        autoencoder: the autoencoder whose latents ``flow`` models.
        shift, scale: the latent normalisation the flow was trained with (stored with the latent cache).
        pixel_shape: the images' ``(C, H, W)``; ``value_range``: their range.
    """

    likelihood_unit = "latent nats"

    def __init__(self, flow: GenerativeModel, autoencoder: KLAutoencoder, shift: float, scale: float,
                 pixel_shape: tuple[int, ...], value_range: tuple[float, float]):
        super().__init__()
        self.flow, self.autoencoder = flow, autoencoder
        self.shift, self.scale, self.value_range = float(shift), float(scale), tuple(value_range)
        self.shape, self.latent_shape = tuple(pixel_shape), tuple(flow.shape)
        self.num_classes = flow.num_classes
        self.sample_settings, self.inpaint_settings = flow.sample_settings, flow.inpaint_settings
        self.captions = getattr(flow, "captions", None)

    @property
    def net(self) -> torch.nn.Module:
        return self.flow.net

    @property
    def latent_dims(self) -> int:
        return math.prod(self.latent_shape)

    def encode(self, x: Tensor) -> Tensor:
        """Normalised latents (B, C', h, w) of images ``x`` (B, C, H, W)."""
        return encode_images(self.autoencoder, x, self.shift, self.scale, self.value_range)

    def decode(self, u: Tensor) -> Tensor:
        """Images (B, C, H, W) of normalised latents ``u`` (B, C', h, w)."""
        return decode_latents(self.autoencoder, u, self.shift, self.scale, self.value_range)

    def reconstruct(self, x: Tensor) -> Tensor:
        """The autoencoder's reconstructions (B, C, H, W) of images ``x``, through the flow's normalisation."""
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, rng: Any = None, labels: Tensor | None = None) -> Tensor:
        return self.flow.loss(self.encode(x), rng, labels)

    def sample(self, n: int, **options: Any) -> Tensor:
        """Decoded samples (n, C, H, W); the options are the latent flow's (sampler, steps, guidance, ...)."""
        out = self.flow.sample(n, **options)
        if isinstance(out, tuple):  # return_nfe
            return self.decode(out[0]), out[1]
        return self.decode(out)

    def log_prob(self, x: Tensor, **options: Any) -> Tensor:
        """Log-density in **latent nats** (batch,) of the encoded images: ``log p(u(x))`` over the latent's
        dimensions, a density of latents and not of pixels (see :meth:`latent_bits_per_dim`)."""
        return self.flow.log_prob(self.encode(x), **options)  # (B,) latent nats

    def latent_bits_per_dim(self, x: Tensor, **options: Any) -> Tensor:
        """``-log2 p(u(x))`` per latent dimension (batch,): bits per latent dimension, not per pixel."""
        return -self.log_prob(x, **options) / (self.latent_dims * math.log(2))

    def bits_per_dim(self, x: Tensor, **options: Any) -> Tensor:
        raise UserError(PIXEL_BITS_REFUSED.format(latent=self.latent_dims, pixels=self.dims))

    def log_prob_to_bits_per_dim(self, log_p: Tensor) -> Tensor:
        raise UserError(PIXEL_BITS_REFUSED.format(latent=self.latent_dims, pixels=self.dims))

    def latent_mask(self, mask: Tensor) -> Tensor:
        """The pixel mask (B, C, H, W) or (B, 1, H, W) on the latent grid (B, C', h, w): a latent cell is kept
        only where every pixel of its patch is kept (a min-pool), so no masked pixel is taken from the input."""
        keep = mask.float().amin(1, keepdim=True)  # (B, 1, H, W)
        f = self.shape[-1] // self.latent_shape[-1]
        cells = -F.max_pool2d(-keep, f)  # (B, 1, h, w)
        return cells.bool().expand(-1, self.latent_shape[0], -1, -1)

    def inpaint(self, x: Tensor, mask: Tensor, **options: Any) -> Tensor:
        """Fill ``x`` (B, C, H, W) where ``mask`` is False: the flow inpaints the latents on the latent grid
        (:meth:`latent_mask`), the result is decoded, and the kept pixels are put back exactly. The seam costs
        what the decoder changes at the border of the kept region (a latent cell straddling it is regenerated)."""
        mask = torch.as_tensor(mask, device=x.device).bool().expand_as(x)
        return torch.where(mask, x, self.decoded_fill(x, mask, **options))

    def decoded_fill(self, x: Tensor, mask: Tensor, **options: Any) -> Tensor:
        """The decoded latent inpainting of :meth:`inpaint` before the kept pixels are put back (B, C, H, W): on
        the kept side it differs from ``x`` by what the decoder changes, which the replacement removes and the
        seam shows."""
        mask = torch.as_tensor(mask, device=x.device).bool().expand_as(x)
        return self.decode(self.flow.inpaint(self.encode(x), self.latent_mask(mask), **options))


VAE_FOLDER = "vae"  # an exported latent model's autoencoder, as diffusers pipelines keep it


def wrap_latent(model: GenerativeModel, data: dict[str, Any], source: str | Path | None = None) -> GenerativeModel:
    """``model`` as a :class:`LatentFlow` when the run's data spec says it was trained on latents, else itself;
    its autoencoder is ``data.latent``'s, or ``source`` (an exported folder's ``vae/``)."""
    latent = data.get("latent")
    if not latent:
        return model
    from ..data.latents import autoencoder_fingerprint, load_autoencoder, recorded_source

    ae = load_autoencoder(str(source or recorded_source(latent))).eval()
    if latent.get("autoencoder_sha256") and autoencoder_fingerprint(ae) != latent["autoencoder_sha256"]:
        raise UserError(f"data.latent {latent['source']}: the autoencoder's weights changed since this run was "
                        f"trained on its latents (it was trained further, or replaced); decoding with them would "
                        f"give other images. Restore that autoencoder, or train the latent model again")
    pixel = latent["pixel"]
    return LatentFlow(model, ae, latent["shift"], latent["scale"], tuple(pixel["shape"]),
                      tuple(pixel["value_range"]))


def unwrap_latent(model: GenerativeModel) -> GenerativeModel:
    """The model whose weights a run keeps: a latent model's flow, any other model itself."""
    return model.flow if isinstance(model, LatentFlow) else model


def save_vae(model: GenerativeModel, folder: Path) -> None:
    """A latent model's autoencoder as the diffusers folder ``folder/vae`` (its ``scaling_factor`` and
    ``shift_factor`` set to the normalisation the flow was trained with, so a diffusers pipeline scales alike);
    nothing for any other model."""
    if not isinstance(model, LatentFlow):
        return
    ae = copy.deepcopy(model.autoencoder)
    ae.vae.register_to_config(scaling_factor=model.scale, shift_factor=model.shift)
    ae.save_pretrained(Path(folder) / VAE_FOLDER)


__all__ = ["PIXEL_BITS_REFUSED", "VAE_FOLDER", "LatentFlow", "save_vae", "unwrap_latent", "wrap_latent"]
