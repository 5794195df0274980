"""Datasets as whole, normalised float32 tensors, with a seeded validation carve-out.

Five datasets are built in and need nothing beyond the core dependencies:

* ``digits``: scikit-learn's bundled 8x8 digits (no files), upsampled to 16x16;
* ``mnist`` and ``fashion_mnist``: IDX files in torchvision's layout
  (``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``, ``.gz`` accepted);
* ``cifar10`` and ``cifar100``: the python pickles (``<root>/cifar-10-batches-py/``,
  ``<root>/cifar-100-python/``).

Any other name is looked up in ``torchvision.datasets`` when torchvision is installed
(``pip install nas-proxy[vision]``). torchvision is imported only then, and only to
download files or to read a dataset the built-in readers do not know.

Example:
    >>> from nas_proxy.data import load_dataset
    >>> ds = load_dataset("digits", val_fraction=0.1, seed=0)
    >>> ds.train.x.shape[1:], ds.num_classes, len(ds.val) > 0
    (torch.Size([1, 16, 16]), 10, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nas_proxy._config import field_problem, shown
from nas_proxy.data._config import DataConfig, val_fraction_problem

# DATASETS and DataError are defined lower down (_sources, errors) so that the modules this
# one uses need not import it; both are re-exported here as the public API. The validation
# carve-out lives in _sources too: the fixed digits test split is made with it.
from nas_proxy.data._sources import (
    _SPECS,
    DATASETS,
    STRATEGY_NO_FLIP,
    STRATEGY_WITH_FLIP,
    _load_standard,
    _norm_key,
    _one_line,
    _Raw,
    _raw_digits,
    _stratified_holdout,
    _unknown_name,
)
from nas_proxy.data._torchvision import _load_torchvision
from nas_proxy.errors import DataError

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "Split",
    "default_data_root",
    "default_dsa_strategy",
    "load_dataset",
    "resolve_device",
]


_ALIASES: dict[str, str] = {_norm_key(n): n for n in DATASETS}


def default_dsa_strategy(name: str) -> str:
    """The DSA strategy of the data set ``name`` (what ``dsa_strategy = "auto"`` runs on it), without loading it:
    no flips for digit data sets, the full strategy for the others (as :attr:`Dataset.dsa_strategy`).

    Example:
        >>> default_dsa_strategy("digits"), default_dsa_strategy("FashionMNIST")
        ('color_crop_cutout_scale_rotate', 'color_crop_cutout_flip_scale_rotate')
    """
    canonical = _ALIASES.get(_norm_key(name))
    if canonical == "digits":
        return STRATEGY_NO_FLIP
    return _SPECS[canonical].dsa_strategy if canonical in _SPECS else STRATEGY_WITH_FLIP


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


@dataclass(frozen=True, eq=False)
class Split:
    """One split as two whole tensors.

    Attributes:
        x: Images, ``(N, C, H, W)`` float32, normalised, contiguous.
        y: Labels, ``(N,)`` int64.

    Example:
        >>> import torch
        >>> from nas_proxy.data import load_dataset
        >>> first = load_dataset("digits").train.subset(torch.arange(10))
        >>> len(first), first.x.dtype, first.y.dtype
        (10, torch.float32, torch.int64)
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: str | torch.device) -> Split:
        """Return a copy of the split on ``device`` (the same object's tensors if already there)."""
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, index: torch.Tensor) -> Split:
        """Return the images and labels at ``index`` (integer indices or a boolean mask)."""
        index = index.to(self.y.device)
        return Split(self.x[index].contiguous(), self.y[index])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: train (minus the validation carve-out), val and test splits.

    Attributes:
        name: Canonical name (``"fashion_mnist"``) or the torchvision class name.
        train: The official training data minus the validation carve-out.
        val: ``round(val_fraction * n_c)`` images of each class ``c`` carved from the
            official training data; empty when ``val_fraction == 0``.
        test: The official test set (for ``digits``: a fixed 20 % stratified split).
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        channels: Image channels ``C``.
        image_size: Image height and width.
        mean: Per-channel mean used for normalisation (of pixels in ``[0, 1]``).
        std: Per-channel standard deviation used for normalisation.
        dsa_strategy: The DSA augmentation string for this data (no flip for digits).
        fingerprint: 16 hex chars of a sha256 over the raw official training images and
            labels and the validation settings; it changes when the data or split does.

    Example:
        >>> from nas_proxy.data import load_dataset
        >>> ds = load_dataset("digits", seed=1)
        >>> ds.channels, ds.image_size, ds.dsa_strategy
        (1, 16, 'color_crop_cutout_scale_rotate')
        >>> all(len(i) > 0 for i in ds.class_indices())
        True
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str
    fingerprint: str
    val_fraction: float
    split_seed: int

    def check(self, config: DataConfig) -> None:
        """Refuse to serve a stage configured for other data (another data set or validation split)."""
        asked = _ALIASES.get(_norm_key(config.dataset), config.dataset)
        if (_norm_key(asked), config.val_fraction, config.split_seed) != (
            _norm_key(self.name),
            self.val_fraction,
            self.split_seed,
        ):
            raise DataError(
                f"the data is {self.name} (val_fraction {self.val_fraction}, split_seed {self.split_seed}) but the "
                f"preset asks for {config.dataset} (val_fraction {config.val_fraction}, split_seed "
                f"{config.split_seed}); load it with load_dataset(preset.data)"
            )

    def to(self, device: str | torch.device) -> Dataset:
        """Return a copy with all three splits on ``device``."""
        dev = resolve_device(device)
        return replace(self, train=self.train.to(dev), val=self.val.to(dev), test=self.test.to(dev))

    def class_indices(self) -> list[torch.Tensor]:
        """Indices into ``train`` of each class, one int64 tensor per class (computed once).

        The tensors live on the device of ``train.y``; class ``c`` is entry ``c``.
        """
        cached = self.__dict__.get("_class_indices")
        if cached is None:
            y = self.train.y
            order = torch.argsort(y, stable=True)
            counts = torch.bincount(y, minlength=self.num_classes).tolist()
            cached = list(torch.split(order, counts))
            object.__setattr__(self, "_class_indices", cached)
        return list(cached)

    def sample_per_class(self, ipc: int, seed: int = 0, *, generator: torch.Generator | None = None) -> Split:
        """A class-balanced random subset of ``train``: ``ipc`` images of each class, drawn without replacement.

        ``generator`` (a CPU generator) overrides ``seed`` so a caller can continue its own stream.
        """
        generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        picks = []
        for c, index in enumerate(self.class_indices()):
            if not 0 < ipc <= len(index):
                raise DataError(
                    f"cannot take {ipc} images per class: class {c} of {self.name} has {len(index)} "
                    f"training images; use an ipc from 1 to {len(index)}"
                )
            picks.append(index[torch.randperm(len(index), generator=generator)[:ipc].to(index.device)])
        return self.train.subset(torch.cat(picks))


# ----------------------------------------------------------------------------- public


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, checked against this machine; ``"auto"`` is CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"invalid device {device!r} ({_one_line(exc)}); use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError(
            f"device {str(device)!r} asked for but CUDA is not available to this torch build "
            f"on this machine; pass device='cpu' (--device cpu)"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        visible = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise DataError(
            f"device {str(device)!r} asked for but this machine has {count} CUDA device"
            f"{'s' if count != 1 else ''} ({visible}, as CUDA_VISIBLE_DEVICES allows); pass "
            f"device='cuda' or one of those (--device cuda)"
        )
    return dev


def _make_split(x: np.ndarray, y: np.ndarray, index: np.ndarray, raw: _Raw, device: torch.device) -> Split:
    xs = torch.from_numpy(np.ascontiguousarray(x[index]))  # fancy indexing: a fresh copy
    xf = xs.to(torch.float32)
    if raw.scale != 1.0:
        xf.mul_(raw.scale)
    mean = torch.tensor(raw.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(raw.std, dtype=torch.float32).view(1, -1, 1, 1)
    xf.sub_(mean).div_(std)
    ys = torch.from_numpy(np.ascontiguousarray(y[index], dtype=np.int64))
    return Split(xf.to(device).contiguous(), ys.to(device))


def load_dataset(
    name: str | DataConfig,
    root: str | Path | None = None,
    *,
    val_fraction: float | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
) -> Dataset:
    """Load a dataset as normalised whole-split tensors with a class-balanced val carve-out.

    Args:
        name: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``
            (case-insensitive; ``FashionMNIST``, ``cifar-10`` and similar spellings work),
            or any ``torchvision.datasets`` class name when torchvision is installed; or a
            :class:`~nas_proxy.DataConfig` (a preset's ``preset.data``), which also gives the split.
        root: Folder holding the data in torchvision's layout; defaults to
            :func:`default_data_root`. Ignored for ``digits``.
        val_fraction: Fraction in ``[0, 1)`` of each class of the official training data
            moved into ``val`` (``round(val_fraction * n_c)`` images of class ``c``,
            halves rounded up); default 0.1.
        seed: Seeds the choice of validation images (``torch.Generator``); default 0.
        device: Where the tensors are put, for example ``"cuda"``, or ``"auto"`` (CUDA when
            available).
        download: When files are missing, let torchvision download them into ``root``.

    Returns:
        The :class:`Dataset`. Files found are only read, never modified.

    Raises:
        DataError: unknown name, missing or corrupt files, bad ``val_fraction`` or device.

    Example:

        .. testcode::

            from nas_proxy.data._dataset import load_dataset

            ds = load_dataset("digits", val_fraction=0.1, seed=0)
            print(len(ds.train) + len(ds.val), len(ds.test), ds.fingerprint != "")

        .. testoutput::

            1438 359 True
    """
    if isinstance(name, DataConfig):
        if val_fraction is not None or seed is not None:
            raise DataError("pass the split in the DataConfig or as val_fraction/seed, not both")
        name, val_fraction, seed = name.dataset, name.val_fraction, name.split_seed
    val_fraction = DataConfig.val_fraction if val_fraction is None else val_fraction  # the defaults live there
    seed = DataConfig.split_seed if seed is None else seed
    problem = val_fraction_problem(val_fraction)
    if problem is not None:
        raise DataError(f"val_fraction {problem}; pass for example 0.1 (or 0 for no validation split)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an integer, got {shown(seed)}; pass for example seed=0")
    problem = field_problem(DataConfig.__dataclass_fields__["split_seed"], int(seed))  # [data].split_seed's range
    if problem is not None:
        raise DataError(f"seed (the split's: [data].split_seed, --split-seed) {problem}")
    if not isinstance(name, str) or not name.strip():
        raise _unknown_name(str(name), "empty or not a string")
    dev = resolve_device(device)
    canonical = _ALIASES.get(_norm_key(name))
    root_path = Path(root) if root is not None else default_data_root()
    root_path = root_path.expanduser().resolve()

    if canonical == "digits":
        raw = _raw_digits()
    elif canonical is not None:
        raw = _load_standard(canonical, root_path, download)
    else:
        raw = _load_torchvision(name.strip(), root_path, download)

    val_mask = _stratified_holdout(raw.y_train, float(val_fraction), torch.Generator().manual_seed(int(seed)))
    train_idx = np.flatnonzero(~val_mask)
    val_idx = np.flatnonzero(val_mask)
    counts = np.bincount(raw.y_train[train_idx], minlength=raw.num_classes)
    present = np.bincount(raw.y_train, minlength=raw.num_classes) > 0
    empty = np.flatnonzero(present & (counts == 0))
    if empty.size:
        raise DataError(
            f"val_fraction={val_fraction} leaves no training images of class {int(empty[0])} "
            f"in {raw.name}; pass a smaller val_fraction"
        )

    h = raw.data_hash.copy()
    h.update(f"val_fraction={float(val_fraction)!r};seed={int(seed)}".encode())
    _, channels, height, _ = raw.x_train.shape
    return Dataset(
        name=raw.name,
        train=_make_split(raw.x_train, raw.y_train, train_idx, raw, dev),
        val=_make_split(raw.x_train, raw.y_train, val_idx, raw, dev),
        test=_make_split(raw.x_test, raw.y_test, np.arange(raw.y_test.shape[0]), raw, dev),
        num_classes=raw.num_classes,
        channels=int(channels),
        image_size=int(height),
        mean=raw.mean,
        std=raw.std,
        dsa_strategy=raw.dsa_strategy,
        fingerprint=h.hexdigest()[:16],
        val_fraction=float(val_fraction),
        split_seed=int(seed),
    )
