"""A KL-regularised convolutional autoencoder in the diffusers ``AutoencoderKL`` format (Rombach et al., 2022,
"High-Resolution Image Synthesis with Latent Diffusion Models", arXiv:2112.10752; Esser et al., 2024, SD3,
arXiv:2403.03206).

The network *is* a ``diffusers.AutoencoderKL``, so SD's and SD3's released VAE folders load unchanged
(``from_pretrained``) and one trained by flowforge saves as an ordinary diffusers folder (``save_pretrained``).
The latent a flow sees is ``(z - shift) * scale`` (SD3's convention, ``vae.config.shift_factor`` and
``scaling_factor``; SD 1.x has no shift). diffusers is imported only when a network is built (the ``latent``
extra), so flowforge imports without it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

INSTALL = "pip install 'flowforge[latent]' (diffusers==0.42.1)"


def _diffusers():
    try:
        import diffusers
    except ImportError as err:  # an optional extra: say how to get it
        raise ImportError(f"autoencoders need diffusers: {INSTALL}") from err
    return diffusers


def block_channels(width: int, downsampling: int) -> list[int]:
    """The channels of each encoder level of an autoencoder downsampling ``downsampling`` times (a power of 2):
    ``log2(downsampling) + 1`` levels of ``width``, then ``2 width`` (LDM's f4 / f8 layouts, at small widths).

    >>> block_channels(32, 4)
    [32, 64, 64]
    """
    levels = round(math.log2(downsampling))
    if downsampling < 1 or 2 ** levels != downsampling:
        raise ValueError(f"model.autoencoder.downsampling must be a power of 2 (1, 2, 4, 8), got {downsampling}")
    return [width] + [2 * width] * levels


class KLAutoencoder(nn.Module):
    """``diffusers.AutoencoderKL`` with flowforge's names: :meth:`encode` to the posterior, :meth:`decode`,
    and the latent normalisation of :meth:`to_latent` / :meth:`from_latent`.

    Arguments:
        vae: the diffusers network (``AutoencoderKL``).
    """

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    @classmethod
    def build(cls, channels: int, latent_channels: int, width: int = 32, downsampling: int = 4,
              layers_per_block: int = 1, groups: int = 8, attention: bool = False) -> KLAutoencoder:
        """A fresh autoencoder for images of ``channels`` channels; the latent has ``latent_channels`` channels
        and ``1 / downsampling`` of the height and width; ``attention``: the mid-block self-attention of SD's
        VAE (costly on CPU at small sizes, off by default)."""
        out = block_channels(width, downsampling)
        if any(c % groups for c in out):
            raise ValueError(f"model.autoencoder.width ({width}) must be divisible by model.autoencoder.groups "
                             f"({groups}), the GroupNorm groups")
        vae = _diffusers().AutoencoderKL(
            in_channels=channels, out_channels=channels, latent_channels=latent_channels,
            down_block_types=("DownEncoderBlock2D",) * len(out), up_block_types=("UpDecoderBlock2D",) * len(out),
            block_out_channels=tuple(out), layers_per_block=layers_per_block, norm_num_groups=groups,
            mid_block_add_attention=attention, scaling_factor=1.0, shift_factor=0.0)
        return cls(vae)

    @classmethod
    def from_pretrained(cls, source: str | Path, subfolder: str | None = None) -> KLAutoencoder:
        """A diffusers ``AutoencoderKL`` folder or hub id (``stabilityai/sd-vae-ft-mse``), unchanged."""
        kwargs = {"subfolder": subfolder} if subfolder else {}
        return cls(_diffusers().AutoencoderKL.from_pretrained(str(source), **kwargs))

    def save_pretrained(self, folder: str | Path) -> None:
        """Write an ordinary diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``)."""
        self.vae.save_pretrained(str(folder))

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scale(self) -> float:
        """The latent's scaling factor (SD 1.x 0.18215, SD3 1.5305)."""
        return float(self.vae.config.scaling_factor)

    @property
    def shift(self) -> float:
        """The latent's shift (SD3 0.0609; 0 where the config has none)."""
        return float(self.vae.config.get("shift_factor") or 0.0)

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The latent's ``(C', H / f, W / f)`` for images of ``shape`` ``(C, H, W)``."""
        c, h, w = shape
        f = self.downsampling
        if h % f or w % f:
            raise ValueError(f"images of {h} x {w} px do not divide by the autoencoder's downsampling {f}")
        return self.latent_channels, h // f, w // f

    @property
    def last_layer(self) -> Tensor:
        """The decoder's last convolution's weight, where LDM balances its adversarial term's gradient."""
        return self.vae.decoder.conv_out.weight

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior ``(mean, logvar)`` (B, C', h, w) each of images ``x`` (B, C, H, W) in [-1, 1]."""
        posterior = self.vae.encode(x).latent_dist
        return posterior.mean, posterior.logvar

    def decode(self, z: Tensor) -> Tensor:
        """Images (B, C, H, W) of raw latents ``z`` (B, C', h, w)."""
        return self.vae.decode(z).sample

    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(reconstruction, mean, logvar)`` of ``x`` through the posterior sample ``mean + std * eps``."""
        mean, logvar = self.encode(x)  # (B, C', h, w) each
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mean, logvar  # (B, C, H, W), ...

    def to_latent(self, z: Tensor) -> Tensor:
        """A raw latent in the flow's space: ``(z - shift) * scale``."""
        return (z - self.shift) * self.scale

    def from_latent(self, u: Tensor) -> Tensor:
        """The raw latent of a point of the flow's space: ``u / scale + shift``."""
        return u / self.scale + self.shift


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator of pix2pix (Isola et al., 2017, arXiv:1611.07004) that LDM's autoencoders train
    against: ``layers`` stride-2 4 x 4 convolutions (channels ``width``, then doubling up to ``8 width``), one
    stride-1 convolution and a 1-channel one, so each output logit judges one patch of the image. BatchNorm after
    every convolution but the first and the last; weights drawn as in the paper (N(0, 0.02), BatchNorm's scale
    N(1, 0.02)).

    Arguments:
        channels: the images' channels.
        width: channels of the first convolution.
        layers: the stride-2 convolutions; each halves the height and width.

    >>> PatchDiscriminator(1, width=8, layers=2)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 1, 5, 5])
    """

    def __init__(self, channels: int, width: int = 64, layers: int = 2):
        super().__init__()
        mult = [min(2 ** i, 8) for i in range(layers + 1)]  # channel multiple of each convolution's output
        blocks: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1  # the last of these keeps the size (pix2pix's n_layers layout)
            blocks += [nn.Conv2d(width * mult[i - 1], width * mult[i], 4, stride, 1, bias=False),
                       nn.BatchNorm2d(width * mult[i]), nn.LeakyReLU(0.2)]
        blocks.append(nn.Conv2d(width * mult[layers], 1, 4, 1, 1))
        self.layers = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 1, h, w), one per patch, of images ``x`` (B, C, H, W)."""
        return self.layers(x)


__all__ = ["INSTALL", "KLAutoencoder", "PatchDiscriminator", "block_channels"]
