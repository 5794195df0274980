"""Reading a folder of your own images (``folder:PATH``): :func:`_folder_files` finds and checks its class folders
(one subfolder of images per class, or ``train/`` and ``test/`` that each hold them), :func:`_raw_folder` decodes
every PNG or JPEG with Pillow (an optional dependency: ``pip install 'nas-proxy[images]'``) into grey or RGB pixels
of one square size and hands them to :func:`~nas_proxy.data._own_arrays.raw_from_arrays`. Files are only read,
never written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nas_proxy.data._own_arrays import _SIZE_FIX, raw_from_arrays
from nas_proxy.data._sources import _one_line, _Raw
from nas_proxy.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Pillow modes of one grey channel; "I" and "I;16*" hold 16-bit PNGs (scaled to 8 bits here)
_GREY = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"})


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
