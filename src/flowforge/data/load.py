"""``load_dataset(cfg)``: the registry from a data set's name to its loader."""

from __future__ import annotations

from collections.abc import Callable

from flowforge.config import DataConfig
from flowforge.data.arrays import load_array
from flowforge.data.base import Dataset
from flowforge.data.cifar import load_cifar10
from flowforge.data.digits import load_digits
from flowforge.data.errors import DataError
from flowforge.data.image_folder import load_image_folder
from flowforge.data.latents import with_latents
from flowforge.data.mnist import load_idx_set
from flowforge.data.tabular import load_tabular
from flowforge.data.uci import PREPROCESS, load_uci
from flowforge.data.toy import TOY_SETS
from flowforge.data.toy_loader import load_toy

Loader = Callable[[DataConfig], Dataset]

LOADERS: dict[str, Loader] = {
    **{name: load_toy for name in TOY_SETS},
    "digits": load_digits,
    "mnist": load_idx_set,
    "fashion-mnist": load_idx_set,
    "cifar10": load_cifar10,
    "array": load_array,
    "image-folder": load_image_folder,
    "tabular": load_tabular,
    **{name: load_uci for name in PREPROCESS},
}


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load, validate, split and scale the data set that ``cfg`` describes."""
    loader = LOADERS.get(cfg.name)
    if loader is None:
        raise DataError(f"data.name: unknown data set {cfg.name!r}; choose one of {', '.join(LOADERS)}")
    return with_latents(loader(cfg), cfg)  # data.latent: the autoencoder's latents, cached
