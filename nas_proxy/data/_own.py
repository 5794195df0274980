"""Your own data: ``folder:PATH`` (one subfolder of PNG/JPEG images per class), ``arrays:PATH.npz`` (x, y) and
arrays in memory, all turned into the raw arrays the built-in data sets give (:class:`~nas_proxy.data._sources._Raw`)
by one function, :func:`raw_from_arrays`.

A relative PATH is read from the current folder, as every other path the tool reads or writes (a study's
``runs/<name>``): a preset naming ``folder:images`` runs from the folder that holds ``images/``. Files are only
read, never written; an ``.npz`` is loaded without pickle, so no file runs code. Pillow reads the images; it is
an optional dependency (``pip install 'nas-proxy[images]'``).
"""

from __future__ import annotations

import functools
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

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

KINDS = ("folder", "arrays")  # the prefixes of a dataset naming your own files: folder:PATH, arrays:PATH.npz
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_NPZ_KEYS = ("x", "y", "x_test", "y_test", "classes")
# Pillow modes of one grey channel; "I" and "I;16*" hold 16-bit PNGs (scaled to 8 bits here)
_GREY = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})
_CHUNK = 4096  # images per step of the statistics and of a resize: bounds the temporary float copies
_SIZE_FIX = "set [data].image_size (--image-size), e.g. 32, to resize every image to that square"


def own_source(dataset: str) -> tuple[str, str] | None:
    """``(kind, path)`` when ``dataset`` names your own files (``folder:PATH`` or ``arrays:PATH.npz``), else None."""
    kind, sep, path = dataset.strip().partition(":")
    return (kind.lower(), path.strip()) if sep and kind.lower() in KINDS else None


def no_path(dataset: str) -> str | None:
    """What is wrong with ``folder:`` or ``arrays:`` naming no path, or None."""
    own = own_source(dataset)
    if own is None or own[1]:
        return None
    return f"names no path; write {own[0]}:PATH, e.g. {own[0]}:{'images' if own[0] == 'folder' else 'data.npz'}"


def own_name(kind: str, path: str) -> str:
    """The name a data set read from ``kind:path`` has (:attr:`Dataset.name`): ``folder:<folder name>`` or
    ``arrays:<file name without .npz>``; characters a file name should not hold become ``_`` (it names cached
    files)."""
    resolved = Path(path).expanduser().resolve()
    stem = resolved.name if kind == "folder" else resolved.stem
    return f"{kind}:{re.sub(r'[^A-Za-z0-9._-]', '_', stem) or 'data'}"


def _where(kind: str, path: str) -> Path:
    """The absolute path ``kind:path`` names, which must exist; the message says how a relative one is read."""
    full = Path(path).expanduser().absolute()
    exists = full.is_dir() if kind == "folder" else full.is_file()
    if not exists:
        what = "folder" if kind == "folder" else "file"
        relative = "" if Path(path).expanduser().is_absolute() else " (a relative path is read from the current folder)"
        raise DataError(
            f"{kind}:{path}: no {what} at {full}{relative}; check the path, or run from the folder that holds it"
        )
    return full


def load_own(kind: str, path: str, image_size: int, progress: bool) -> _Raw:
    """The raw arrays of ``folder:PATH`` or ``arrays:PATH.npz`` (cached while the files stay the same)."""
    problem = no_path(f"{kind}:{path}")
    if problem is not None:
        raise DataError(f"dataset {kind}: {problem}")
    full = _where(kind, path)
    name = own_name(kind, path)
    if kind == "arrays":
        st = full.stat()
        return _raw_npz(full, name, image_size, (st.st_mtime_ns, st.st_size))
    files = _folder_files(full)
    stats = [p.stat() for split in files for _, paths in split for p in paths]
    # keyed without `progress`: a bar shown or not changes no pixel, so a second read with the other gets the first
    key = (full, name, image_size, files, tuple((s.st_mtime_ns, s.st_size) for s in stats))
    if key not in _FOLDERS:
        _FOLDERS[key] = _raw_folder(full, name, image_size, files, progress)
        while len(_FOLDERS) > 2:  # the last two folders read, as _raw_npz keeps the last two files
            del _FOLDERS[next(iter(_FOLDERS))]
    return _FOLDERS[key]


# ----------------------------------------------------------------------------- arrays


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
    classes, y, y_test = _class_names(classes, y, y_test, source)
    if len(classes) < 2:  # one label value, or one class name
        raise DataError(
            f"{source}: every image is of one class ({shown(classes[0])}); ranking architectures needs at least 2 "
            f"classes"
        )
    if x_test is None:
        test = _stratified_holdout(y, TEST_FRACTION, torch.Generator().manual_seed(TEST_SPLIT_SEED))
        x, x_test, y, y_test = x[~test], x[test], y[~test], y[test]
        if len(y_test) == 0:
            raise DataError(
                f"{source}: too few images to carve a test split ({TEST_FRACTION:.0%} of each class rounds to none); "
                f"add images, or give a test split of your own"
            )
    counts = np.bincount(y, minlength=len(classes))
    if (counts == 0).any():
        empty = classes[int(np.flatnonzero(counts == 0)[0])]
        raise DataError(f"{source}: class {shown(empty)} has no training images; add some, or drop the class")
    x = _square(x, image_size, source)
    x_test = _square(x_test, image_size, source)
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{source}: training images are {_size(x)} but test images {_size(x_test)}; {_SIZE_FIX}")
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


# ----------------------------------------------------------------------------- folders


_Split = tuple[tuple[str, tuple[Path, ...]], ...]  # (class name, its image files) per class, in class order


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _folder_files(root: Path) -> tuple[_Split, _Split]:
    """The class folders' image files of the training split and of the test split (empty: carve one).

    ``root`` holds one subfolder per class, or ``train/`` and ``test/`` that each do. A class folder's images
    are found in its subfolders too; hidden files are skipped, other files are ignored.
    """
    try:
        folders = [p for p in _visible(root) if p.is_dir()]
        names = {p.name for p in folders}
        if {"train", "test"} & names:
            if not {"train", "test"} <= names or len(names) > 2:
                raise DataError(
                    f"{root} holds {', '.join(sorted(n + '/' for n in names))}: give train/ and test/ only (each with "
                    f"one subfolder per class; the validation split is carved from train/), or put the class "
                    f"folders directly in {root}"
                )
            train = _class_files(root / "train")
            test = _class_files(root / "test")
            unknown = sorted({c for c, _ in test} - {c for c, _ in train})
            if unknown:
                raise DataError(
                    f"{root / 'test' / unknown[0]} is a class with no folder in {root / 'train'}; add its training "
                    f"images or remove it"
                )
            return train, test
        return _class_files(root), ()
    except PermissionError as exc:
        raise DataError(f"cannot read {exc.filename} ({_one_line(exc)}); check its permissions") from None


def _class_files(folder: Path) -> _Split:
    entries = _visible(folder)
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise DataError(
            f"{loose[0]} is not in a class folder; put each class's images in a subfolder of {folder} named after "
            f"the class"
        )
    split = []
    for class_folder in (p for p in entries if p.is_dir()):
        files = sorted(p for p in _walk(class_folder) if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            others = sum(1 for _ in _walk(class_folder))
            extra = f" ({others} other files)" if others else ""
            raise DataError(
                f"{class_folder} holds no PNG or JPEG images{extra}; add the class's images or remove the folder"
            )
        split.append((class_folder.name, tuple(files)))
    if not split:
        raise DataError(f"{folder} holds no class folders; put each class's images in a subfolder named after it")
    return tuple(split)


def _walk(folder: Path) -> Iterator[Path]:
    """The visible files under ``folder``, at any depth."""
    for p in _visible(folder):
        if p.is_dir():
            yield from _walk(p)
        elif p.is_file():
            yield p


def _import_pillow() -> tuple[Any, Any]:
    """Pillow's ``Image`` and ``ImageOps``."""
    try:
        from PIL import Image, ImageOps  # noqa: PLC0415  (optional: only folder: data sets need it)
    except ImportError:
        raise DataError(
            "folder: data sets are read with Pillow, which is not installed: pip install 'nas-proxy[images]'"
        ) from None
    return Image, ImageOps


def _unreadable(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path} is not a readable image ({_one_line(exc)[:100]}); replace it or remove it")


# What Pillow raises on a file that is not an image, or a broken one (SyntaxError from some decoders)
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


# load_own's cache: (folder, name, size, files, each file's time and size)
_FOLDERS: dict[tuple[Path, str, int, tuple[_Split, _Split], tuple[tuple[int, int], ...]], _Raw] = {}


def _raw_folder(root: Path, name: str, image_size: int, files: tuple[_Split, _Split], progress: bool) -> _Raw:
    """Decode every image of ``files`` (grey when all are grey, else RGB), at ``image_size`` or the size they
    share, then :func:`raw_from_arrays`."""
    image, ops = _import_pillow()
    train, test = files
    classes = tuple(c for c, _ in train)
    paths = [p for _, ps in train + test for p in ps]
    modes: list[str] = []
    sizes: dict[tuple[int, int], Path] = {}
    for path in paths:  # headers only: a bad file or a size problem is found before the slow part
        try:
            with image.open(path) as im:
                modes.append(im.mode)
                sizes.setdefault(im.size, path)
        except (image.DecompressionBombError, *_IMAGE_ERRORS) as exc:
            raise _unreadable(path, exc) from None
    size = image_size or _shared_size(root, sizes)
    grey = all(mode in _GREY for mode in modes)
    x = np.empty((len(paths), 1 if grey else 3, size, size), dtype=np.uint8)
    bar = tqdm(paths, desc=f"reading {name}", unit="image", leave=False, disable=None if progress else True)
    for i, path in enumerate(bar):
        try:
            with image.open(path) as im:
                x[i] = _pixels(image, ops, im, grey, size)
        except (image.DecompressionBombError, *_IMAGE_ERRORS) as exc:
            raise _unreadable(path, exc) from None
    y = np.asarray([c for c, (_, ps) in enumerate(train) for _ in ps], dtype=np.int64)
    n_train = len(y)
    y_test = np.asarray([classes.index(c) for c, ps in test for _ in ps], dtype=np.int64) if test else None
    return raw_from_arrays(
        x[:n_train],
        y,
        x[n_train:] if test else None,
        y_test,
        name=name,
        source=str(root),
        classes=classes,
    )


def _shared_size(root: Path, sizes: dict[tuple[int, int], Path]) -> int:
    """The one square size every image has (``sizes``: each size and its first file), else a DataError."""
    (width, height), first = next(iter(sizes.items()))
    if len(sizes) > 1:
        (other_width, other_height), other = list(sizes.items())[1]
        raise DataError(
            f"{root} holds images of {len(sizes)} sizes ({first.relative_to(root)} {width}x{height}, "
            f"{other.relative_to(root)} {other_width}x{other_height}); {_SIZE_FIX}"
        )
    if width != height:
        raise DataError(f"{root}: images are {width}x{height} px, not square ({first.relative_to(root)}); {_SIZE_FIX}")
    return width


def _pixels(image: Any, ops: Any, im: Any, grey: bool, size: int) -> np.ndarray:
    """One image as ``(C, size, size)`` uint8: turned upright as its EXIF orientation says (a phone's photos are
    stored sideways), 16-bit grey scaled to 8 bits, a palette through RGBA, then grey (L) or RGB, then resized
    (bilinear, antialiased when shrinking)."""
    im = ops.exif_transpose(im)
    if im.mode.startswith("I"):
        im = image.fromarray(np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8))
    elif im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    im = im.convert("L" if grey else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), image.Resampling.BILINEAR)
    pixels = np.asarray(im)
    return pixels[None] if grey else pixels.transpose(2, 0, 1)
