"""Data sets for flowforge: 2-D toy distributions, digits, MNIST, Fashion-MNIST, CIFAR-10 and user files.

``load_dataset(cfg.data)`` returns a :class:`Dataset` whose tensors are already
split, validated and scaled to model space; problems raise :class:`DataError`
with a message that names the file and the fix.
"""

from flowforge.data.base import Dataset
from flowforge.data.errors import DataError
from flowforge.data.load import LOADERS, load_dataset

__all__ = ["LOADERS", "DataError", "Dataset", "load_dataset"]
