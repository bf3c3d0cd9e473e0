"""Binary masks that split an input into the part a coupling layer keeps and the part it transforms.

Convention of every coupling in flowforge: ``mask == 1`` marks the identity part (the conditioner's input),
``mask == 0`` the part that is transformed. Two masks of opposite ``parity`` are complementary, so
alternating them lets every coordinate be transformed (Dinh et al., 2015, arXiv:1410.8516, §3.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _check_parity(parity: int) -> None:
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1; got {parity!r}")


def _check_image_shape(name: str, shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(n) < 1 for n in shape):
        raise ValueError(f"{name} expects an image event shape (C, H, W); got {tuple(shape)}")
    c, h, w = (int(n) for n in shape)
    return c, h, w


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> Tensor:
    """Spatial checkerboard, the same in every channel: ``mask[c, i, j] = 1`` where ``(i + j) % 2 == parity``.

    RealNVP's checkerboard masking (Dinh et al., 2017, arXiv:1605.08803, §3.4, Fig. 3).

    Arguments:
        shape: the event shape ``(C, H, W)``.
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor (default dtype) of shape ``(C, H, W)`` with values 0 and 1.

    Example:
        >>> checkerboard_mask((1, 2, 3), parity=0)
        tensor([[[1., 0., 1.],
                 [0., 1., 0.]]])
    """
    _check_parity(parity)
    c, h, w = _check_image_shape("checkerboard_mask", shape)
    i = torch.arange(h).reshape(h, 1)
    j = torch.arange(w).reshape(1, w)
    board = ((i + j) % 2 == parity).to(torch.get_default_dtype())  # (H, W)
    return board.expand(c, h, w).clone()


def channel_mask(shape: Sequence[int], parity: int = 0) -> Tensor:
    """Channel-wise mask: ones on the first ``C // 2`` channels (parity 0) or on the others (parity 1).

    RealNVP's channel-wise masking after a squeeze (arXiv:1605.08803, §3.4); Glow's split of the
    channels in its affine coupling (Kingma & Dhariwal, 2018, arXiv:1807.03039, §3.3).

    Arguments:
        shape: the event shape ``(C, H, W)`` with ``C >= 2``.
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor (default dtype) of shape ``(C, H, W)`` with values 0 and 1.

    Example:
        >>> channel_mask((4, 1, 1), parity=1).flatten()
        tensor([0., 0., 1., 1.])
    """
    _check_parity(parity)
    c, h, w = _check_image_shape("channel_mask", shape)
    if c < 2:
        raise ValueError(f"channel_mask needs at least 2 channels to split; got shape {tuple(shape)}")
    first = (torch.arange(c) < c // 2).to(torch.get_default_dtype())  # (C,)
    mask = first if parity == 0 else 1 - first
    return mask.reshape(c, 1, 1).expand(c, h, w).clone()


def half_mask(dim: int, parity: int = 0, *, interleave: bool = False) -> Tensor:
    """Vector mask that splits ``dim`` features in two halves: ones on the first ``dim // 2`` features
    (parity 0) or on the others (parity 1).

    With ``interleave=True`` the halves are the even (parity 0) and odd (parity 1) indices instead,
    the partition NICE uses on MNIST (Dinh et al., 2015, arXiv:1410.8516, §5.1).

    Arguments:
        dim: number of features, at least 2.
        parity: 0 or 1; the two parities are complementary.

    Returns:
        A float tensor (default dtype) of shape ``(dim,)`` with values 0 and 1.

    Example:
        >>> half_mask(4, 0), half_mask(4, 1, interleave=True)
        (tensor([1., 1., 0., 0.]), tensor([0., 1., 0., 1.]))
    """
    _check_parity(parity)
    if int(dim) < 2:
        raise ValueError(f"half_mask needs at least 2 features to split; got dim={dim}")
    idx = torch.arange(int(dim))
    first = (idx % 2 == 0) if interleave else (idx < dim // 2)
    mask = first.to(torch.get_default_dtype())
    return mask if parity == 0 else 1 - mask


def as_coupling_mask(name: str, mask: Tensor) -> Tensor:
    """Validate a coupling mask (a tensor of 0s and 1s of event shape); return a copy in the default dtype.

    The copy keeps every layer's buffer separate, so checkpoints never hold shared tensors.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name}: mask must be a tensor of the event shape; got {type(mask).__name__}")
    if mask.dim() == 0:
        raise ValueError(f"{name}: mask must have the event shape, (D,) or (C, H, W); got a scalar")
    mask = mask.detach().to(torch.get_default_dtype())
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name}: mask must hold only 0s and 1s")
    if bool((mask == 1).all()) or bool((mask == 0).all()):
        raise ValueError(f"{name}: mask is all {int(mask.flatten()[0])}s, so the coupling would do nothing "
                         f"(or see nothing); use a mask with both 0s and 1s")
    return mask.clone().contiguous()
