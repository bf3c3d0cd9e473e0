"""The picture of a batch of samples, chosen by the kind of data."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from ..data import Dataset
from ..viz import image_grid, plot_points


def write_samples_picture(samples: Tensor, dataset: Dataset, path: Path, title: str = "") -> Path:
    """2-D scatter + density beside the data for points; an image grid for images."""
    if dataset.kind == "points":
        return plot_points(samples, dataset.reference(len(samples), seed=1), path, title=title)
    pixels = dataset.to_pixels(samples[:64])
    return image_grid(pixels, path, scale=max(1, math.ceil(128 / pixels.shape[-1] / 4)))
