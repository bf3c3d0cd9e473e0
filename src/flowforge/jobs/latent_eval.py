"""What ``flowforge eval`` does for a latent model (``data.latent``) and an autoencoder: the likelihood labelled as
the latent's (latent models), PSNR / SSIM of the test reconstructions, and the reconstruction floor, the Fréchet distance of the autoencoder's reconstructions of real test images, beside
the samples' scores, so a reader sees how much of a latent model's FD is the autoencoder's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..data import Dataset
from ..metrics import heldout_likelihood
from ..metrics.reconstruction import psnr, ssim
from ..models.autoencoder import Autoencoder
from ..models.latent import LatentFlow
from ..runs import Run
from .image_eval import image_scores


def reconstructs(model: object) -> bool:
    """Whether ``model`` is scored by its reconstructions: a latent model or an autoencoder."""
    return isinstance(model, (LatentFlow, Autoencoder))


def reconstruction_held_out(run: Run, dataset: Dataset, n_likelihood: int | None,
                            phase: Callable[[str], None]) -> dict[str, Any]:
    """PSNR and SSIM of the reconstructions of the test images (the first ``n_likelihood``, or
    ``eval.n_likelihood``; 0: all) and, for a latent model, their likelihood in latent nats and bits per latent
    dimension (labelled ``unit: latent``); never pixel bits/dim (:data:`~flowforge.models.latent.
    PIXEL_BITS_REFUSED`)."""
    model = run.model
    n = n_likelihood if n_likelihood is not None else run.config.eval.n_likelihood
    scored = dataset.test[:n] if n else dataset.test
    phase(f"reconstructions of {len(scored)} held-out examples")
    recon = reconstructions(model, scored)
    lo, hi = dataset.value_range
    x01, r01 = (scored - lo) / (hi - lo), ((recon - lo) / (hi - lo)).clamp(0, 1)
    out: dict[str, Any] = {"reconstruction": {"psnr": float(psnr(r01, x01).mean()),
                                              "ssim": float(ssim(r01, x01).mean()), "n": len(scored)}}
    if isinstance(model, LatentFlow):
        phase(f"latent likelihood of {len(scored)} held-out examples")
        device = next(model.parameters()).device
        latents = torch.cat([model.encode(b.to(device)) for b in scored.split(500)])  # (N, C', h, w)
        score = heldout_likelihood(model.flow, latents, seed=run.config.eval.seed)
        out["latent_likelihood"] = {"unit": "latent", "nll_latent_nats": score["nll"],
                                    "nll_stderr": score["nll_stderr"], "bits_per_latent_dim": score["bits_per_dim"],
                                    "latent_dims": model.latent_dims, "n": score["n"]}
    return out


@torch.no_grad()
def reconstructions(model: LatentFlow | Autoencoder, x: Tensor, batch: int = 500) -> Tensor:
    """The autoencoder's reconstructions (N, C, H, W) of images ``x``."""
    device = next(model.parameters()).device
    return torch.cat([model.reconstruct(b.to(device, non_blocking=True)).cpu() for b in x.split(batch)])


def reconstruction_floor(model: LatentFlow | Autoencoder, dataset: Dataset, n: int, seed: int,
                         cache_dir: str | None = None) -> dict[str, Any] | None:
    """The image scores (FD, KD, precision / recall in the pinned extractor) of the reconstructions of ``n``
    training images against the test split, the row to read a latent model's ``model`` row beside; the training
    images are the ``noise_floor`` row's, so the two floors differ only by the autoencoder."""
    pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(seed + 2))[:n]
    recon = reconstructions(model, dataset.train[pick])
    lo, hi = dataset.value_range
    scores = image_scores(dataset, recon.clamp(lo, hi), recon, labels=None, seed=seed,
                          device=next(model.parameters()).device)
    return scores["model"] if scores is not None and "model" in scores else None


__all__ = ["reconstructs", "reconstruction_floor", "reconstruction_held_out", "reconstructions"]
