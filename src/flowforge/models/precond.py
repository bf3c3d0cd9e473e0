"""EDM preconditioning: a wrapper that turns any backbone into a well-scaled denoiser."""

from __future__ import annotations

from torch import Tensor, nn


class EDMPrecond(nn.Module):
    """``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al., 2022, arXiv:2206.00364, Table 1).

    .. math::
        c_{skip} = \\frac{\\sigma_d^2}{\\sigma^2 + \\sigma_d^2}, \\quad
        c_{out} = \\frac{\\sigma \\sigma_d}{\\sqrt{\\sigma^2 + \\sigma_d^2}}, \\quad
        c_{in} = \\frac{1}{\\sqrt{\\sigma^2 + \\sigma_d^2}}, \\quad
        c_{noise} = \\tfrac14 \\ln \\sigma,

    chosen so that the network's input and its training target have unit
    variance at every noise level; the loss weight that equalises the target's
    scale is ``lambda(sigma) = 1 / c_out^2`` (:meth:`loss_weight`). ``x`` lives in
    EDM's ``s = 1`` coordinates, ``x = x0 + sigma eps``.

    Arguments:
        net: any backbone ``net(x, c_noise[, labels])`` returning a tensor of ``x``'s shape.
        sigma_data: standard deviation of the data (EDM: 0.5 for images in [-1, 1]).

    Shapes: ``x`` (batch, ...), ``sigma`` (batch,) -> (batch, ...).
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}")
        self.net, self.sigma_data = net, sigma_data

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` of any shape."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma.square() + sd2)
        c_out = sigma * self.sigma_data / (sigma.square() + sd2).sqrt()
        c_in = 1 / (sigma.square() + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def loss_weight(self, sigma: Tensor) -> Tensor:
        """EDM's ``lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2``."""
        return (sigma.square() + self.sigma_data**2) / (sigma * self.sigma_data).square()

    def forward(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> Tensor:
        shape = (-1, *([1] * (x.dim() - 1)))
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma.to(x.dtype))
        args = (c_in.reshape(shape) * x, c_noise)  # (B, ...), (B,)
        out = self.net(*args) if labels is None else self.net(*args, labels)  # F: (B, ...)
        return c_skip.reshape(shape) * x + c_out.reshape(shape) * out.to(x.dtype)

