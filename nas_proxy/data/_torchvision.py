"""The fallback for any other name: a ``torchvision.datasets`` class, read into raw arrays.

torchvision is optional, and has no extra: it must be the build made for the installed torch
(:func:`~nas_proxy.data._sources.torchvision_install` says which), or pip replaces torch. This
module imports it only when a name is not one of the built-in data sets. Its classes that read a
folder of your own (ImageFolder) are refused for ``folder:PATH``, which needs no torchvision.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_proxy.data._sources import (
    STRATEGY_NO_FLIP,
    _freeze,
    _hash_raw,
    _import_torchvision,
    _norm_key,
    _numbered,
    _one_line,
    _Raw,
    _unknown_name,
)
from nas_proxy.errors import DataError

# torchvision classes that read a folder of the user's rather than a data set they download and split
_FOLDER_CLASSES = frozenset({"imagefolder", "datasetfolder"})


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
            pass
        try:
            return cls(str(root), split="train" if train else "test", download=download)
        except TypeError as exc:
            raise DataError(
                f"torchvision's {title} takes neither train= nor split='train'/'test' ({_one_line(exc)[:80]}), so it "
                f"cannot be loaded by name; save its images as an .npz (np.savez('data.npz', x=images, y=labels)) "
                f"and pass arrays:data.npz"
            ) from None
    except DataError:
        raise
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
            f"torchvision's {title} under {root} has {x.shape[2]}x{x.shape[3]} images; only square images are supported"
        )
    return x, np.asarray(labels, dtype=np.int64)


def _load_torchvision(name: str, root: Path, download: bool) -> _Raw:
    if _norm_key(name) in _FOLDER_CLASSES:
        raise DataError(
            f"dataset {name!r} reads a folder of your own: pass folder:PATH instead (--dataset folder:PATH, or "
            f'dataset = "folder:PATH" in [data]; one subfolder of PNG/JPEG images per class), which needs no '
            "torchvision"
        )
    tv, why = _import_torchvision()
    if tv is None:
        raise _unknown_name(name, why, torchvision_missing=True)
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
    num_classes = max(len(classes) if classes else 0, int(max(y_train.max(), y_test.max())) + 1)
    names = tuple(str(c) for c in classes) if classes and len(classes) == num_classes else _numbered(num_classes)
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
        classes=names,
        mean=mean,
        std=std,
        dsa_strategy=STRATEGY_NO_FLIP,  # not known to be mirror-safe (KMNIST, SVHN: characters and digits)
        data_hash=_hash_raw(x_train, y_train, num_classes),
    )
