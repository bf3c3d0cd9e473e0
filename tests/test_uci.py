"""The MAF release's tabular sets, read from small files of the release's formats made here (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from flowforge.config import DataConfig
from flowforge.data import DataError, load_dataset
from flowforge.data.tabular import context_indices
from flowforge.data.uci import FILES, uci_splits


def release(tmp_path, name: str) -> DataConfig:
    """A cache folder laid out as the extracted release, ``maf-uci/data/<set>/...``, with fake files."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "maf-uci" / "data"
    paths = [folder / f for f in FILES[name]]
    paths[0].parent.mkdir(parents=True)
    if name == "power":
        np.save(paths[0], rng.normal(size=(1000, 8)))
    elif name == "miniboone":
        np.save(paths[0], rng.normal(size=(500, 43)))
    elif name == "hepmass":
        for path, extra in zip(paths, (0, 1)):  # the test file has one column more (MAF's code drops it)
            label = rng.integers(0, 2, (400, 1))
            features = rng.normal(size=(400, 27))
            features[:, 5] = rng.integers(0, 3, 400)  # a feature whose smallest value recurs: removed
            mass = np.full((400, 1 + extra), 1000.0)  # one mass in the "1000" files: removed
            header = ",".join(["# label"] + [f"f{i}" for i in range(27)] + ["mass"] + ["x"] * extra)
            np.savetxt(path, np.hstack([label, features, mass]), delimiter=",", header=header, comments="")
    return DataConfig(name=name, cache_dir=str(tmp_path), download=False)


@pytest.mark.parametrize("name, dims", [("power", 6), ("miniboone", 43), ("hepmass", 26)])
def test_uci_sets_are_split_and_standardised_as_in_maf(tmp_path, name, dims):
    cfg = release(tmp_path, name)
    train, val, test = uci_splits(cfg)
    assert train.shape[1] == val.shape[1] == test.shape[1] == dims
    if name != "hepmass":  # the last 10% test, then the last 10% of the rest validation
        assert len(test) == int(0.1 * (len(train) + len(val) + len(test)))
        assert len(val) == int(0.1 * (len(train) + len(val)))
        both = np.vstack([train, val])
        assert np.allclose(both.mean(0), 0, atol=1e-12) and np.allclose(both.std(0), 1)
    data = load_dataset(cfg)
    assert data.shape == (dims,) and len(data.train) == len(train) and len(data.test) == len(test)


def test_power_is_reproducible_and_drops_two_columns(tmp_path):
    cfg = release(tmp_path, "power")
    a, b = uci_splits(cfg)[0], uci_splits(cfg)[0]
    assert np.array_equal(a, b) and a.shape[1] == 6


def test_missing_files_name_the_folder_and_the_release(tmp_path):
    with pytest.raises(DataError, match="zenodo.org/record/1161203.*data.download=true"):
        load_dataset(DataConfig(name="gas", cache_dir=str(tmp_path), download=False))


def test_tabular_csv_context_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n" + "\n".join(f"{i},{2 * i},{-i}" for i in range(20)) + "\n")
    data = load_dataset(DataConfig(name="tabular", path=str(path), context_columns=["b"]))
    assert data.shape == (2,) and data.train_context.shape == (18, 1) and data.spec()["context_dim"] == 1
    assert np.allclose(data.train_context[:, 0].numpy(), -2 * data.train[:, 1].numpy())
    with pytest.raises(DataError, match=r"\['z'\] are not in the header"):
        context_indices(["a", "b"], ["z"], "t.csv")
    path.write_text("1,2\n3,4\n")
    with pytest.raises(DataError, match="no header"):
        load_dataset(DataConfig(name="tabular", path=str(path), context_columns=["b"]))
