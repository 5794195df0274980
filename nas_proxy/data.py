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

    .. testcode::

        from nas_proxy.data import load_dataset

        ds = load_dataset("digits", val_fraction=0.1, seed=0)
        print(ds.train.x.shape[1:], ds.num_classes, len(ds.val) > 0)

    .. testoutput::

        torch.Size([1, 16, 16]) 10 True
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from nas_proxy import _readers
from nas_proxy.errors import NasProxyError

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "Split",
    "default_data_root",
    "load_dataset",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")

_DSA_DIGITS = "color_crop_cutout_scale_rotate"
_DSA_DEFAULT = "color_crop_cutout_flip_scale_rotate"
_DIGITS_SIZE = 16
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 20_211_004  # constant: the digits train/test split never depends on `seed`
_VISION_HINT = "other torchvision datasets need `pip install nas-proxy[vision]`"


class DataError(NasProxyError):
    """A dataset cannot be found, read or split; the message says which file and how to fix it.

    Example:

        .. testcode::

            from nas_proxy.data import DataError, load_dataset

            try:
                load_dataset("mnist", root="/nonexistent")
            except DataError as exc:
                print("MNIST not found" in str(exc))

        .. testoutput::

            True
    """


@dataclass(frozen=True)
class _Spec:
    title: str  # human and torchvision class name
    folder: str  # folder under root
    files: tuple[tuple[str, ...], tuple[str, ...]]  # (train files, test files)
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str


def _idx_spec(title: str, mean: float, std: float, dsa: str) -> _Spec:
    return _Spec(
        title=title,
        folder=f"{title}/raw",
        files=(
            ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        ),
        num_classes=10,
        channels=1,
        image_size=28,
        mean=(mean,),
        std=(std,),
        dsa_strategy=dsa,
    )


_SPECS: dict[str, _Spec] = {
    "mnist": _idx_spec("MNIST", 0.1307, 0.3081, _DSA_DIGITS),
    "fashion_mnist": _idx_spec("FashionMNIST", 0.2861, 0.3530, _DSA_DEFAULT),
    "cifar10": _Spec(
        title="CIFAR10",
        folder="cifar-10-batches-py",
        files=(tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
        num_classes=10,
        channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        dsa_strategy=_DSA_DEFAULT,
    ),
    "cifar100": _Spec(
        title="CIFAR100",
        folder="cifar-100-python",
        files=(("train",), ("test",)),
        num_classes=100,
        channels=3,
        image_size=32,
        mean=(0.5071, 0.4866, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        dsa_strategy=_DSA_DEFAULT,
    ),
}


def _norm_key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


_ALIASES: dict[str, str] = {_norm_key(n): n for n in DATASETS}


def default_data_root() -> Path:
    """Where datasets are looked for when no root is given.

    Returns ``Path($NAS_PROXY_DATA)`` when that variable is set and non-empty, else
    ``Path("./data")``.

    Example:

        .. testcode::

            from nas_proxy.data import default_data_root

            print(default_data_root())
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

        .. testcode::

            import torch
            from nas_proxy.data import load_dataset

            train = load_dataset("digits").train
            first = train.subset(torch.arange(10))
            print(len(first), first.x.dtype, first.y.dtype)

        .. testoutput::

            10 torch.float32 torch.int64
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

        .. testcode::

            from nas_proxy.data import load_dataset

            ds = load_dataset("digits", seed=1)
            print(ds.channels, ds.image_size, ds.dsa_strategy)
            print([len(i) for i in ds.class_indices()][:3])
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

    def to(self, device: str | torch.device) -> Dataset:
        """Return a copy with all three splits on ``device``."""
        dev = _device(device)
        return replace(
            self, train=self.train.to(dev), val=self.val.to(dev), test=self.test.to(dev)
        )

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
                raise DataError(f"cannot take {ipc} images per class: class {c} of {self.name} has {len(index)} "
                                f"training images; use an ipc from 1 to {len(index)}")
            picks.append(index[torch.randperm(len(index), generator=generator)[:ipc].to(index.device)])
        return self.train.subset(torch.cat(picks))


# --------------------------------------------------------------------------- raw data


@dataclass(frozen=True)
class _Raw:
    """Official train/test arrays before the val carve and normalisation (cached, read-only)."""

    name: str
    x_train: np.ndarray  # (N, C, H, W), uint8 (or float32 in [0, 1] for digits)
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    scale: float  # multiply x by this to get [0, 1]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str
    data_hash: Any  # hashlib sha256 object over the raw training bytes; copy before use


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _corrupt(exc: _readers.CorruptFileError) -> DataError:
    return DataError(
        f"{exc.path} is corrupt ({exc.problem}); re-download it: remove it yourself, then "
        f"pass download=True / --download, or copy a good file there"
    )


def _hash_raw(x: np.ndarray, y: np.ndarray, num_classes: int) -> Any:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x))
    h.update(np.ascontiguousarray(y, dtype=np.uint8 if num_classes <= 256 else "<i8"))
    return h


def _freeze(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def _stratified_holdout(y: np.ndarray, fraction: float, gen: torch.Generator) -> np.ndarray:
    """Boolean mask picking ``round(fraction * n_c)`` random items of each class.

    Rounds halves up (``floor(x + 0.5)``), not to even, so the count does not depend on
    the parity of ``n_c`` (MNIST: exactly 6000 of 60000 at fraction 0.1).
    """
    mask = np.zeros(y.shape[0], dtype=bool)
    y_t = torch.from_numpy(np.array(y, dtype=np.int64))  # a writable copy of a cached array
    for c in torch.unique(y_t).tolist():
        idx = torch.nonzero(y_t == c).flatten()
        k = min(int(math.floor(fraction * idx.numel() + 0.5)), idx.numel())
        if k:
            pick = idx[torch.randperm(idx.numel(), generator=gen)[:k]]
            mask[pick.numpy()] = True
    return mask


@functools.lru_cache(maxsize=1)
def _raw_digits() -> _Raw:
    images, labels = _readers.read_digits()
    test_mask = _stratified_holdout(
        labels, _DIGITS_TEST_FRACTION, torch.Generator().manual_seed(_DIGITS_SPLIT_SEED)
    )
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(_DIGITS_SIZE, _DIGITS_SIZE), mode="bilinear", align_corners=False)
    x_np = x.numpy()
    x_train, x_test = x_np[~test_mask], x_np[test_mask]
    y_train, y_test = labels[~test_mask], labels[test_mask]
    # Normalisation constants come from the (fixed) digits train split itself.
    mean = (float(x_train.mean(dtype=np.float64)),)
    std = (float(x_train.std(dtype=np.float64)),)
    _freeze(x_train, x_test, y_train, y_test)
    return _Raw(
        name="digits",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        scale=1.0,
        num_classes=10,
        mean=mean,
        std=std,
        dsa_strategy=_DSA_DIGITS,
        data_hash=_hash_raw(images[~test_mask], y_train, 10),
    )


def _missing_message(spec: _Spec, path: Path, root: Path) -> str:
    return (
        f"{spec.title} not found: expected {path}; download it with torchvision "
        f"(pip install torchvision, then pass download=True / --download) or point "
        f"--data-root / NAS_PROXY_DATA at a folder holding {spec.folder}/"
    )


def _locate(spec: _Spec, root: Path) -> tuple[list[Path], Path | None]:
    """Paths of the train and test files (IDX may be .gz); second item: first missing path."""
    base = root / spec.folder
    found: list[Path] = []
    for name in spec.files[0] + spec.files[1]:
        want = base / name
        got = _readers.find_idx(want) if "ubyte" in name else (want if want.is_file() else None)
        if got is None:
            return found, want
        found.append(got)
    return found, None


def _import_torchvision() -> Any | None:
    """torchvision, or None when it is missing or fails to import (any exception)."""
    try:
        import torchvision  # noqa: PLC0415  (optional, imported lazily on purpose)
    except Exception:  # ImportError, or a broken build raising RuntimeError etc.
        return None
    return torchvision


def _download_standard(spec: _Spec, root: Path, missing: Path) -> None:
    tv = _import_torchvision()
    if tv is None:
        raise DataError(
            f"{spec.title} not found: expected {missing}; download=True needs torchvision, "
            f"which is not installed or failed to import: pip install torchvision "
            f"(or nas-proxy[vision]), or put the files under {root / spec.folder}"
        )
    cls = getattr(tv.datasets, spec.title)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:
        raise DataError(
            f"downloading {spec.title} into {root} failed ({_one_line(exc)}); check the "
            f"network connection, or download the files yourself into {root / spec.folder}"
        ) from exc


def _stamp(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=2)
def _raw_files(canonical: str, stamp: tuple[tuple[str, int, int], ...]) -> _Raw:
    spec = _SPECS[canonical]
    paths = [Path(s[0]) for s in stamp]
    n_train = len(spec.files[0])
    try:
        if spec.channels == 1:
            size = (spec.image_size, spec.image_size)
            xs = [_readers.read_idx(paths[i], 3, size) for i in (0, 2)]
            ys = [_readers.read_idx(paths[i], 1) for i in (1, 3)]
            for x, y, p in ((xs[0], ys[0], paths[1]), (xs[1], ys[1], paths[3])):
                if x.shape[0] != y.shape[0]:
                    raise _readers.CorruptFileError(
                        p, f"{y.shape[0]} labels but the image file holds {x.shape[0]} images"
                    )
            x_train, x_test = xs[0][:, None], xs[1][:, None]
            y_train, y_test = ys[0].astype(np.int64), ys[1].astype(np.int64)
            label_files = (paths[1], paths[3])
        else:
            key = b"labels" if canonical == "cifar10" else b"fine_labels"
            train = [_readers.read_cifar_batch(p, key) for p in paths[:n_train]]
            test = [_readers.read_cifar_batch(p, key) for p in paths[n_train:]]
            for p, (_, y) in zip(paths, train + test):
                _check_labels(y, spec.num_classes, p)
            x_train = np.concatenate([b[0] for b in train]) if n_train > 1 else train[0][0]
            y_train = np.concatenate([b[1] for b in train])
            x_test, y_test = test[0]
            label_files = ()
        for y, p in zip((y_train, y_test), label_files):
            _check_labels(y, spec.num_classes, p)
    except _readers.CorruptFileError as exc:
        raise _corrupt(exc) from None
    except OSError as exc:
        raise DataError(
            f"cannot read {spec.title} under {paths[0].parent} ({_one_line(exc)}); check "
            f"the file permissions"
        ) from exc
    x_train = np.ascontiguousarray(x_train)
    x_test = np.ascontiguousarray(x_test)
    _freeze(x_train, x_test, y_train, y_test)
    return _Raw(
        name=canonical,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        scale=1.0 / 255.0,
        num_classes=spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        dsa_strategy=spec.dsa_strategy,
        data_hash=_hash_raw(x_train, y_train, spec.num_classes),
    )


def _check_labels(y: np.ndarray, num_classes: int, path: Path) -> None:
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise _readers.CorruptFileError(
            path, f"label values {int(y.min())}..{int(y.max())} outside 0..{num_classes - 1}"
        )


def _load_standard(canonical: str, root: Path, download: bool) -> _Raw:
    spec = _SPECS[canonical]
    paths, missing = _locate(spec, root)
    if missing is not None:
        if not download:
            raise DataError(_missing_message(spec, missing, root))
        _download_standard(spec, root, missing)
        paths, missing = _locate(spec, root)
        if missing is not None:
            raise DataError(
                f"{spec.title} download finished but {missing} is still missing; remove "
                f"{root / spec.folder} yourself and retry with download=True / --download"
            )
    return _raw_files(canonical, _stamp(paths))


# ------------------------------------------------------------------ torchvision fallback


def _unknown_name(name: str, why: str) -> DataError:
    return DataError(
        f"unknown dataset {name!r}: known names are {', '.join(DATASETS)}; {_VISION_HINT} "
        f"({why})"
    )


def _find_tv_class(tv: Any, name: str) -> tuple[str, Callable[..., Any]] | None:
    datasets = tv.datasets
    direct = getattr(datasets, name, None)
    if isinstance(direct, type):
        return name, direct
    key = _norm_key(name)
    for cand in getattr(datasets, "__all__", ()):
        obj = getattr(datasets, cand, None)
        if _norm_key(cand) == key and isinstance(obj, type):
            return cand, obj
    return None


def _tv_split(cls: Callable[..., Any], title: str, root: Path, train: bool, download: bool) -> Any:
    try:
        try:
            return cls(str(root), train=train, download=download)
        except TypeError:  # e.g. SVHN, STL10 take split= instead of train=
            return cls(str(root), split="train" if train else "test", download=download)
    except Exception as exc:
        hint = "" if download else "pass download=True / --download, or "
        raise DataError(
            f"torchvision could not load {title} from {root} ({_one_line(exc)}); {hint}point "
            f"--data-root / NAS_PROXY_DATA at the folder holding it"
        ) from exc


def _tv_to_arrays(ds: Any, title: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    images: list[np.ndarray] = []
    labels: list[int] = []
    for i in range(len(ds)):
        img, target = ds[i]
        arr = img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.ndim == 3 and not isinstance(img, torch.Tensor):
            arr = arr.transpose(2, 0, 1)  # PIL / ndarray images are H, W, C
        images.append(arr)
        labels.append(int(target))
    if not images:
        raise DataError(f"torchvision's {title} under {root} is empty; re-download it")
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise DataError(
            f"torchvision's {title} under {root} has images of several sizes {sorted(shapes)[:3]}; "
            f"only datasets with one square image size are supported"
        )
    x = np.stack(images)
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.size and float(x.max()) <= 1.0:
            x = x * 255.0
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if x.shape[2] != x.shape[3]:
        raise DataError(
            f"torchvision's {title} under {root} has {x.shape[2]}x{x.shape[3]} images; only "
            f"square images are supported"
        )
    return x, np.asarray(labels, dtype=np.int64)


def _load_torchvision(name: str, root: Path, download: bool) -> _Raw:
    tv = _import_torchvision()
    if tv is None:
        raise _unknown_name(name, "torchvision is not installed or failed to import")
    found = _find_tv_class(tv, name)
    if found is None:
        raise _unknown_name(name, "torchvision.datasets has no such class either")
    title, cls = found
    train = _tv_split(cls, title, root, True, download)
    test = _tv_split(cls, title, root, False, download)
    x_train, y_train = _tv_to_arrays(train, title, root)
    x_test, y_test = _tv_to_arrays(test, title, root)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"torchvision's {title} under {root}: train images {x_train.shape[1:]} and test "
            f"images {x_test.shape[1:]} differ; this dataset is not supported"
        )
    classes = getattr(train, "classes", None)
    num_classes = max(
        len(classes) if classes else 0, int(max(y_train.max(), y_test.max())) + 1
    )
    if min(int(y_train.min()), int(y_test.min())) < 0:
        raise DataError(f"torchvision's {title} under {root} has negative labels; not supported")
    scaled = x_train.astype(np.float64) / 255.0
    mean = tuple(float(v) for v in scaled.mean(axis=(0, 2, 3)))
    std = tuple(max(float(v), 1e-6) for v in scaled.std(axis=(0, 2, 3)))
    del scaled
    _freeze(x_train, y_train, x_test, y_test)
    return _Raw(
        name=title,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        scale=1.0 / 255.0,
        num_classes=num_classes,
        mean=mean,
        std=std,
        dsa_strategy=_DSA_DEFAULT,
        data_hash=_hash_raw(x_train, y_train, num_classes),
    )


# ----------------------------------------------------------------------------- public


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DataError(
            f"invalid device {device!r} ({_one_line(exc)}); use 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
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


def _make_split(
    x: np.ndarray, y: np.ndarray, index: np.ndarray, raw: _Raw, device: torch.device
) -> Split:
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
    name: str,
    root: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    download: bool = False,
) -> Dataset:
    """Load a dataset as normalised whole-split tensors with a class-balanced val carve-out.

    Args:
        name: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``
            (case-insensitive; ``FashionMNIST``, ``cifar-10`` and similar spellings work),
            or any ``torchvision.datasets`` class name when torchvision is installed.
        root: Folder holding the data in torchvision's layout; defaults to
            :func:`default_data_root`. Ignored for ``digits``.
        val_fraction: Fraction in ``[0, 1)`` of each class of the official training data
            moved into ``val`` (``round(val_fraction * n_c)`` images of class ``c``,
            halves rounded up).
        seed: Seeds the choice of validation images (``torch.Generator``).
        device: Where the tensors are put, for example ``"cuda"``.
        download: When files are missing, let torchvision download them into ``root``.

    Returns:
        The :class:`Dataset`. Files found are only read, never modified.

    Raises:
        DataError: unknown name, missing or corrupt files, bad ``val_fraction`` or device.

    Example:

        .. testcode::

            from nas_proxy.data import load_dataset

            ds = load_dataset("digits", val_fraction=0.1, seed=0)
            print(len(ds.train) + len(ds.val), len(ds.test), ds.fingerprint != "")

        .. testoutput::

            1438 359 True
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not (
        math.isfinite(val_fraction) and 0.0 <= val_fraction < 1.0
    ):
        raise DataError(
            f"val_fraction must be a number in [0, 1), got {val_fraction!r}; pass for "
            f"example 0.1 (or 0 for no validation split)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an integer, got {seed!r}; pass for example seed=0")
    if not isinstance(name, str) or not name.strip():
        raise _unknown_name(str(name), "empty or not a string")
    dev = _device(device)
    canonical = _ALIASES.get(_norm_key(name))
    root_path = Path(root) if root is not None else default_data_root()
    root_path = root_path.expanduser().resolve()

    if canonical == "digits":
        raw = _raw_digits()
    elif canonical is not None:
        raw = _load_standard(canonical, root_path, download)
    else:
        raw = _load_torchvision(name.strip(), root_path, download)

    val_mask = _stratified_holdout(
        raw.y_train, float(val_fraction), torch.Generator().manual_seed(int(seed))
    )
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
    )
