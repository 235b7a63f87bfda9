"""Image classification data for the spiking MNIST classifier (SPEC R-ANA-MNIST): the IDX reader,
the MNIST folder of a user, and the offline default that ships inside an installed package.

IDX (LeCun's format of the MNIST files): a 4-byte magic number, two zero bytes, a type code
(0x08 = unsigned byte) and the number of dimensions n; then n sizes as big-endian 32-bit
integers; then the data, big-endian, row-major. The MNIST files are

    train-images-idx3-ubyte   magic 2051 (0x00000803): 60000 x 28 x 28 unsigned bytes
    train-labels-idx1-ubyte   magic 2049 (0x00000801): 60000 labels 0-9
    t10k-images-idx3-ubyte    10000 x 28 x 28
    t10k-labels-idx1-ubyte    10000 labels

each plain or gzipped (a ``.gz`` name, or gzip bytes under the plain name: files are told apart by
their first bytes, not their names). A file that is not what it should be is a one-line
:class:`SpikeverseError` naming it: a wrong magic number, a header or data shorter (truncated)
or longer than the header says, a broken gzip stream, labels outside 0-9, and a label file
whose count differs from its image file's.

The offline default (no ``--data``) is scikit-learn's 8 x 8 digits (``sklearn.datasets.load_digits``,
1,797 images of 16 grey levels, bundled in the package: nothing is downloaded; the ``mnist``
extra installs it). The images are in writer order and the last fifth is harder than the rest:
the test set is every fifth image (index 4, 9, 14, ...: 359 images) and the training set the
other 1,438, a fixed split that mixes writers as a random one would, without a seed.

Images are float32 in [0, 1] (MNIST: byte / 255; digits: level / 16), labels int64.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeverse.errors import SpikeverseError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_MAGIC_NAMES = {IMAGES_MAGIC: "IDX images", LABELS_MAGIC: "IDX labels"}
# IDX type codes -> numpy big-endian dtypes
_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = 10
DIGITS_TEST_EVERY = 5  # the offline default's test set: every fifth image


@dataclass
class Dataset:
    """Train and test images [N, H, W] (float32 in [0, 1]) with their labels [N] (int64, 0-9)."""

    name: str  # "mnist" (a user's IDX files) or "digits" (the offline default)
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # the folder the files came from, or the package function

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def pixels(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def classes(self) -> int:
        return CLASSES

    def describe(self) -> dict:
        """What the config records: which data, its shape and sizes (a rerun on other data is refused)."""
        return dict(name=self.name, source=self.source, image_shape=list(self.image_shape),
                    train=int(self.train_x.shape[0]), test=int(self.test_x.shape[0]))


def _raw_bytes(path: Path) -> bytes:
    """The bytes of an IDX file, gunzipped if they are gzip (told by the magic bytes 1f 8b)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpikeverseError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise SpikeverseError(f"{path} is truncated (its gzip stream ends early)") from None
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise SpikeverseError(f"{path} is not a valid gzip file ({reason})") from None


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path`` (plain or gzipped), in native byte order.
    ``magic``: the magic number the file must have (``IMAGES_MAGIC``, ``LABELS_MAGIC``)."""
    path = Path(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise SpikeverseError(f"{path} is truncated ({len(data)} bytes; an IDX header has at least 4)")
    found = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in _TYPES or ndim == 0:
        raise SpikeverseError(f"{path} is not an IDX file (wrong magic number 0x{found:08x})")
    if magic is not None and found != magic:
        what = _MAGIC_NAMES.get(found, f"type 0x{code:02x}, {ndim} dimensions")
        raise SpikeverseError(f"{path} has the wrong magic number {found} ({what}); expected {magic} "
                              f"({_MAGIC_NAMES.get(magic, 'IDX')})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SpikeverseError(f"{path} is truncated ({len(data)} bytes; its header alone needs {header})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have < need:
        raise SpikeverseError(f"{path} is truncated: its header announces {'x'.join(map(str, shape))} values "
                              f"({need} bytes of data), the file holds {have}")
    if have > need:
        raise SpikeverseError(f"{path} has {have - need} bytes after the {need} bytes of data its header announces")
    arr = np.frombuffer(data, dtype=dtype, count=need // dtype.itemsize, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def find_mnist_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The four MNIST files in ``folder`` (each NAME or NAME.gz; the plain one if both are there),
    or a one-line error naming the folder and the first file missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpikeverseError(f"--data {folder}: no such folder" if not folder.exists()
                              else f"--data {folder} is a file, not a folder of MNIST files")
    out = {}
    for key, name in MNIST_FILES.items():
        found = next((folder / n for n in (name, name + ".gz") if (folder / n).is_file()), None)
        if found is None:
            raise SpikeverseError(f"--data {folder} has no {name} (nor {name}.gz); it needs the four MNIST files "
                                  f"{', '.join(MNIST_FILES.values())}")
        out[key] = found
    return out


def _split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise SpikeverseError(f"{images_path} holds {images.dtype} values of shape {images.shape}, "
                              "not images (N x rows x columns unsigned bytes)")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise SpikeverseError(f"{labels_path} holds {labels.dtype} values of shape {labels.shape}, "
                              "not labels (N unsigned bytes)")
    if labels.shape[0] != images.shape[0]:
        raise SpikeverseError(f"{labels_path} holds {labels.shape[0]} labels but {images_path.name} "
                              f"{images.shape[0]} images (the counts must match)")
    if images.shape[0] == 0:
        raise SpikeverseError(f"{images_path} holds no images")
    if labels.size and int(labels.max()) >= CLASSES:
        raise SpikeverseError(f"{labels_path} holds a label {int(labels.max())}; digit labels are 0-9")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_mnist(folder: str | os.PathLike) -> Dataset:
    """MNIST from a user's ``folder`` of the four standard IDX files (plain or gzipped)."""
    files = find_mnist_files(folder)
    train_x, train_y = _split(files["train_images"], files["train_labels"])
    test_x, test_y = _split(files["test_images"], files["test_labels"])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise SpikeverseError(f"{files['test_images']} holds images of {tuple(test_x.shape[1:])} pixels, "
                              f"{files['train_images'].name} of {tuple(train_x.shape[1:])}")
    return Dataset("mnist", train_x, train_y, test_x, test_y, str(Path(folder)))


def load_digits() -> Dataset:
    """The offline default: scikit-learn's bundled 8 x 8 digits, every fifth image as the test set."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise SpikeverseError("the offline default data set (scikit-learn's digits) needs scikit-learn: "
                              "pip install 'spikeverse[mnist]', or give --data DIR with the MNIST files") from None
    d = sk_load_digits()
    x = torch.as_tensor(d.images / 16.0, dtype=torch.float32)
    y = torch.as_tensor(d.target, dtype=torch.int64)
    test = torch.arange(x.shape[0]) % DIGITS_TEST_EVERY == DIGITS_TEST_EVERY - 1
    return Dataset("digits", x[~test], y[~test], x[test], y[test], "sklearn.datasets.load_digits")


def load_dataset(data: str | os.PathLike | None = None) -> Dataset:
    """``data`` None: the offline default (digits); else the MNIST files in that folder."""
    return load_digits() if data is None else load_mnist(data)
