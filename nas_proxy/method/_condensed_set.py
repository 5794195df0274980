"""The condensed set and its file: :class:`CondensedSet` (synthetic images, normalised like the real data, their
labels and their provenance), written by :meth:`CondensedSet.save` (``torch.save`` of tensors and plain containers,
format ``nas-proxy-condensed/1``, with a PNG grid beside it) and read back by :meth:`CondensedSet.load`, which checks
the file explicitly (also under ``python -O``) and says in one line what is wrong with one it cannot use. The readers
it shares with the condensation checkpoint (:func:`_read`, :func:`_format_problem`, :func:`_newer_hint`) live here too.
"""

from __future__ import annotations

import errno
import pickle
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas_proxy._io import atomic_torch_save, atomic_write
from nas_proxy._version import __version__
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import NasProxyError

FORMAT = "nas-proxy-condensed/1"


def _write_png_grid(images: torch.Tensor, rows: int, path: str | Path, pad: int = 1) -> Path:
    """Write ``images`` (N, C, H, W) with values in [0, 1] as a ``rows`` x ceil(N/rows) PNG grid."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    cols = -(-n // rows)
    grid = torch.ones(3, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].expand(3, h, w)
    pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))


@dataclass
class CondensedSet:
    """Synthetic images (normalised like the real data), their labels and provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, device: str | torch.device = "cpu") -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def save(self, path: str | Path, png: bool = True) -> Path:
        """Write the set atomically to ``path``, and a PNG grid (a row per class) beside it."""
        path = Path(path)
        atomic_torch_save(
            {"format": FORMAT, "images": self.images.cpu(), "labels": self.labels.cpu(), "meta": self.meta}, path
        )
        if png:
            mean = torch.tensor(self.meta["mean"]).view(1, -1, 1, 1)
            std = torch.tensor(self.meta["std"]).view(1, -1, 1, 1)
            _write_png_grid(
                self.images.cpu() * std + mean, rows=self.meta["num_classes"], path=path.with_suffix(".png")
            )
        return path

    @classmethod
    def load(cls, path: str | Path, data: Dataset | None = None) -> CondensedSet:
        """Read a set written by :meth:`save`; with ``data``, check it was condensed from that data set."""
        path = Path(path)
        if not path.is_file():
            raise NasProxyError(
                f"condensed set not found: {path}; create it with `nas-proxy condense ... --out {path}`"
            )
        blob = _read(path, "condensed set", "re-create it with `nas-proxy condense`")
        problem = _set_problem(blob)
        if problem:
            raise NasProxyError(
                f"{path} is not a readable nas-proxy condensed set ({problem}); "
                f"{_newer_hint(blob, FORMAT)}re-create it with `nas-proxy condense`"
            )
        syn = cls(blob["images"], blob["labels"], blob["meta"])
        if data is not None:
            meta = syn.meta
            if meta.get("dataset") != data.name:
                raise NasProxyError(
                    f"{path} was condensed from {meta.get('dataset')!r}, not {data.name!r}; "
                    f"condense {data.name!r} or pass --dataset {meta.get('dataset')}"
                )
            shape = tuple(syn.images.shape[1:])
            if shape != (data.channels, data.image_size, data.image_size):
                raise NasProxyError(
                    f"{path} holds {shape} images but {data.name} has "
                    f"{(data.channels, data.image_size, data.image_size)}; re-condense it"
                )
            if int(syn.labels.max()) >= data.num_classes:
                raise NasProxyError(
                    f"{path} has labels beyond {data.name}'s {data.num_classes} classes; re-condense it"
                )
        return syn


def _read(path: Path, what: str, fix: str) -> Any:
    """``torch.load`` of tensors and plain containers only; a failure becomes one line saying what went wrong.

    The file may be unreadable (permissions, a disk error), cut short or not a PyTorch file at all (a crash
    while it was copied, the wrong path), or hold objects no nas-proxy file holds (another program's file):
    each asks for something else, so each says so.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # torch's zip reader, seeking past the end of a file cut short
            raise NasProxyError(f"{path} is cut short or corrupt (its zip archive ends early); {fix}") from None
        raise NasProxyError(
            f"cannot read the {what} {path} ({exc.strerror or exc}); check the file's permissions and the disk"
        ) from None
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a pickle of classes: loading it would run their code
            raise NasProxyError(
                f"{path} holds Python objects that no nas-proxy {what} holds (another program's file?); {fix}"
            ) from None
        raise NasProxyError(f"{path} is cut short or is not a PyTorch file (not a pickle of tensors); {fix}") from None
    except Exception as exc:  # zip errors (RuntimeError), EOFError, KeyError, ...: torch.load names no common type
        raise NasProxyError(f"{path} is cut short or is not a PyTorch file ({_first_line(exc)}); {fix}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text and text[0] else type(exc).__name__


def _newer_hint(blob: Any, expected: str) -> str:
    """For a file of a later format version than this nas-proxy reads: how to read it instead of re-making it."""
    name, _, version = expected.rpartition("/")
    found = blob.get("format") if isinstance(blob, dict) else None
    if isinstance(found, str) and found.startswith(name + "/"):
        theirs = found.rpartition("/")[2]
        if theirs.isdigit() and int(theirs) > int(version):
            return f"it was written by a newer nas-proxy than this one ({__version__}): upgrade nas-proxy, or "
    return ""


def _format_problem(blob: Any, expected: str, fields: dict[str, type]) -> str:
    """Why ``blob`` (what ``torch.load`` returned) is not an ``expected`` file; "" if it is.

    Explicit checks, not ``assert``: they must hold under ``python -O`` too.
    """
    if not isinstance(blob, dict) or "format" not in blob:
        return "another kind of file: it has no 'format' entry"
    if blob["format"] != expected:
        return f"format {blob['format']!r}, expected {expected!r}"
    for key, kind in fields.items():
        if key not in blob:
            return f"it has no {key!r}"
        if not isinstance(blob[key], kind):
            return f"its {key!r} is of type {type(blob[key]).__name__}, expected {kind.__name__}"
    return ""


def _set_problem(blob: Any) -> str:
    """Why ``blob`` is not a condensed set :meth:`CondensedSet.save` wrote; "" if it is one."""
    problem = _format_problem(blob, FORMAT, {"images": torch.Tensor, "labels": torch.Tensor, "meta": dict})
    if problem:
        return problem
    images, labels = blob["images"], blob["labels"]
    if images.ndim != 4 or not images.is_floating_point():
        return f"images of shape {tuple(images.shape)} and type {images.dtype}, expected float (N, C, H, W)"
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        return f"labels of shape {tuple(labels.shape)} and type {labels.dtype}, expected integer (N,)"
    if len(images) != len(labels) or not len(images):
        return f"{len(images)} images and {len(labels)} labels"
    if int(labels.min()) < 0:
        return "negative labels"
    if len(labels.unique()) < 2:  # nothing to tell apart: every network trained on it scores at chance
        return "images of one class only; a set needs at least 2"
    if not bool(torch.isfinite(images).all()):
        return "its images hold NaN or infinite values"
    return ""
