"""A folder of PNG/JPEG images (searched recursively), optionally one subfolder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.errors import DataError
from flowforge.data.intensity import model_range, scale_levels
from flowforge.data.split import holdout

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PIL_MODES = {1: "L", 3: "RGB"}
EIGHT_BIT_LEVELS = 256


def image_paths(root: Path) -> list[Path]:
    """All image files under ``root``, in sorted order."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; set data.path to a folder of {'/'.join(IMAGE_SUFFIXES)} files")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images found; put the images in this folder")
    return paths


def class_labels(root: Path, paths: list[Path]) -> np.ndarray | None:
    """``(N,)`` int64 index of each image's first-level subfolder (sorted names), or None.

    Labels exist only when every image lies inside a subfolder of ``root``.
    """
    parts = [p.relative_to(root).parts for p in paths]
    if any(len(part) < 2 for part in parts):
        return None
    classes = sorted({part[0] for part in parts})
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[part[0]] for part in parts], dtype=np.int64)


def center_square(image: Image.Image) -> Image.Image:
    """The largest centred square of ``image`` (so resizing never distorts the aspect ratio)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def read_image(path: Path, channels: int, size: int | None) -> np.ndarray:
    """``(C, H, W)`` uint8 pixels of one image file, centre-cropped and resized to ``size`` if given."""
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert(PIL_MODES[channels])
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read this image ({err}); replace or delete the file") from None
    if size is not None and image.size != (size, size):
        image = center_square(image).resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, C)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_images(paths: list[Path], channels: int, size: int | None) -> np.ndarray:
    """``(N, C, H, W)`` uint8; without ``size`` every image must have the first one's size."""
    images = []
    for path in paths:
        pixels = read_image(path, channels, size)
        if images and pixels.shape != images[0].shape:
            raise DataError(
                f"{path}: is {pixels.shape[2]}x{pixels.shape[1]} but {paths[0].name} is "
                f"{images[0].shape[2]}x{images[0].shape[1]}; set data.image_size=N to resize all images"
            )
        images.append(pixels)
    return np.stack(images)


def load_image_folder(cfg: DataConfig) -> Dataset:
    """Images under ``cfg.path`` as ``(N, C, H, W)`` in ``cfg.image_range``, with a seeded 10% test split."""
    if not cfg.path:
        raise DataError("data.path: the 'image-folder' data set reads a folder; set data.path=/path/to/images")
    root = Path(cfg.path).expanduser()
    paths = image_paths(root)
    images = scale_levels(read_images(paths, cfg.channels, cfg.image_size), EIGHT_BIT_LEVELS, cfg.image_range)
    labels = class_labels(root, paths)
    train, test = holdout(len(images), cfg.seed, str(root))
    data = torch.from_numpy(images)  # (N, C, H, W)
    return Dataset(
        name=root.name,
        kind="image",
        train=data[train],
        test=data[test],
        levels=EIGHT_BIT_LEVELS,
        value_range=model_range(cfg.image_range),
        train_labels=None if labels is None else torch.from_numpy(labels[train]),
        test_labels=None if labels is None else torch.from_numpy(labels[test]),
    )
