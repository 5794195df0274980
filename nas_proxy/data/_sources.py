"""The built-in data sets: digits from scikit-learn, and MNIST, FashionMNIST and CIFAR files
in torchvision's on-disk layout, read (or downloaded) into cached raw arrays.

:mod:`nas_proxy.data._readers` parses the files; this module finds them, checks them and turns a
problem into a :class:`~nas_proxy.errors.DataError` that says how to fix it.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas_proxy.data import _readers
from nas_proxy.errors import DataError

# The public list of built-in names (nas_proxy.data._dataset re-exports it); defined here because the
# unknown-name message below lists it and this module must not import nas_proxy.data._dataset.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")

# The DSA strategy each data set takes (what `dsa_strategy = "auto"` runs): op families of nas_proxy.method's DSA.
STRATEGY_WITH_FLIP = "color_crop_cutout_flip_scale_rotate"  # FashionMNIST, CIFAR
# MNIST, digits, SVHN: a flipped digit is another digit (or none). Also the default for any data set not known to be
# mirror-safe (other torchvision sets, your own): a flip that changes a class hurts more than a missing one.
STRATEGY_NO_FLIP = "color_crop_cutout_scale_rotate"
_DIGITS_SIZE = 16
# A data set without a test split of its own (digits, your own data without one) gets a fixed 20 % per class,
# drawn with a constant seed: the test split never depends on `seed`.
TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 20_211_004


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
    "mnist": _idx_spec("MNIST", 0.1307, 0.3081, STRATEGY_NO_FLIP),
    "fashion_mnist": _idx_spec("FashionMNIST", 0.2861, 0.3530, STRATEGY_WITH_FLIP),
    "cifar10": _Spec(
        title="CIFAR10",
        folder="cifar-10-batches-py",
        files=(tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
        num_classes=10,
        channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        dsa_strategy=STRATEGY_WITH_FLIP,
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
        dsa_strategy=STRATEGY_WITH_FLIP,
    ),
}


def _norm_key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


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
    classes: tuple[str, ...]  # class c's name: a folder name, or str(c) where the files name none
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
    h.update(np.ascontiguousarray(x).data)  # .data: the array's bytes (numpy types an array a Buffer from Python 3.12)
    h.update(np.ascontiguousarray(y, dtype=np.uint8 if num_classes <= 256 else "<i8").data)
    return h


def _numbered(num_classes: int) -> tuple[str, ...]:
    """Class names where the files give none: the labels themselves."""
    return tuple(str(c) for c in range(num_classes))


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


def torchvision_install() -> str:
    """The command that installs the torchvision built for the installed torch, which it then keeps.

    torch 2.N pairs with torchvision 0.(N+15). A bare ``pip install torchvision`` takes the newest release, which
    pins the newest torch and so replaces a CPU build with a CUDA one; a CPU build's torchvision comes from
    PyTorch's CPU index.
    """
    release = torch.__version__.split("+")[0].split(".")
    if len(release) < 2 or release[0] != "2" or not release[1].isdigit():
        return f"pip install the torchvision release built for torch {torch.__version__} (see pytorch.org)"
    pin = f"pip install 'torchvision==0.{int(release[1]) + 15}.*'"
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"{pin} --index-url https://download.pytorch.org/whl/cpu"
    return f"{pin} from the index torch {torch.__version__} came from"


def _unknown_name(name: str, why: str, *, torchvision_missing: bool = False) -> DataError:
    """``torchvision_missing``: the name may be a torchvision class, so say which torchvision to install."""
    install = (
        f"; other torchvision data sets need torchvision built for your torch: {torchvision_install()}"
        if torchvision_missing
        else ""
    )
    return DataError(
        f"unknown dataset {name!r} ({why}): known names are {', '.join(DATASETS)}; for your own images pass "
        f"folder:PATH (one subfolder per class) or arrays:PATH.npz{install}"
    )


@functools.lru_cache(maxsize=1)
def _raw_digits() -> _Raw:
    images, labels = _readers.read_digits()
    test_mask = _stratified_holdout(labels, TEST_FRACTION, torch.Generator().manual_seed(TEST_SPLIT_SEED))
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
        classes=_numbered(10),
        mean=mean,
        std=std,
        dsa_strategy=STRATEGY_NO_FLIP,
        data_hash=_hash_raw(images[~test_mask], y_train, 10),
    )


def _missing_message(spec: _Spec, path: Path, root: Path) -> str:
    return (
        f"{spec.title} not found: expected {path}; download it with torchvision "
        f"({torchvision_install()}, then pass download=True / --download) or point "
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


# Here rather than in _torchvision: downloads of the built-in sets need it too.
def _import_torchvision() -> tuple[Any | None, str]:
    """torchvision and "", or None and why not: missing, or failing to import (any exception: a build for another
    torch raises RuntimeError)."""
    try:
        import torchvision  # noqa: PLC0415  (optional, imported lazily on purpose)
    except ImportError:
        return None, "torchvision is not installed"
    except Exception as exc:
        return None, f"torchvision fails to import ({_one_line(exc)[:80]}), a build for another torch"
    return torchvision, ""


def _download_standard(spec: _Spec, root: Path, missing: Path) -> None:
    tv, why = _import_torchvision()
    if tv is None:
        raise DataError(
            f"{spec.title} not found: expected {missing}; download=True needs torchvision and {why}: "
            f"{torchvision_install()}, or put the files under {root / spec.folder}"
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
    try:
        if spec.channels == 1:
            x_train, y_train, x_test, y_test = _read_idx_files(spec, paths)
        else:
            x_train, y_train, x_test, y_test = _read_cifar_files(spec, canonical, paths)
    except _readers.CorruptFileError as exc:
        raise _corrupt(exc) from None
    except OSError as exc:
        raise DataError(
            f"cannot read {spec.title} under {paths[0].parent} ({_one_line(exc)}); check the file permissions"
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
        classes=_numbered(spec.num_classes),
        mean=spec.mean,
        std=spec.std,
        dsa_strategy=spec.dsa_strategy,
        data_hash=_hash_raw(x_train, y_train, spec.num_classes),
    )


def _read_idx_files(spec: _Spec, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The train and test images (``(N, 1, H, W)``) and labels of an IDX data set (MNIST's layout), checked: as
    many labels as images, each a class of ``spec``. A bad file raises ``_readers.CorruptFileError``."""
    size = (spec.image_size, spec.image_size)
    xs = [_readers.read_idx(paths[i], 3, size) for i in (0, 2)]
    ys = [_readers.read_idx(paths[i], 1) for i in (1, 3)]
    for x, y, p in ((xs[0], ys[0], paths[1]), (xs[1], ys[1], paths[3])):
        if x.shape[0] != y.shape[0]:
            raise _readers.CorruptFileError(p, f"{y.shape[0]} labels but the image file holds {x.shape[0]} images")
    x_train, x_test = xs[0][:, None], xs[1][:, None]
    y_train, y_test = ys[0].astype(np.int64), ys[1].astype(np.int64)
    for y, p in ((y_train, paths[1]), (y_test, paths[3])):
        _check_labels(y, spec.num_classes, p)
    return x_train, y_train, x_test, y_test


def _read_cifar_files(
    spec: _Spec, canonical: str, paths: list[Path]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The train and test images and labels of a CIFAR data set (its python pickles, the train batches joined),
    each label checked to be a class of ``spec``. A bad file raises ``_readers.CorruptFileError``."""
    n_train = len(spec.files[0])
    key = b"labels" if canonical == "cifar10" else b"fine_labels"
    train = [_readers.read_cifar_batch(p, key) for p in paths[:n_train]]
    test = [_readers.read_cifar_batch(p, key) for p in paths[n_train:]]
    for p, (_, y) in zip(paths, train + test):
        _check_labels(y, spec.num_classes, p)
    x_train = np.concatenate([b[0] for b in train]) if n_train > 1 else train[0][0]
    y_train = np.concatenate([b[1] for b in train])
    x_test, y_test = test[0]
    return x_train, y_train, x_test, y_test


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
