"""Your own data: ``folder:PATH`` (one subfolder of PNG/JPEG images per class), ``arrays:PATH.npz`` (x, y) and
arrays in memory, all turned into the raw arrays the built-in data sets give (:class:`~nas_proxy.data._sources._Raw`)
by one function, :func:`~nas_proxy.data._own_arrays.raw_from_arrays`.

A relative PATH is read from the current folder, as every other path the tool reads or writes (a study's
``runs/<name>``): a preset naming ``folder:images`` runs from the folder that holds ``images/``. Files are only
read, never written; an ``.npz`` is loaded without pickle, so no file runs code. Pillow reads the images; it is
an optional dependency (``pip install 'nas-proxy[images]'``).

This module names your files (:func:`own_source`, :func:`own_name`) and loads them (:func:`load_own`, which keeps
the last two folders read); ``_own_folder`` reads a folder of images, ``_own_arrays`` reads an ``.npz`` and checks
the arrays of every route.
"""

from __future__ import annotations

import re
from pathlib import Path

from nas_proxy.data._own_arrays import _raw_npz
from nas_proxy.data._own_folder import _folder_files, _raw_folder, _Split
from nas_proxy.data._sources import _Raw
from nas_proxy.errors import DataError

KINDS = ("folder", "arrays")  # the prefixes of a dataset naming your own files: folder:PATH, arrays:PATH.npz


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


# load_own's cache: (folder, name, size, files, each file's time and size)
_FOLDERS: dict[tuple[Path, str, int, tuple[_Split, _Split], tuple[tuple[int, int], ...]], _Raw] = {}
