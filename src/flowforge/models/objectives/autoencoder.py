"""The autoencoder's objective: reconstruction, a perceptual term, the KL weight and an optional patch discriminator
(LDM's ``LPIPSWithDiscriminator``; Rombach et al., 2022, arXiv:2112.10752, Appendix G; Esser et al., 2021, VQGAN,
arXiv:2012.09841, eq. 7 for the adaptive weight).

    L_rec = |x - D(z)|_p  +  w_perc * |phi(x) - phi(D(z))|^2,     z = mu(x) + sigma(x) * eps
    L     = L_rec  +  w_kl * KL(q(z | x) || N(0, I)) / dims(x)  +  lambda * L_G     (L_G only after disc_start)
    L_G   = -mean(Disc(D(z))),   lambda = w_disc * |grad_w L_rec| / (|grad_w L_G| + 1e-4)   (w: decoder's last layer)
    L_Disc = (mean(relu(1 - Disc(x))) + mean(relu(1 + Disc(D(z))))) / 2                     (hinge loss)

where ``|.|_p`` is the mean absolute (``l1``) or squared (``l2``) pixel error, ``phi`` the convolutional features
of the data set's pinned feature network (flowforge.metrics: for Fashion-MNIST the CNN of
``tools/train_feature_nets.py``; each of its two conv stages' activations, normalised per channel as LPIPS
does), and the KL is summed over the latent and divided by the pixel count, so ``w_kl`` is per pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with its parameters out of autograd for the block (the generator's pass through the
    discriminator: the gradient reaches the images, never the discriminator's weights)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def hinge_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's hinge loss on its logits of real and of reconstructed images, a scalar.

    >>> float(hinge_discriminator_loss(torch.ones(2, 1), -torch.ones(2, 1)))  # both beyond the margin
    0.0
    """
    return 0.5 * (torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean())


def adaptive_weight(rec: Tensor, gen: Tensor, last_layer: Tensor, weight: float) -> Tensor:
    """VQGAN's ``lambda = weight * |grad L_rec| / (|grad L_G| + 1e-4)`` at ``last_layer``, clamped to [0, 1e4] and
    detached, so the adversarial gradient reaching the decoder is ``weight`` times the reconstruction's in size."""
    g_rec = torch.autograd.grad(rec, last_layer, retain_graph=True)[0]
    g_gen = torch.autograd.grad(gen, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gen.norm() + 1e-4)).clamp(0.0, 1e4).detach() * weight


class PatchAdversary:
    """The discriminator half of the objective, which the engine trains with an optimiser of its own
    (:func:`flowforge.train.loop.adversary_step`): :attr:`net` is the PatchGAN, kept out of the model's
    parameters (so the autoencoder's optimiser and EMA never see it) and saved beside them in each checkpoint.

    The engine tells it the step (:meth:`at`); for the first ``start`` steps neither the generator's adversarial
    term nor the discriminator's update happen (LDM's ``disc_start``). The generator's pass leaves the batch's
    images and reconstructions for the discriminator's step, and the losses for the log.
    """

    def __init__(self, net: nn.Module, start: int, weight: float):
        self.net, self.start, self.weight = net, start, weight
        self.step = 0
        self.batch: tuple[Tensor, Tensor] | None = None  # (real, reconstructed), detached, of the current step
        self.sums: dict[str, Tensor] = {}  # logged losses summed since the last log line (on the device)
        self.count = 0

    def at(self, step: int) -> bool:
        """Enter step ``step`` (1-based); True when the discriminator trains at it."""
        self.step, self.batch = step, None
        return self.active

    @property
    def active(self) -> bool:
        return self.step > self.start

    def generator_loss(self, x: Tensor, recon: Tensor, rec: Tensor, last_layer: Tensor) -> Tensor:
        """``lambda * L_G`` of reconstructions ``recon`` of ``x``; keeps both for the discriminator's step."""
        with frozen(self.net) as disc:
            gen = -disc(recon).mean()
        lam = adaptive_weight(rec, gen, last_layer, self.weight)
        self.batch = (x.detach(), recon.detach())
        self.keep(gen_loss=gen, disc_lambda=lam)
        return lam * gen

    def discriminator_loss(self, net: nn.Module) -> Tensor:
        """The hinge loss of ``net`` (the discriminator, as Accelerate prepared it) on this step's batch."""
        if self.batch is None:
            raise RuntimeError("the discriminator's step comes after the generator's pass of the same step")
        real, fake = self.batch
        loss = hinge_discriminator_loss(net(real), net(fake))  # (B, 1, h, w) logits each
        self.keep(disc_loss=loss)
        self.count += 1
        return loss

    def keep(self, **values: Tensor) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float()

    def logged(self) -> dict[str, float]:
        """The mean of each logged loss since the last call (nothing before the discriminator starts)."""
        out = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


class AutoencoderLoss(Objective):
    """Trains a :class:`~flowforge.models.autoencoder.Autoencoder` (``model.kind: autoencoder``, which always uses
    it: it is not a choice of ``model.objective``, whose registry holds the objectives of flows).

    Arguments:
        loss: ``"l1"`` or ``"l2"`` pixel reconstruction error.
        kl: the KL weight per pixel (LDM: 1e-6).
        perceptual: the weight of the perceptual term; 0 turns it off.
        features: the feature maps of the perceptual term (None when ``perceptual`` is 0).
        adversary: the patch discriminator's half (None: LDM's loss without it).
    """

    def __init__(self, loss: str = "l1", kl: float = 1e-6, perceptual: float = 0.0,
                 features: FeatureMaps | None = None, adversary: PatchAdversary | None = None):
        super().__init__()
        self.adversary = adversary
        if loss not in ("l1", "l2"):
            raise ValueError(f"model.autoencoder.loss must be l1 or l2, got {loss!r}")
        if perceptual > 0 and features is None:
            raise ValueError("model.autoencoder.perceptual > 0 needs the data set's pinned feature network; this "
                             "data set has none: set model.autoencoder.perceptual=0")
        self.loss, self.kl, self.perceptual, self.features = loss, kl, perceptual, features

    @classmethod
    def from_config(cls, cfg: Any, time_sampler: Any = None, coupling: Any = None,
                    features: FeatureMaps | None = None, discriminator: nn.Module | None = None) -> AutoencoderLoss:
        if cfg.kind != "autoencoder":
            raise ValueError(NOT_A_FLOW_OBJECTIVE)
        ae = cfg.autoencoder
        adversary = (PatchAdversary(discriminator, ae.disc_start, ae.disc_weight)
                     if discriminator is not None else None)
        return cls(ae.loss, ae.kl, ae.perceptual, features if ae.perceptual > 0 else None, adversary)

    def check(self, model: Any) -> None:
        if not hasattr(model, "autoencoder"):
            raise ValueError(NOT_A_FLOW_OBJECTIVE)

    def terms(self, model: Any, x: Tensor, rng: BatchRandom | None = None) -> dict[str, Tensor]:
        """Each term of the loss, batch means: ``reconstruction``, ``perceptual``, ``kl`` (nats per pixel)."""
        return self.terms_and_reconstruction(model, x, rng)[0]

    def terms_and_reconstruction(self, model: Any, x: Tensor,
                                 rng: BatchRandom | None = None) -> tuple[dict[str, Tensor], Tensor]:
        """:meth:`terms` and the reconstructions themselves (B, C, H, W), which the adversarial term judges."""
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
        return terms, recon

    def __call__(self, model: Any, x: Tensor, rng: BatchRandom | None = None,
                 labels: Tensor | None = None) -> Tensor:
        terms, recon = self.terms_and_reconstruction(model, x, rng)
        perceptual = self.perceptual * terms.get("perceptual", torch.zeros(()))
        loss = terms["reconstruction"] + self.kl * terms["kl"] + perceptual  # the sum as before the discriminator
        # a training term: its adaptive weight needs gradients, so a loss evaluated without them leaves it out
        if self.adversary is not None and self.adversary.active and torch.is_grad_enabled():
            # LDM's L_rec, whose gradient the adversarial one is balanced against, excludes the KL
            rec = terms["reconstruction"] + perceptual
            loss = loss + self.adversary.generator_loss(x, recon, rec, model.autoencoder.last_layer)
        return loss


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


__all__ = ["AutoencoderLoss", "PatchAdversary", "adaptive_weight", "conv_features", "hinge_discriminator_loss",
           "kl_to_standard_normal", "perceptual_distance"]
