"""The IDX reader and the data sets of ``spikeverse mnist`` (issue 18), on small files the tests
write: plain and gzipped, images and labels; a wrong magic number, truncated data and a
label/image count mismatch are one-line errors naming the file; and the offline default."""

import gzip
import sys

import numpy as np
import pytest
import torch

from spikeverse.cli.app import main
from spikeverse.errors import SpikeverseError
from spikeverse.mnist.data import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    MNIST_FILES,
    load_digits,
    load_mnist,
    read_idx,
)

TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}


def idx_bytes(arr: np.ndarray, dtype=np.dtype("u1")) -> bytes:
    """The IDX encoding of ``arr``, written here from the format's definition (not by the reader's code)."""
    dtype = np.dtype(dtype)
    head = bytes([0, 0, TYPE_CODES[dtype], arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return head + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def write_idx(path, arr, *, gz=False, dtype=np.dtype("u1")):
    data = idx_bytes(np.asarray(arr), dtype)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_folder(root, n_train=12, n_test=5, gz=("train_images", "test_labels"), seed=0):
    """A folder of the four MNIST files with random 28x28 images; ``gz``: the files written gzipped."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, arr in arrays.items():
        name = MNIST_FILES[key] + (".gz" if key in gz else "")
        write_idx(root / name, arr, gz=key in gz)
    return root, arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels_round_trip(tmp_path, gz):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    got_i = read_idx(write_idx(tmp_path / "i", images, gz=gz), IMAGES_MAGIC)
    got_l = read_idx(write_idx(tmp_path / "l", labels, gz=gz), LABELS_MAGIC)
    assert got_i.shape == (7, 5, 3) and got_i.dtype == np.uint8 and (got_i == images).all()
    assert got_l.shape == (7,) and (got_l == labels).all()


def test_idx_big_endian_types(tmp_path):
    """Multi-byte IDX types are big-endian: read back as the same numbers."""
    ints = np.array([[1, -2, 70000], [3, 2**30, -(2**31)]], dtype=np.int64)
    floats = np.array([0.5, -1.25, 3e7], dtype=np.float64)
    assert (read_idx(write_idx(tmp_path / "a", ints, dtype=">i4")) == ints).all()
    assert (read_idx(write_idx(tmp_path / "b", floats, dtype=">f4")) == floats.astype(np.float32)).all()


def test_mnist_folder_plain_and_gzipped(tmp_path):
    root, arrays = mnist_folder(tmp_path / "mnist")
    d = load_mnist(root)
    assert d.name == "mnist" and d.image_shape == (28, 28) and d.pixels == 784
    assert d.train_x.shape == (12, 28, 28) and d.test_x.shape == (5, 28, 28)
    assert d.train_x.dtype == torch.float32 and float(d.train_x.max()) <= 1.0
    assert torch.equal(d.train_x, torch.from_numpy(arrays["train_images"]).float() / 255)
    assert torch.equal(d.test_y, torch.from_numpy(arrays["test_labels"]).long())
    assert d.describe()["train"] == 12 and d.describe()["test"] == 5


def test_gzip_is_told_by_its_bytes_not_its_name(tmp_path):
    """Gzip bytes under the plain name are read (and a plain file wins over a .gz beside it)."""
    root, arrays = mnist_folder(tmp_path / "m", gz=())
    name = MNIST_FILES["train_labels"]
    (root / name).write_bytes(gzip.compress(idx_bytes(arrays["train_labels"])))
    (root / (MNIST_FILES["test_images"] + ".gz")).write_bytes(b"garbage, never read")
    d = load_mnist(root)
    assert torch.equal(d.train_y, torch.from_numpy(arrays["train_labels"]).long())


def _error(fn, *args) -> str:
    with pytest.raises(SpikeverseError) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_wrong_magic_number(tmp_path):
    labels = write_idx(tmp_path / "labels", np.zeros(4, np.uint8))
    msg = _error(read_idx, labels, IMAGES_MAGIC)
    assert "wrong magic number 2049" in msg and str(labels) in msg and "expected 2051" in msg
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04" + bytes(100))  # a zip file, say
    msg = _error(read_idx, junk, IMAGES_MAGIC)
    assert "wrong magic number 0x504b0304" in msg and str(junk) in msg


@pytest.mark.parametrize("cut", ["header", "data", "gzip"])
def test_truncated_files(tmp_path, cut):
    data = idx_bytes(np.ones((3, 4, 4), np.uint8))
    p = tmp_path / "images"
    if cut == "header":
        p.write_bytes(data[:10])  # 3 dimensions need a 16-byte header
    elif cut == "data":
        p.write_bytes(data[:-5])
    else:
        p.write_bytes(gzip.compress(data)[:-12])
    msg = _error(read_idx, p, IMAGES_MAGIC)
    assert "truncated" in msg and str(p) in msg
    if cut == "data":
        assert "48 bytes of data" in msg and "holds 43" in msg


def test_bytes_after_the_data_are_refused(tmp_path):
    p = tmp_path / "images"
    p.write_bytes(idx_bytes(np.ones((2, 3, 3), np.uint8)) + b"\x00" * 7)
    assert "7 bytes after" in _error(read_idx, p, IMAGES_MAGIC)


def test_label_image_count_mismatch_names_the_files(tmp_path):
    root, _ = mnist_folder(tmp_path / "m")
    write_idx(root / MNIST_FILES["train_labels"], np.zeros(11, np.uint8))
    msg = _error(load_mnist, root)
    assert MNIST_FILES["train_labels"] in msg and "11 labels" in msg and "12 images" in msg


def test_other_bad_folders(tmp_path):
    root, _ = mnist_folder(tmp_path / "m")
    write_idx(root / MNIST_FILES["test_labels"], np.array([1, 2, 12, 3, 4], np.uint8))
    (root / (MNIST_FILES["test_labels"] + ".gz")).unlink()
    assert "label 12" in _error(load_mnist, root)
    (root / MNIST_FILES["test_labels"]).unlink()
    msg = _error(load_mnist, root)
    assert "has no t10k-labels-idx1-ubyte" in msg
    assert "no such folder" in _error(load_mnist, tmp_path / "nope")
    (tmp_path / "afile").write_text("x")
    assert "is a file" in _error(load_mnist, tmp_path / "afile")
    # images where labels should be
    root2, arrays = mnist_folder(tmp_path / "m2", gz=())
    write_idx(root2 / MNIST_FILES["train_labels"], arrays["train_images"])
    assert "wrong magic number 2051" in _error(load_mnist, root2)


def test_the_offline_default_is_scikit_learns_digits_every_fifth_image_for_testing():
    from sklearn.datasets import load_digits as sk

    d = load_digits()
    ref = sk()
    assert d.name == "digits" and d.image_shape == (8, 8)
    assert d.train_x.shape[0] == 1438 and d.test_x.shape[0] == 359
    assert torch.allclose(d.test_x[0], torch.as_tensor(ref.images[4] / 16.0, dtype=torch.float32))
    assert torch.allclose(d.train_x[4], torch.as_tensor(ref.images[5] / 16.0, dtype=torch.float32))
    assert int(d.test_y[1]) == int(ref.target[9])
    assert 0.0 <= float(d.train_x.min()) and float(d.train_x.max()) == 1.0


def test_the_offline_default_without_scikit_learn_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    """Where sklearn cannot be imported: one line saying how to get it (or to give --data), exit 2."""
    for name in ("sklearn", "sklearn.datasets"):
        monkeypatch.setitem(sys.modules, name, None)  # import sklearn... raises ImportError
    assert main(["mnist", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "scikit-learn" in lines[0] and "--data" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage,words", [
    ("magic", "wrong magic number"),
    ("truncate", "truncated"),
    ("count", "labels but"),
])
def test_bad_files_through_the_cli(tmp_path, capsys, damage, words):
    root, arrays = mnist_folder(tmp_path / "m", gz=())
    target = root / MNIST_FILES["test_images"]
    if damage == "magic":
        write_idx(target, arrays["test_labels"])
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-1])
    else:
        write_idx(root / MNIST_FILES["test_labels"], arrays["test_labels"][:-1])
    out = tmp_path / "run"
    assert main(["mnist", "--data", str(root), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]
    assert not out.exists()
