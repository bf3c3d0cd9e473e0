"""Held-out likelihood of any model that implements ``log_prob`` and ``bits_per_dim``."""

from __future__ import annotations

import torch


@torch.no_grad()
def heldout_likelihood(model, x: torch.Tensor, seed: int, batch: int = 500,
                       context: torch.Tensor | None = None) -> dict[str, float]:
    """Held-out negative log-likelihood (nats per example), its standard error, and bits/dim of ``x`` under
    ``model`` (any model of the flowforge protocol); of ``x`` given its rows of ``context`` for a conditional flow.

    Dequantization noise comes from ``seed``, so repeated calls score the same noisy data.
    """
    gen = torch.Generator().manual_seed(seed)  # on the CPU: one seed scores the same noisy data on every device
    device = next(iter(model.parameters()), x).device  # the batches go where the model is
    given = {} if context is None else {"context": context}
    log_p = torch.cat([model.log_prob(x[i:i + batch].to(device), generator=gen,
                                      **{k: v[i:i + batch].to(device) for k, v in given.items()})
                       for i in range(0, len(x), batch)]).cpu()
    bpd = model.log_prob_to_bits_per_dim(log_p).double()
    log_p = log_p.double()
    return {"nll": float(-log_p.mean()), "nll_stderr": float(log_p.std() / len(log_p) ** 0.5),
            "log_likelihood": float(log_p.mean()), "bits_per_dim": float(bpd.mean()), "n": len(x)}


@torch.no_grad()
def matched_gaussian_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean negative log-likelihood (nats per example) of ``test`` under the Gaussian with ``train``'s mean and
    covariance: the trivial baseline beside a density model's held-out NLL (continuous vectors).

    Example:
        >>> x = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> abs(matched_gaussian_nll(x, x) - 2.838) < 0.02  # log(2 pi) + 1 for a standard normal in 2-D
        True
    """
    flat, test = train.reshape(len(train), -1).double(), test.reshape(len(test), -1).double()
    cov = torch.cov(flat.T).reshape(flat.shape[1], flat.shape[1])
    gaussian = torch.distributions.MultivariateNormal(flat.mean(0), covariance_matrix=cov)
    return float(-gaussian.log_prob(test).mean())
