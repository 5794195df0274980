"""The :class:`Dataset` type: a data set's train / val / test :class:`Split` tensors and what it knows of itself
(name, classes, normalisation, DSA strategy, fingerprint); :func:`_from_raw` builds one from raw arrays (the seeded
validation carve-out, normalisation, the fingerprint), :meth:`Dataset.from_arrays` from your own arrays. The checks
of the split, size and device settings (:func:`_split`, :func:`_image_size`, :func:`resolve_device`), which
:func:`~nas_proxy.data.load_dataset` shares, are here too; loading a data set by name is in ``_load``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import torch

from nas_proxy._config import field_problem, shown
from nas_proxy.data._config import DataConfig, val_fraction_problem
from nas_proxy.data._own import own_name, own_source
from nas_proxy.data._own_arrays import raw_from_arrays

# DATASETS and DataError are defined lower down (_sources, errors) so that the modules this
# one uses need not import it; both are re-exported here as the public API. The validation
# carve-out lives in _sources too: the fixed digits test split is made with it.
from nas_proxy.data._sources import (
    _SPECS,
    DATASETS,
    STRATEGY_NO_FLIP,
    _norm_key,
    _one_line,
    _Raw,
    _stratified_holdout,
)
from nas_proxy.errors import ArgumentError, DataError

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "Split",
    "default_dsa_strategy",
    "resolve_device",
]


_ALIASES: dict[str, str] = {_norm_key(n): n for n in DATASETS}


def default_dsa_strategy(name: str) -> str:
    """The DSA strategy of the data set ``name`` (what ``dsa_strategy = "auto"`` runs on it), without loading it
    (as :attr:`Dataset.dsa_strategy`): flips for FashionMNIST and CIFAR only. A flip turns a digit or a letter into
    another one or none, so any other data set, your own included, is not flipped; set ``dsa_strategy =
    "color_crop_cutout_flip_scale_rotate"`` in ``[condense]`` and ``[training]`` where a mirror image keeps its class.

    Example:
        >>> default_dsa_strategy("digits"), default_dsa_strategy("FashionMNIST"), default_dsa_strategy("folder:x")
        ('color_crop_cutout_scale_rotate', 'color_crop_cutout_flip_scale_rotate', 'color_crop_cutout_scale_rotate')
    """
    canonical = _ALIASES.get(_norm_key(name))
    return _SPECS[canonical].dsa_strategy if canonical in _SPECS else STRATEGY_NO_FLIP


def _dataset_name(dataset: str) -> str:
    """The :attr:`Dataset.name` the data set ``dataset`` loads as, without loading it (a torchvision class keeps the
    spelling given: names are compared case- and punctuation-blind)."""
    own = own_source(dataset)
    if own is not None:
        return own_name(*own)
    return _ALIASES.get(_norm_key(dataset), dataset.strip())


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
        name: Canonical name (``"fashion_mnist"``), the torchvision class name, ``folder:<folder name>`` or
            ``arrays:<file name>`` for your own files, or the name given to :meth:`from_arrays`.
        train: The official training data minus the validation carve-out.
        val: ``round(val_fraction * n_c)`` images of each class ``c`` carved from the
            official training data; empty when ``val_fraction == 0``.
        test: The official test set (for ``digits``, and your own data without one: a fixed 20 % of each
            class, the same whatever the validation split).
        num_classes: Number of classes; labels are ``0 .. num_classes - 1``.
        classes: Class ``c``'s name (your folders' names, sorted), or ``str(c)`` where the data names none.
        channels: Image channels ``C``.
        image_size: Image height and width.
        mean: Per-channel mean used for normalisation (of pixels in ``[0, 1]``).
        std: Per-channel standard deviation used for normalisation.
        dsa_strategy: The DSA augmentation string for this data (:func:`default_dsa_strategy`).
        fingerprint: 16 hex chars of a sha256 over the raw official training images and
            labels (your own data: every image and label, the test split's too) and the validation
            settings; it changes when the data or split does.

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
    classes: tuple[str, ...]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str
    fingerprint: str
    val_fraction: float
    split_seed: int

    def check(self, config: DataConfig) -> None:
        """Refuse to serve a stage configured for other data (another data set, size or validation split)."""
        asked = (_norm_key(_dataset_name(config.dataset)), config.val_fraction, config.split_seed)
        if asked != (_norm_key(self.name), self.val_fraction, self.split_seed) or config.image_size not in (
            0,  # the size stored: whatever it is
            self.image_size,
        ):
            size = f"{config.image_size} px, " if config.image_size else ""
            raise DataError(
                f"the data is {self.name} ({self.image_size} px, val_fraction {self.val_fraction}, split_seed "
                f"{self.split_seed}) but the preset asks for {config.dataset} ({size}val_fraction "
                f"{config.val_fraction}, split_seed {config.split_seed}); load it with load_dataset(preset.data)"
            )

    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        x_test: np.ndarray | torch.Tensor | None = None,
        y_test: np.ndarray | torch.Tensor | None = None,
        *,
        name: str = "arrays",
        classes: tuple[str, ...] | list[str] | None = None,
        image_size: int = 0,
        val_fraction: float | None = None,
        split_seed: int | None = None,
        device: str | torch.device = "cpu",
    ) -> Dataset:
        """Your own images and labels as a :class:`Dataset`, split and normalised as the built-in data sets are.

        ``folder:PATH`` and ``arrays:PATH.npz`` are read into arrays and go through here too.

        Args:
            x: Images ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with C 1 or 3: uint8 pixels (or integers
                in 0..255), or floats, taken as they are.
            y: ``(N,)`` integer labels (whole-number floats too): indices into ``classes`` when given, else any
                integers, renumbered ``0 .. K-1`` in order and named by their values.
            x_test, y_test: A test split of your own; without one, a fixed 20 % of each class (the same whatever
                ``split_seed``). It is never used for search, only for the reference's ``test_acc``.
            name: What the data is called in messages, file names and :meth:`check` (a preset's
                ``[data].dataset`` must name the same): letters, digits, ``.``, ``_``, ``:`` and ``-``.
            classes: The class names.
            image_size: Resize every image to this square (antialiased bilinear); 0 keeps the size, which must
                then be square.
            val_fraction, split_seed: The validation carve-out from the training images, as in
                :func:`load_dataset` (defaults 0.1 and 0).
            device: Where the tensors are put.

        Normalisation (per-channel mean and standard deviation) comes from the training images, the test
        split excluded; :attr:`fingerprint` hashes every image and label (test split included) and the split
        settings, so the same pixels give the same cached files whichever way they were loaded. Augmentation defaults to
        no flips (:func:`default_dsa_strategy`).

        Raises:
            DataError: arrays that are not images and labels (shapes, types, NaN), fewer than 2 classes, a class
                without training images, bad split settings.

        Example:
            >>> import numpy as np
            >>> from nas_proxy.data import Dataset
            >>> rng = np.random.default_rng(0)
            >>> x = rng.integers(0, 256, (60, 12, 12), dtype=np.uint8)
            >>> data = Dataset.from_arrays(x, np.arange(60) % 3, classes=["a", "b", "c"])
            >>> data.classes, data.channels, data.image_size, len(data.train), len(data.val), len(data.test)
            (('a', 'b', 'c'), 1, 12, 42, 6, 12)
        """
        _check_name(name)
        val_fraction, split_seed = _split(val_fraction, split_seed)
        raw = raw_from_arrays(
            x,
            y,
            x_test,
            y_test,
            name=name,
            source="Dataset.from_arrays()",
            classes=None if classes is None else tuple(classes),
            image_size=_image_size(image_size),
        )
        return _from_raw(raw, val_fraction, split_seed, resolve_device(device))

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

    def check_ipc(self, ipc: int) -> None:
        """Refuse ``ipc`` images per class when a class has fewer training images: a search checks it before it
        trains its reference sample, not at condensation minutes later."""
        for c, index in enumerate(self.class_indices()):
            if not 0 < ipc <= len(index):
                raise DataError(
                    f"cannot take {ipc} images per class: class {self.classes[c]!r} of {self.name} has {len(index)} "
                    f"training images; use an ipc from 1 to {len(index)}"
                )

    def sample_per_class(self, ipc: int, seed: int = 0, *, generator: torch.Generator | None = None) -> Split:
        """A class-balanced random subset of ``train``: ``ipc`` images of each class, drawn without replacement.

        ``generator`` (a CPU generator) overrides ``seed`` so a caller can continue its own stream.
        """
        self.check_ipc(ipc)
        generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        picks = []
        for index in self.class_indices():
            picks.append(index[torch.randperm(len(index), generator=generator)[:ipc].to(index.device)])
        return self.train.subset(torch.cat(picks))


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


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _check_name(name: str) -> None:
    """Refuse a :meth:`Dataset.from_arrays` name that is not plain: it names cached files."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ArgumentError(
            "Dataset.from_arrays",
            "name",
            f"{shown(name)} is not a plain name (it names cached files): use 1 to 128 letters, digits, '.', "
            f"'_', ':' and '-', starting with a letter or digit",
        )


def _split(val_fraction: float | None, seed: int | None) -> tuple[float, int]:
    """The validation carve-out's settings, defaults filled in (from :class:`DataConfig`) and checked."""
    val_fraction = DataConfig.val_fraction if val_fraction is None else val_fraction
    seed = DataConfig.split_seed if seed is None else seed
    problem = val_fraction_problem(val_fraction)
    if problem is not None:
        raise DataError(f"val_fraction {problem}; pass for example 0.1 (or 0 for no validation split)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an integer, got {shown(seed)}; pass for example seed=0")
    problem = field_problem(DataConfig.__dataclass_fields__["split_seed"], int(seed))  # [data].split_seed's range
    if problem is not None:
        raise DataError(f"seed (the split's: [data].split_seed, --split-seed) {problem}")
    return float(val_fraction), int(seed)


def _image_size(image_size: int) -> int:
    """``image_size`` checked as ``[data].image_size`` is."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise DataError(f"image_size must be an integer, got {shown(image_size)}; pass for example 32 (0: as stored)")
    problem = field_problem(DataConfig.__dataclass_fields__["image_size"], int(image_size))
    if problem is not None:
        raise DataError(f"image_size ([data].image_size, --image-size) {problem}")
    return int(image_size)


def _from_raw(raw: _Raw, val_fraction: float, seed: int, dev: torch.device) -> Dataset:
    """The :class:`Dataset` of raw arrays: the validation carve-out, normalisation, the fingerprint."""
    val_mask = _stratified_holdout(raw.y_train, val_fraction, torch.Generator().manual_seed(seed))
    train_idx = np.flatnonzero(~val_mask)
    val_idx = np.flatnonzero(val_mask)
    counts = np.bincount(raw.y_train[train_idx], minlength=raw.num_classes)
    present = np.bincount(raw.y_train, minlength=raw.num_classes) > 0
    empty = np.flatnonzero(present & (counts == 0))
    if empty.size:
        raise DataError(
            f"val_fraction={val_fraction} leaves no training images of class {raw.classes[int(empty[0])]!r} "
            f"in {raw.name}; pass a smaller val_fraction"
        )
    if val_fraction > 0 and val_idx.size == 0:
        raise DataError(
            f"val_fraction={val_fraction} holds out no image of {raw.name} (each class's share rounds to none of its "
            f"{int(np.bincount(raw.y_train).max())} images or fewer); pass a larger val_fraction, or add images"
        )

    h = raw.data_hash.copy()
    h.update(f"val_fraction={val_fraction!r};seed={seed}".encode())
    _, channels, height, _ = raw.x_train.shape
    return Dataset(
        name=raw.name,
        train=_make_split(raw.x_train, raw.y_train, train_idx, raw, dev),
        val=_make_split(raw.x_train, raw.y_train, val_idx, raw, dev),
        test=_make_split(raw.x_test, raw.y_test, np.arange(raw.y_test.shape[0]), raw, dev),
        num_classes=raw.num_classes,
        classes=raw.classes,
        channels=int(channels),
        image_size=int(height),
        mean=raw.mean,
        std=raw.std,
        dsa_strategy=raw.dsa_strategy,
        fingerprint=h.hexdigest()[:16],
        val_fraction=val_fraction,
        split_seed=seed,
    )
