"""Private readers for the on-disk dataset formats (IDX, CIFAR pickles, scikit-learn digits).

Everything here is vectorised numpy: no per-image Python loops. The readers only read;
they never write, move or delete a file. A file that cannot be parsed raises
:class:`CorruptFileError`, which :mod:`nas_proxy.data._sources` turns into a one-line
:class:`~nas_proxy.DataError` that names the file and says to re-download it.
"""

from __future__ import annotations

import gzip
import pickle
import warnings
import zlib
from pathlib import Path

import numpy as np

from nas_proxy._config import shown

__all__ = [
    "CorruptFileError",
    "find_idx",
    "read_idx",
    "read_cifar_batch",
    "read_digits",
]

_IDX_UINT8 = 0x08


class CorruptFileError(Exception):
    """A file exists but its content is not what the format promises."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def find_idx(path: Path) -> Path | None:
    """Return ``path`` if it is a file, else ``path.gz`` if that is a file, else None."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        return gz
    return None


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(path, f"not a readable gzip file ({exc})") from exc
    return path.read_bytes()


def read_idx(path: Path, ndim: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (``.gz`` allowed) into a read-only uint8 array.

    Args:
        path: The file to read.
        ndim: The number of dimensions the header must declare (1 labels, 3 images).
        shape: If given, the trailing dimensions (after the count) must equal it.

    Raises:
        CorruptFileError: bad magic number, wrong type or rank, size not matching the header.
    """
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise CorruptFileError(path, f"only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise CorruptFileError(path, f"bad IDX magic number 0x{data[:4].hex()}")
    if data[2] != _IDX_UINT8:
        raise CorruptFileError(path, f"IDX data type 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    if data[3] != ndim:
        raise CorruptFileError(path, f"IDX header declares {data[3]} dimensions, expected {ndim}")
    if len(data) < header:
        raise CorruptFileError(path, f"only {len(data)} bytes, too short for an IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if shape is not None and dims[1:] != tuple(shape):
        raise CorruptFileError(path, f"item shape {dims[1:]}, expected {tuple(shape)}")
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        raise CorruptFileError(path, f"{got} data bytes but the header {dims} promises {expected} (truncated?)")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    arr.flags.writeable = False
    return arr


# The globals a CIFAR batch (a dict of a uint8 array, lists, bytes and ints) may name: numpy's array and scalar
# rebuilders (numpy.core as the official Python 2 files and numpy 1 spell them, numpy._core as numpy 2 does;
# _reconstruct up to pickle protocol 4, _frombuffer at 5), and _codecs.encode, how Python 3 writes bytes at
# protocols 0 to 2. None of them runs anything but numpy's own code on the file's bytes.
_CIFAR_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class _Disallowed(pickle.UnpicklingError):
    """A pickle names a global outside :data:`_CIFAR_GLOBALS`."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch and nothing else: every other global (os.system, builtins.exec, any class) is refused
    before it is imported, so a crafted file in a data root cannot run code when it is read."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CIFAR_GLOBALS:
            raise _Disallowed(f"{module}.{name}")
        with warnings.catch_warnings():  # numpy 2 reads numpy 1's numpy.core names but warns that they moved
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR python batch: returns uint8 images (N, 3, 32, 32) and int64 labels (N,).

    Only arrays, lists, dicts, bytes, strings and numbers are unpickled; a file naming anything else is refused
    unrun.

    Raises:
        CorruptFileError: not unpicklable, Python objects other than a batch's, missing keys, wrong sizes.
    """
    try:
        with path.open("rb") as fh:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
    except _Disallowed as exc:
        raise CorruptFileError(path, f"holds Python objects ({shown(str(exc))}), not a CIFAR batch") from None
    except Exception as exc:  # pickle raises many types on garbage input
        raise CorruptFileError(path, f"cannot be unpickled ({type(exc).__name__})") from exc
    if not isinstance(batch, dict):
        raise CorruptFileError(path, f"holds a {type(batch).__name__}, expected a dict")
    missing = [k.decode() for k in (b"data", label_key) if k not in batch]
    if missing:
        raise CorruptFileError(path, f"missing key(s) {', '.join(missing)}")
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(path, f"unexpected content ({exc})") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptFileError(path, f"data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise CorruptFileError(path, f"{labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images")
    # Each row is 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32.
    return data.reshape(-1, 3, 32, 32), labels


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: uint8 images (1797, 8, 8) in 0..16 and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images).round().astype(np.uint8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    return images, labels
