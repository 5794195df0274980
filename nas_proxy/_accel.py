"""What the hardware offers: bf16 autocast where it is native, memory formats, allocator settings.

Measured on a 2-core AVX-512-BF16 CPU (benchmarks/RESULTS.md, proxy evaluation speed):
bf16 autocast trains the default ConvNet 1.3-1.7x faster than fp32 with the same accuracy,
channels_last only pays together with ``torch.compile`` on a CPU (eager GroupNorm is slow in
it), and glibc's habit of serving every block above 32 MB with a fresh ``mmap`` costs a page
fault per touched page of every large activation, about a quarter of an fp32 training step.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from typing import Literal, get_args

import torch

from nas_proxy.errors import NasProxyError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(where: str, precision: str) -> None:
    if precision not in PRECISIONS:
        raise NasProxyError(f"{where}.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether bf16 matrix maths runs natively (not emulated) on this kind of device."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` becomes ``bf16`` where the device runs it natively, else ``fp32``."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(torch.device(device).type) else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` (resolved), a no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device, compiled: bool) -> torch.memory_format:
    """channels_last on CUDA, and on a CPU only for compiled networks (measured, see module docstring)."""
    return torch.channels_last if device.type == "cuda" or compiled else torch.contiguous_format


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep large tensors on glibc's heap instead of a fresh ``mmap`` each time; True if applied.

    Freed activations are then reused without page faults. Memory is returned to the system
    only above 1 GiB free at the top of the heap. Idempotent; does nothing off glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False  # not glibc (musl, macOS): its allocator has other knobs
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
