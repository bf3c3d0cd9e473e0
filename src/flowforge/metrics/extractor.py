"""A loaded feature extractor: checks images, maps them to [0, 1] pixels and runs a pinned network in batches.

Images in flowforge are float tensors ``(N, C, H, W)`` in the data set's value range,
``(-1, 1)`` or ``(0, 1)`` (``Dataset.value_range``). The extractor is told that
range, maps it linearly to ``[0, 1]`` and clamps (samples overshoot the range a
little; the literature's protocols clip too, by saving 8-bit images). When more
than 1 % of the values lie further than half the range's width beyond either end,
the stated range is taken to be wrong (``0..255`` images declared as ``(0, 1)``,
``[-1, 1]`` images declared as ``(0, 1)``) and that is an error; a few wild pixels of
a poor sample are not. ``check_range=False`` skips the check (only clamps), for
samples known to be in the stated range however far they stray.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowforge.errors import UserError

# More than RANGE_OUTLIERS of the values further than RANGE_SLACK x the range's width outside it: a wrong range.
RANGE_SLACK = 0.5
RANGE_OUTLIERS = 0.01


class ExtractorError(UserError, ValueError):
    """A feature extractor cannot be loaded or cannot take these images; the message names the fix."""


@dataclass(frozen=True)
class Features:
    """Outputs of an extractor for ``N`` images: ``features`` (N, D) float32, ``logits`` (N, K) or None."""

    features: Tensor
    logits: Tensor | None = None


def to_unit_pixels(
    images: Tensor, value_range: tuple[float, float], *, check_range: bool = True, who: str = "images"
) -> Tensor:
    """Map ``images`` from ``value_range = (lo, hi)`` to float32 ``[0, 1]``, clamped; raise on a wrong range.

    Example:
        >>> import torch
        >>> to_unit_pixels(torch.tensor([-1.0, 0.0, 1.02]), (-1.0, 1.0))
        tensor([0.0000, 0.5000, 1.0000])
    """
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ExtractorError(f"value_range must be a pair (lo, hi), e.g. (-1.0, 1.0); got {value_range!r}") from None
    if not hi > lo:
        raise ExtractorError(f"value_range must have lo < hi, got {value_range!r}")
    x = images.float()
    if not torch.isfinite(x).all():
        raise ExtractorError(f"{who} contain NaN or inf values; the generator diverged or the images are corrupt")
    slack = RANGE_SLACK * (hi - lo)
    outside = float(((x < lo - slack) | (x > hi + slack)).float().mean())
    if check_range and outside > RANGE_OUTLIERS:
        raise ExtractorError(
            f"{who} span [{float(x.min()):.3g}, {float(x.max()):.3g}] ({outside:.0%} of the values far outside "
            f"the stated value_range ({lo:g}, {hi:g})); pass the range the images are really in, e.g. "
            f"value_range=(0, 255) for 8-bit values or the data set's Dataset.value_range"
        )
    return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)


class FeatureExtractor:
    """A network ``net`` that maps ``[0, 1]`` pixels ``(B, C, H, W)`` to ``(features (B, D), logits (B, K) | None)``.

    Arguments:
        name: the registry name (``EXTRACTORS``).
        net: the network in eval mode; it does its own normalisation and resizing.
        weights_sha256: SHA-256 of the weights file it was loaded from (checked at load).
        image_shape: accepted ``(C, H, W)``; ``None`` for a side means any size.
        feature_dim: ``D``.
        num_classes: ``K``, or None when the network gives no logits.
        shape_hint: what to do with images of another shape, for the error message.
    """

    def __init__(
        self,
        name: str,
        net: nn.Module,
        weights_sha256: str,
        image_shape: tuple[int | None, int | None, int | None],
        feature_dim: int,
        num_classes: int | None,
        shape_hint: str = "",
    ):
        self.name = name
        self.net = net.eval()
        self.weights_sha256 = weights_sha256
        self.image_shape = image_shape
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.shape_hint = shape_hint

    def to(self, device: torch.device | str) -> FeatureExtractor:
        """Move the network to ``device`` (images are moved there chunk by chunk; features come back on the CPU)."""
        self.net.to(device)
        return self

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name!r}, sha256={self.weights_sha256[:12]}..., D={self.feature_dim})"

    def check_shape(self, images: Tensor) -> None:
        expected = "(N, " + ", ".join("any" if s is None else str(s) for s in self.image_shape) + ")"
        shape = tuple(images.shape) if isinstance(images, Tensor) else None
        ok = (
            shape is not None
            and len(shape) == 4
            and shape[0] > 0
            and all(want is None or got == want for want, got in zip(self.image_shape, shape[1:]))
        )
        if not ok:
            got = f"shape {shape}" if shape is not None else type(images).__name__
            raise ExtractorError(
                f"the {self.name!r} extractor takes image tensors {expected}, got {got}. {self.shape_hint}".rstrip()
            )

    @torch.inference_mode()
    def __call__(
        self, images: Tensor, value_range: tuple[float, float], *, batch_size: int = 100, check_range: bool = True
    ) -> Features:
        """Features (and logits) of ``images`` (N, C, H, W) given in ``value_range`` (see :func:`to_unit_pixels`)."""
        self.check_shape(images)
        pixels = to_unit_pixels(images, value_range, check_range=check_range)  # (N, C, H, W) in [0, 1]
        device = next(iter(self.net.parameters()), pixels).device
        feats, logits = [], []
        for chunk in pixels.split(batch_size):
            f, lg = self.net(chunk.to(device, non_blocking=True))  # (B, D), (B, K) | None
            feats.append(f.float())
            if lg is not None:
                logits.append(lg.float())
        # one copy to the host at the end: the statistics (FD's float64 covariance) are taken on the CPU
        return Features(torch.cat(feats).cpu(), torch.cat(logits).cpu() if logits else None)
