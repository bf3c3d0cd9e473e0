"""Held-out likelihood of any model that implements ``log_prob`` and ``bits_per_dim``."""

from __future__ import annotations

import torch


@torch.no_grad()
def heldout_likelihood(model, x: torch.Tensor, seed: int, batch: int = 500) -> dict[str, float]:
    """Held-out negative log-likelihood (nats per example), its standard error, and bits/dim of ``x`` under
    ``model`` (any model of the flowforge protocol).

    Dequantization noise comes from ``seed``, so repeated calls score the same noisy data.
    """
    gen = torch.Generator().manual_seed(seed)
    log_p = torch.cat([model.log_prob(x[i:i + batch], generator=gen) for i in range(0, len(x), batch)])
    bpd = model.log_prob_to_bits_per_dim(log_p).double()
    log_p = log_p.double()
    return {"nll": float(-log_p.mean()), "nll_stderr": float(log_p.std() / len(log_p) ** 0.5),
            "log_likelihood": float(log_p.mean()), "bits_per_dim": float(bpd.mean()), "n": len(x)}
