"""Your own images and labels as arrays, checked: :func:`raw_from_arrays` turns the images and labels of every route
to your own data (an ``arrays:PATH.npz``, a ``folder:PATH``, :meth:`~nas_proxy.data.Dataset.from_arrays`) into the
raw arrays the built-in data sets give, after checking their shapes, types, values and classes, carving a fixed
test split when none is given and resizing to a square; :func:`_raw_npz` reads an ``.npz`` (x, y; optionally x_test,
y_test and classes) without pickle, so no file runs code. Every message names where the arrays came from.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas_proxy._config import shown
from nas_proxy.data._sources import (
    STRATEGY_NO_FLIP,
    TEST_FRACTION,
    TEST_SPLIT_SEED,
    _freeze,
    _hash_raw,
    _one_line,
    _Raw,
    _stratified_holdout,
)
from nas_proxy.errors import DataError

_NPZ_KEYS = ("x", "y", "x_test", "y_test", "classes")
_CHUNK = 4096  # images per step of the statistics and of a resize: bounds the temporary float copies
_SIZE_FIX = "set [data].image_size (--image-size), e.g. 32, to resize every image to that square"


def raw_from_arrays(
    x: Any,
    y: Any,
    x_test: Any = None,
    y_test: Any = None,
    *,
    name: str,
    source: str,
    classes: tuple[str, ...] | None = None,
    image_size: int = 0,
) -> _Raw:
    """Checked raw arrays from images and labels: every route to your own data goes through here.

    ``x`` is ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with C 1 or 3, uint8 (or integers in 0..255:
    pixels over 255) or float (taken as they are; normalisation follows the data). ``y`` holds integer labels:
    indices into ``classes`` when it is given, else any integers, named by their values. Without ``x_test`` a
    fixed 20 % of each class becomes the test split (a constant seed: it never depends on the validation
    split's). ``image_size`` resizes to that square (antialiased bilinear); 0 keeps the size, which must be
    square. ``source`` names where the arrays came from in every message.
    """
    x, y, x_test, y_test = _checked_arrays(x, y, x_test, y_test, source)
    classes, y, y_test = _checked_classes(classes, y, y_test, source)
    if x_test is None:
        x, x_test, y, y_test = _carve_test(x, y, source)
    _check_class_counts(y, classes, source)
    x, x_test = _squared(x, x_test, image_size, source)
    return _frozen_raw(name, x, y, x_test, y_test, classes)


def _checked_arrays(
    x: Any, y: Any, x_test: Any, y_test: Any, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The images and labels as checked arrays, the test split's too when given (with the training images'
    channels: one network reads both)."""
    if (x_test is None) != (y_test is None):
        raise DataError(f"{source}: pass x_test and y_test together (or neither, to carve a test split)")
    x = _images(x, "x", source)
    y = _labels(y, "y", len(x), source)
    if x_test is not None:
        x_test = _images(x_test, "x_test", source)
        y_test = _labels(y_test, "y_test", len(x_test), source)
        if x_test.shape[1] != x.shape[1]:
            raise DataError(
                f"{source}: x holds {x.shape[1]}-channel images but x_test {x_test.shape[1]}-channel ones; give both "
                f"the same channels"
            )
    return x, y, x_test, y_test


def _checked_classes(
    classes: tuple[str, ...] | None, y: np.ndarray, y_test: np.ndarray | None, source: str
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """The class names and labels ``0 .. K-1`` (:func:`_class_names`), refused when there is one class: ranking
    architectures needs at least two."""
    classes, y, y_test = _class_names(classes, y, y_test, source)
    if len(classes) < 2:  # one label value, or one class name
        raise DataError(
            f"{source}: every image is of one class ({shown(classes[0])}); ranking architectures needs at least 2 "
            f"classes"
        )
    return classes, y, y_test


def _carve_test(x: np.ndarray, y: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test images and labels: a fixed share of each class held out as the test split, with a constant
    seed so that it never depends on the validation split's; refused when it rounds to no image."""
    test = _stratified_holdout(y, TEST_FRACTION, torch.Generator().manual_seed(TEST_SPLIT_SEED))
    x, x_test, y, y_test = x[~test], x[test], y[~test], y[test]
    if len(y_test) == 0:
        raise DataError(
            f"{source}: too few images to carve a test split ({TEST_FRACTION:.0%} of each class rounds to none); "
            f"add images, or give a test split of your own"
        )
    return x, x_test, y, y_test


def _check_class_counts(y: np.ndarray, classes: tuple[str, ...], source: str) -> None:
    """Refuse a class without training images (once any test split is carved): a network never shown it cannot
    learn it."""
    counts = np.bincount(y, minlength=len(classes))
    if (counts == 0).any():
        empty = classes[int(np.flatnonzero(counts == 0)[0])]
        raise DataError(f"{source}: class {shown(empty)} has no training images; add some, or drop the class")


def _squared(x: np.ndarray, x_test: np.ndarray, image_size: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Training and test images at one square size (:func:`_square`), refused when they differ: one network reads
    both."""
    x = _square(x, image_size, source)
    x_test = _square(x_test, image_size, source)
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{source}: training images are {_size(x)} but test images {_size(x_test)}; {_SIZE_FIX}")
    return x, x_test


def _frozen_raw(
    name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, classes: tuple[str, ...]
) -> _Raw:
    """The checked arrays as read-only raw arrays, with the per-channel normalisation of the training images (the
    test split excluded) and a fingerprint of every image and label."""
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    mean, std = _channel_stats(x, scale)
    x, x_test = np.ascontiguousarray(x), np.ascontiguousarray(x_test)
    _freeze(x, y, x_test, y_test)
    # The test split is yours too (the reference's accuracy is measured on it): any image changed changes the
    # fingerprint. A built-in set's covers its training files alone; its official test files never change.
    data_hash = _hash_raw(x, y, len(classes))
    data_hash.update(_hash_raw(x_test, y_test, len(classes)).digest())
    return _Raw(
        name=name,
        x_train=x,
        y_train=y,
        x_test=x_test,
        y_test=y_test,
        scale=scale,
        num_classes=len(classes),
        classes=classes,
        mean=mean,
        std=std,
        dsa_strategy=STRATEGY_NO_FLIP,
        data_hash=data_hash,
    )


def _images(x: object, key: str, source: str) -> np.ndarray:
    """``x`` as ``(N, C, H, W)`` uint8 or float32, checked."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):  # (N, H, W, C); a tie is (N, C, H, W)
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(
            f"{source}: {key} has shape {x.shape}; expected images (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 "
            f"(grey) or 3 (RGB)"
        )
    if len(x) == 0:
        raise DataError(f"{source}: {key} holds no images")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer):
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DataError(
                f"{source}: {key} holds integers {low}..{high}, outside the pixel range 0..255; pass uint8 pixels, "
                f"or floats"
            )
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{source}: {key} holds {x.dtype} values; pass uint8 pixels or floats")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{source}: {key} holds NaN or infinite values (in {int(bad.sum())} of its images, the first at index "
            f"{int(np.flatnonzero(bad)[0])}); fix or drop those images"
        )
    return x


def _labels(y: object, key: str, n: int, source: str) -> np.ndarray:
    """``y`` as int64 ``(n,)``: integers, or floats that are whole numbers."""
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        images = "x" if key == "y" else "x_test"
        raise DataError(f"{source}: {key} has shape {y.shape} but {images} holds {n} images; give one label per image")
    if np.issubdtype(y.dtype, np.floating):
        fractional = ~np.isfinite(y) | (y != np.round(y))
        if fractional.any():
            raise DataError(
                f"{source}: {key} must hold integer class labels, got {y[fractional][0]!r} at index "
                f"{int(np.flatnonzero(fractional)[0])}; pass whole numbers"
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: {key} must hold integer class labels, got {y.dtype} values; pass whole numbers")
    return y.astype(np.int64)


def _class_names(
    classes: tuple[str, ...] | None, y: np.ndarray, y_test: np.ndarray | None, source: str
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """Names and labels ``0 .. K-1``: ``y`` indexes ``classes`` when given; else the distinct label values, named
    by themselves (labels 3, 7, 9 become 0, 1, 2, named "3", "7", "9")."""
    both = y if y_test is None else np.concatenate([y, y_test])
    if classes is None:
        values = np.unique(both)
        index: Callable[[np.ndarray], np.ndarray] = lambda labels: np.searchsorted(values, labels).astype(np.int64)
        return tuple(str(int(v)) for v in values), index(y), None if y_test is None else index(y_test)
    classes = tuple(str(c) for c in classes)
    if both.size and (int(both.min()) < 0 or int(both.max()) >= len(classes)):
        raise DataError(
            f"{source}: labels {int(both.min())}..{int(both.max())} but {len(classes)} class names; labels index "
            f"the class names, 0..{len(classes) - 1}"
        )
    return classes, y, y_test


def _square(x: np.ndarray, image_size: int, source: str) -> np.ndarray:
    """``x`` resized to ``image_size`` (antialiased bilinear, uint8 stays uint8), or as it is when 0 (square)."""
    height, width = x.shape[2:]
    if not image_size:
        if height != width:
            raise DataError(f"{source}: images are {width}x{height} px, not square; {_SIZE_FIX}")
        return x
    if (height, width) == (image_size, image_size):
        return x
    out = np.empty((len(x), x.shape[1], image_size, image_size), dtype=x.dtype)
    for start in range(0, len(x), _CHUNK):
        chunk = torch.from_numpy(x[start : start + _CHUNK].astype(np.float32))  # a copy: x may be read-only
        chunk = F.interpolate(chunk, size=(image_size, image_size), mode="bilinear", antialias=True)
        if x.dtype == np.uint8:
            chunk = chunk.round_().clamp_(0, 255)
        out[start : start + _CHUNK] = chunk.numpy().astype(x.dtype)
    return out


def _size(x: np.ndarray) -> str:
    return f"{x.shape[3]}x{x.shape[2]} px"


def _channel_stats(x: np.ndarray, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``x * scale`` over the training split, a chunk at a time."""
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), _CHUNK):
        chunk = x[start : start + _CHUNK].astype(np.float64) * scale
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(max(float(s), 1e-6) for s in std)  # a constant channel: no 0 / 0


@functools.lru_cache(maxsize=2)
def _raw_npz(path: Path, name: str, image_size: int, stamp: tuple[int, int]) -> _Raw:
    """The arrays of an ``.npz`` (x, y; optionally x_test, y_test and classes), read without pickle."""
    save = f"np.savez({path.with_suffix('.npz').name!r}, x=images, y=labels)"
    try:
        # np.load takes any file that is not a zip or an .npy for a pickle: say what the file is instead
        if not zipfile.is_zipfile(path):
            with path.open("rb") as fh:
                what = "a single array (.npy)" if fh.read(6) == b"\x93NUMPY" else "not an .npz"
            raise DataError(f"{path} is {what}; an arrays: file holds x and y, saved with {save}")
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            unknown, missing = sorted(keys - set(_NPZ_KEYS)), [k for k in ("x", "y") if k not in keys]
            if unknown or missing:
                problem = f"has no {missing[0]!r}" if missing else f"holds {shown(unknown[0])}"
                raise DataError(
                    f"{path} {problem}; an arrays: file holds x and y (optionally x_test, y_test and classes), "
                    f"saved with {save}"
                )
            arrays = {key: npz[key] for key in npz.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # object arrays: loading them would run the pickle's code
            raise DataError(
                f"{path} holds pickled Python objects, which are never loaded (a file could run code with them); "
                f"save plain numeric arrays: {save}"
            ) from None
        raise DataError(f"{path} is not a readable .npz ({_one_line(exc)}); save it again with np.savez") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz ({_one_line(exc)}); save it again with np.savez") from None
    classes = arrays.get("classes")
    if classes is not None and (classes.ndim != 1 or classes.dtype.kind not in "US"):
        raise DataError(f"{path}: classes must be a 1-D array of names (strings), got {classes.dtype} {classes.shape}")
    return raw_from_arrays(
        arrays["x"],
        arrays["y"],
        arrays.get("x_test"),
        arrays.get("y_test"),
        name=name,
        source=str(path),
        classes=None if classes is None else tuple(str(c) for c in classes.tolist()),
        image_size=image_size,
    )
