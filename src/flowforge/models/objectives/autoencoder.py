"""The autoencoder's objective: reconstruction, a perceptual term and the KL weight (LDM's ``LPIPSWithDiscriminator``
without its discriminator; Rombach et al., 2022, arXiv:2112.10752, Appendix G).

    L = |x - D(z)|_p  +  w_perc * |phi(x) - phi(D(z))|^2  +  w_kl * KL(q(z | x) || N(0, I)) / dims(x),
    z = mu(x) + sigma(x) * eps

where ``|.|_p`` is the mean absolute (``l1``) or squared (``l2``) pixel error, ``phi`` the convolutional features
of the data set's pinned feature network (flowforge.metrics: for Fashion-MNIST the CNN of
``tools/train_feature_nets.py``; each of its two conv stages' activations, normalised per channel as LPIPS
does), and the KL is summed over the latent and divided by the pixel count, so ``w_kl`` is per pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...rng import BatchRandom
from .base import Objective

NOT_A_FLOW_OBJECTIVE = "the autoencoder objective trains model.kind=autoencoder, not a flow"
# (B, C, H, W) images in [-1, 1] -> the feature maps the perceptual term compares
FeatureMaps = Callable[[Tensor], Sequence[Tensor]]


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, I))`` summed over all but the batch dimension, (B,).

    >>> float(kl_to_standard_normal(torch.zeros(1, 2), torch.zeros(1, 2)))
    0.0
    """
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def perceptual_distance(features: FeatureMaps, x: Tensor, y: Tensor) -> Tensor:
    """Mean squared distance of the unit-normalised feature maps of ``x`` and ``y`` (LPIPS without learned
    weights), (B,)."""
    total = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    for fx, fy in zip(features(x), features(y)):
        fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-8)  # (B, C, h, w): each position's feature vector to unit norm
        fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-8)
        total = total + (fx - fy).square().sum(1).flatten(1).mean(1)
    return total


class AutoencoderLoss(Objective):
    """Trains a :class:`~flowforge.models.autoencoder.Autoencoder` (``model.kind: autoencoder``, which always uses
    it: it is not a choice of ``model.objective``, whose registry holds the objectives of flows).

    Arguments:
        loss: ``"l1"`` or ``"l2"`` pixel reconstruction error.
        kl: the KL weight per pixel (LDM: 1e-6).
        perceptual: the weight of the perceptual term; 0 turns it off.
        features: the feature maps of the perceptual term (None when ``perceptual`` is 0).
    """

    def __init__(self, loss: str = "l1", kl: float = 1e-6, perceptual: float = 0.0,
                 features: FeatureMaps | None = None):
        super().__init__()
        if loss not in ("l1", "l2"):
            raise ValueError(f"model.autoencoder.loss must be l1 or l2, got {loss!r}")
        if perceptual > 0 and features is None:
            raise ValueError("model.autoencoder.perceptual > 0 needs the data set's pinned feature network; this "
                             "data set has none: set model.autoencoder.perceptual=0")
        self.loss, self.kl, self.perceptual, self.features = loss, kl, perceptual, features

    @classmethod
    def from_config(cls, cfg: Any, time_sampler: Any = None, coupling: Any = None,
                    features: FeatureMaps | None = None) -> AutoencoderLoss:
        if cfg.kind != "autoencoder":
            raise ValueError(NOT_A_FLOW_OBJECTIVE)
        ae = cfg.autoencoder
        return cls(ae.loss, ae.kl, ae.perceptual, features if ae.perceptual > 0 else None)

    def check(self, model: Any) -> None:
        if not hasattr(model, "autoencoder"):
            raise ValueError(NOT_A_FLOW_OBJECTIVE)

    def terms(self, model: Any, x: Tensor, rng: BatchRandom | None = None) -> dict[str, Tensor]:
        """Each term of the loss, batch means: ``reconstruction``, ``perceptual``, ``kl`` (nats per pixel)."""
        model.check_batch(x)
        rng = rng or BatchRandom.local(x.shape[0])
        latent = model.autoencoder.latent_shape(tuple(x.shape[1:]))
        recon, mean, logvar = model.autoencoder(x, rng.randn(latent, like=x))  # (B, C, H, W), (B, C', h, w) x 2
        err = recon - x
        rec = err.abs() if self.loss == "l1" else err.square()
        terms = {"reconstruction": rec.flatten(1).mean(1).mean(),
                 "kl": (kl_to_standard_normal(mean, logvar) / x[0].numel()).mean()}
        if self.perceptual > 0:
            terms["perceptual"] = perceptual_distance(self.features, x, recon).mean()
        return terms

    def __call__(self, model: Any, x: Tensor, rng: BatchRandom | None = None,
                 labels: Tensor | None = None) -> Tensor:
        terms = self.terms(model, x, rng)
        return (terms["reconstruction"] + self.kl * terms["kl"]
                + self.perceptual * terms.get("perceptual", torch.zeros(())))


def conv_features(net: nn.Module, value_range: tuple[float, float]) -> FeatureMaps:
    """The feature maps of a pinned :class:`~flowforge.metrics.digit_cnn.DigitCNN` (its two conv stages, before
    pooling) of images in ``value_range``, differentiable in the images; the network itself stays frozen."""
    for p in net.parameters():
        p.requires_grad_(False)
    lo, hi = value_range
    layers = list(net.features)

    def features(x: Tensor) -> list[Tensor]:
        h = ((x - lo) / (hi - lo) - net.mean) / net.std  # (B, 1, H, W) as the CNN was trained
        net.to(x.device)
        maps = []
        for layer in layers:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                maps.append(h)  # (B, 32, H, W), then (B, 64, H/2, W/2)
        return maps

    return features


__all__ = ["AutoencoderLoss", "conv_features", "kl_to_standard_normal", "perceptual_distance"]
