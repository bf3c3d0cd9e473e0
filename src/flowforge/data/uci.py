"""The tabular sets of the MAF and NSF papers (POWER, GAS, HEPMASS, MINIBOONE, BSDS300) from the MAF data release.

Papamakarios (2018), *Preprocessed datasets for MAF experiments*, Zenodo, doi:10.5281/zenodo.1161203: one archive,
``data.tar.gz``, whose ``data/<set>/`` folders hold the files read here. Each set is split and standardised as in
the MAF code (``datasets/<set>.py``, Papamakarios et al., 2017, arXiv:1705.07057, App. D), which the NSF paper
reuses, so test log-likelihoods compare with the papers' tables. The validation split is returned as ``val`` by
:func:`uci_splits`; training uses the train split and :class:`Dataset` scores the test split.

GAS needs pandas (its file is a pickled pandas frame) and BSDS300 needs h5py; neither is a flowforge dependency.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from flowforge.config import DataConfig
from flowforge.data.base import Dataset
from flowforge.data.downloads import CHUNK, cache_root
from flowforge.data.errors import DataError

RELEASE_URL = "https://zenodo.org/record/1161203/files/data.tar.gz"
# Zenodo publishes an MD5 per file, not a SHA-256; this one is the record's value as quoted by the code of other
# projects that download the archive. It could not be checked from this machine (no route to zenodo.org).
RELEASE_MD5 = "9b9c9b0375315ad270eba4ce80c093ab"
FOLDER = "maf-uci"
FILES = {"power": ("power/data.npy",), "gas": ("gas/ethylene_CO.pickle",),
         "hepmass": ("hepmass/1000_train.csv", "hepmass/1000_test.csv"), "miniboone": ("miniboone/data.npy",),
         "bsds300": ("BSDS300/BSDS300.hdf5",)}
Splits = tuple[np.ndarray, np.ndarray, np.ndarray]  # (train, validation, test), each (N, D) float


def _tail_splits(data: np.ndarray) -> Splits:
    """MAF's split: the last 10% is test, the last 10% of the rest validation."""
    n_test = int(0.1 * len(data))
    test, data = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * len(data))
    return data[:-n_val], data[-n_val:], test


def _standardise(train: np.ndarray, val: np.ndarray, test: np.ndarray, ddof: int = 0) -> Splits:
    """Standardise with the mean and std of train + validation (MAF's POWER, GAS, MINIBOONE)."""
    both = np.vstack([train, val])
    mu, s = both.mean(0), both.std(0, ddof=ddof)
    return (train - mu) / s, (val - mu) / s, (test - mu) / s


def power(files: list[Path]) -> Splits:
    """POWER (6-D): the release's 8 columns shuffled with seed 42, columns 1 and 3 (global reactive power, global
    intensity) dropped, uniform noise added to break ties (MAF's ``power.py``), split and standardised."""
    rng = np.random.RandomState(42)
    data = np.load(files[0], allow_pickle=False).astype(np.float64)
    rng.shuffle(data)
    n = len(data)
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    voltage_noise, gap_noise = 0.01 * rng.rand(n, 1), 0.001 * rng.rand(n, 1)  # drawn in MAF's order
    noise = np.hstack([gap_noise, voltage_noise, rng.rand(n, 3), np.zeros((n, 1))])
    return _standardise(*_tail_splits(data + noise))


def miniboone(files: list[Path]) -> Splits:
    """MINIBOONE (43-D): split in file order and standardised (the outliers were removed in the release)."""
    return _standardise(*_tail_splits(np.load(files[0], allow_pickle=False).astype(np.float64)))


def _read_hepmass(path: Path) -> np.ndarray:
    data = np.genfromtxt(path, delimiter=",", skip_header=1, ndmin=2)
    data = data[:, ~np.isnan(data).all(0)]  # empty fields of trailing commas
    return data[data[:, 0] == 1][:, 1:]  # signal events only, without the label column


def hepmass(files: list[Path]) -> Splits:
    """HEPMASS (21-D): the signal rows of ``1000_train.csv`` / ``1000_test.csv``, the test file's extra last
    column dropped, constant columns dropped, standardised by the training rows (pandas' std, ddof 1), then the
    features whose smallest value recurs more than 5 times removed, and the last 10% of training rows kept for
    validation."""
    train, test = _read_hepmass(files[0]), _read_hepmass(files[1])
    if test.shape[1] == train.shape[1] + 1:  # MAF's hepmass.py drops the test file's extra last column
        test = test[:, :-1]
    constant = train.std(0) == 0  # the mass of a "1000" file's signal rows: standardising it would give NaN
    train, test = train[:, ~constant], test[:, ~constant]
    mu, s = train.mean(0), train.std(0, ddof=1)
    train, test = (train - mu) / s, (test - mu) / s
    drop = [i for i, column in enumerate(train.T) if Counter(column.tolist())[column.min()] > 5]
    train, test = np.delete(train, drop, axis=1), np.delete(test, drop, axis=1)
    n_val = int(0.1 * len(train))
    return train[:-n_val], train[-n_val:], test


def gas(files: list[Path]) -> Splits:
    """GAS (8-D): the ethylene-CO frame without ``Meth``, ``Eth`` and ``Time``, columns correlated above 0.98 with
    another removed one at a time, standardised, then split (MAF's ``gas.py``). Needs pandas."""
    try:
        import pandas as pd
    except ImportError:
        raise DataError("the GAS set is a pickled pandas frame: pip install pandas to read it") from None
    frame = pd.read_pickle(files[0]).drop(columns=["Meth", "Eth", "Time"])
    while True:
        counts = (frame.corr() > 0.98).to_numpy().sum(axis=1)
        if not (counts > 1).any():
            break
        frame = frame.drop(columns=frame.columns[int(np.where(counts > 1)[0][0])])
    data = frame.to_numpy(dtype=np.float64)
    data = (data - data.mean(0)) / data.std(0, ddof=1)
    return _tail_splits(data)


def bsds300(files: list[Path]) -> Splits:
    """BSDS300 (63-D): the release's own train / validation / test patches. Needs h5py."""
    try:
        import h5py
    except ImportError:
        raise DataError("the BSDS300 set is an HDF5 file: pip install h5py to read it") from None
    with h5py.File(files[0], "r") as f:
        return np.asarray(f["train"]), np.asarray(f["validation"]), np.asarray(f["test"])


PREPROCESS: dict[str, Callable[[list[Path]], Splits]] = {
    "power": power, "gas": gas, "hepmass": hepmass, "miniboone": miniboone, "bsds300": bsds300}


def _md5_download(dest: Path) -> None:
    """The release archive to ``dest``, kept only when its MD5 matches (temp file, then rename)."""
    import urllib.error
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest = dest.with_suffix(".part"), hashlib.md5()
    try:
        with urllib.request.urlopen(RELEASE_URL, timeout=60) as response, tmp.open("wb") as out:
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != RELEASE_MD5:
            raise DataError(f"checksum mismatch for {RELEASE_URL}: md5 {digest.hexdigest()}, expected {RELEASE_MD5}")
        tmp.replace(dest)
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"cannot download {RELEASE_URL} ({err}); download it by hand and extract its data/ folder "
                        f"into {dest.parent}") from None
    finally:
        tmp.unlink(missing_ok=True)


def uci_files(cfg: DataConfig) -> list[Path]:
    """The files of set ``cfg.name`` under ``<cache>/maf-uci/data/``: found, or extracted from the downloaded
    release archive."""
    root = cache_root(cfg.cache_dir) / FOLDER
    files = [root / "data" / name for name in FILES[cfg.name]]
    if all(f.is_file() for f in files):
        return files
    archive = root / "data.tar.gz"
    if not archive.is_file():
        if not cfg.download:
            raise DataError(f"{cfg.name}: {', '.join(map(str, files))} not found and data.download is false; extract "
                            f"{RELEASE_URL} into {root} or set data.download=true")
        _md5_download(archive)
    with tarfile.open(archive, "r:gz") as tar:
        for name in FILES[cfg.name]:
            tar.extract(f"data/{name}", root, filter="data")
    return files


def uci_splits(cfg: DataConfig) -> Splits:
    """``(train, validation, test)`` of the MAF release's set ``cfg.name``, preprocessed as in the papers."""
    return PREPROCESS[cfg.name](uci_files(cfg))


def load_uci(cfg: DataConfig) -> Dataset:
    """POWER, GAS, HEPMASS, MINIBOONE or BSDS300 as points ``(N, D)``: the papers' train and test splits."""
    train, _, test = uci_splits(cfg)
    return Dataset(cfg.name, "points", torch.from_numpy(train.astype(np.float32)),
                   torch.from_numpy(test.astype(np.float32)))


__all__ = ["FILES", "PREPROCESS", "RELEASE_URL", "load_uci", "uci_splits"]
