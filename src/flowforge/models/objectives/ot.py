"""Minibatch optimal-transport coupling of noise and data (OT-CFM)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def ot_permutation(x0: Tensor, noise: Tensor) -> Tensor:
    """The permutation ``p`` minimising ``sum_i |x0_i - noise_{p(i)}|^2`` over one minibatch.

    Tong et al. (2024, arXiv:2302.00482) and Pooladian et al. (2023,
    arXiv:2304.14772): pairing data and noise by exact OT within a batch makes
    the conditional paths cross less, so the learnt field is straighter and
    needs fewer steps. With uniform weights on two equal-size batches the exact
    plan (POT's network simplex, ``ot.emd``) is a permutation matrix.

    Shapes: ``x0`` and ``noise`` (batch, ...) -> (batch,) int64 indices into ``noise``.
    """
    import ot

    a = x0.detach().flatten(1).double().cpu().numpy()
    b = noise.detach().flatten(1).double().cpu().numpy()
    cost = ot.dist(a, b)  # squared Euclidean, (B, B)
    weights = np.full(len(a), 1.0 / len(a))
    plan = ot.emd(weights, weights, cost)
    return torch.from_numpy(plan.argmax(axis=1)).to(noise.device)
