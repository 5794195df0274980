"""Loading a data set by name (:func:`load_dataset`): whole, normalised float32 tensors, with a seeded validation
carve-out.

Five datasets are built in and need nothing beyond the core dependencies:

* ``digits``: scikit-learn's bundled 8x8 digits (no files), upsampled to 16x16;
* ``mnist`` and ``fashion_mnist``: IDX files in torchvision's layout
  (``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``, ``.gz`` accepted);
* ``cifar10`` and ``cifar100``: the python pickles (``<root>/cifar-10-batches-py/``,
  ``<root>/cifar-100-python/``).

Your own data: ``folder:PATH`` (one subfolder of PNG/JPEG images per class, read with Pillow:
``pip install 'nas-proxy[images]'``), ``arrays:PATH.npz`` (x, y) and :meth:`Dataset.from_arrays`
(``_own``, ``_own_folder``, ``_own_arrays``). Any other name is looked up in ``torchvision.datasets``
when torchvision is installed; it is imported only then, and only to download files or to read a
dataset the built-in readers do not know.

Example:
    >>> from nas_proxy.data import load_dataset
    >>> ds = load_dataset("digits", val_fraction=0.1, seed=0)
    >>> ds.train.x.shape[1:], ds.num_classes, len(ds.val) > 0
    (torch.Size([1, 16, 16]), 10, True)
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from nas_proxy.data._config import DataConfig
from nas_proxy.data._dataset import _ALIASES, Dataset, _from_raw, _image_size, _split, resolve_device
from nas_proxy.data._own import load_own, own_source
from nas_proxy.data._own_arrays import _square
from nas_proxy.data._sources import _freeze, _hash_raw, _load_standard, _norm_key, _Raw, _raw_digits, _unknown_name
from nas_proxy.data._torchvision import _load_torchvision
from nas_proxy.errors import DataError

__all__ = ["default_data_root", "load_dataset"]


def default_data_root() -> Path:
    """Where datasets are looked for when no root is given.

    Returns ``Path($NAS_PROXY_DATA)`` when that variable is set and non-empty, else
    ``Path("./data")``.

    Example:
        >>> import os
        >>> from nas_proxy.data import default_data_root
        >>> saved = os.environ.pop("NAS_PROXY_DATA", None)  # unset for the example
        >>> default_data_root()
        PosixPath('data')
        >>> os.environ.update({} if saved is None else {"NAS_PROXY_DATA": saved})
    """
    env = os.environ.get("NAS_PROXY_DATA", "").strip()
    return Path(env).expanduser() if env else Path("./data")


def load_dataset(
    name: str | DataConfig,
    root: str | Path | None = None,
    *,
    val_fraction: float | None = None,
    seed: int | None = None,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
    progress: bool = True,
) -> Dataset:
    """Load a dataset as normalised whole-split tensors with a class-balanced val carve-out.

    Args:
        name: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``
            (case-insensitive; ``FashionMNIST``, ``cifar-10`` and similar spellings work);
            your own files: ``folder:PATH`` (one subfolder of PNG/JPEG images per class, or
            ``train/`` and ``test/`` that each hold them) or ``arrays:PATH.npz`` (x and y, optionally
            x_test, y_test and classes), a relative PATH read from the current folder (see
            :meth:`Dataset.from_arrays`); any ``torchvision.datasets`` class name when torchvision is
            installed; or a :class:`~nas_proxy.DataConfig` (a preset's ``preset.data``), which also gives
            the split and the size.
        root: Folder holding the data in torchvision's layout; defaults to
            :func:`default_data_root`. Ignored for ``digits`` and your own files.
        val_fraction: Fraction in ``[0, 1)`` of each class of the official training data
            moved into ``val`` (``round(val_fraction * n_c)`` images of class ``c``,
            halves rounded up); default 0.1.
        seed: Seeds the choice of validation images (``torch.Generator``); default 0.
        image_size: Resize every image to this square (a folder's with Pillow, others antialiased
            bilinear); default 0, the size stored, which a folder's images must share.
        device: Where the tensors are put, for example ``"cuda"``, or ``"auto"`` (CUDA when
            available).
        download: When files are missing, let torchvision download them into ``root``.
        progress: Show a progress bar while a folder's images are read (on a terminal).

    Returns:
        The :class:`Dataset`. Files found are only read, never modified.

    Raises:
        DataError: unknown name, missing or corrupt files, bad ``val_fraction``, size or device.

    Example:

        .. testcode::

            from nas_proxy.data._load import load_dataset

            ds = load_dataset("digits", val_fraction=0.1, seed=0)
            print(len(ds.train) + len(ds.val), len(ds.test), ds.fingerprint != "")

        .. testoutput::

            1438 359 True
    """
    name, val_fraction, seed, image_size = _checked_arguments(name, val_fraction, seed, image_size)
    dev = resolve_device(device)
    raw = _load_raw(name, root, image_size, download, progress)
    return _from_raw(raw, val_fraction, seed, dev)


def _checked_arguments(
    name: str | DataConfig, val_fraction: float | None, seed: int | None, image_size: int | None
) -> tuple[str, float, int, int]:
    """The name, split and size to load with, defaults filled in and checked before any file is read: a
    DataConfig's, refused beside arguments that give them too (one of the two would be ignored)."""
    if isinstance(name, DataConfig):
        if val_fraction is not None or seed is not None or image_size is not None:
            raise DataError("pass the split and size in the DataConfig or as arguments, not both")
        config = name
        name, val_fraction, seed, image_size = config.dataset, config.val_fraction, config.split_seed, config.image_size
    val_fraction, seed = _split(val_fraction, seed)
    image_size = _image_size(DataConfig.image_size if image_size is None else image_size)
    if not isinstance(name, str) or not name.strip():
        raise _unknown_name(str(name), "empty or not a string")
    return name, val_fraction, seed, image_size


def _load_raw(name: str, root: str | Path | None, image_size: int, download: bool, progress: bool) -> _Raw:
    """The raw arrays of the data set ``name``, from whichever source serves it (your own files, digits, a built-in
    set's files under ``root``, torchvision), at ``image_size`` (your own files are resized as they are read)."""
    canonical = _ALIASES.get(_norm_key(name))
    own = own_source(name)
    root_path = Path(root) if root is not None else default_data_root()
    root_path = root_path.expanduser().resolve()

    if own is not None:
        raw = load_own(*own, image_size, progress)
    elif canonical == "digits":
        raw = _raw_digits()
    elif canonical is not None:
        raw = _load_standard(canonical, root_path, download)
    else:
        raw = _load_torchvision(name.strip(), root_path, download)
    if own is None and image_size and raw.x_train.shape[2:] != (image_size, image_size):
        raw = _resized(raw, image_size)
    return raw


def _resized(raw: _Raw, image_size: int) -> _Raw:
    """A built-in or torchvision data set at ``image_size``: its pixels resized (so is its fingerprint)."""
    source = f"{raw.name} at image_size {image_size}"
    x_train, x_test = (_square(x, image_size, source) for x in (raw.x_train, raw.x_test))
    _freeze(x_train, x_test)
    return replace(raw, x_train=x_train, x_test=x_test, data_hash=_hash_raw(x_train, raw.y_train, raw.num_classes))
