"""What the hardware offers: bf16 autocast where it is native, memory formats, allocator settings.

Measured on a 2-core AVX-512-BF16 CPU (benchmarks/RESULTS.md, proxy evaluation speed):
bf16 autocast trains the default ConvNet 1.3-1.7x faster than fp32 with the same accuracy,
eager channels_last pays on a CPU for networks without instance or layer norm (their kernels are
slow in it), and glibc's habit of serving every block above 32 MB with a fresh ``mmap`` costs a page
fault per touched page of every large activation, about a quarter of an fp32 training step.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import getpass
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args, overload

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its convolutions and matrix products still run bf16 natively.
_ONEDNN_BF16_ISAS = ("BF16", "AMX", "FP16", "AVX10")


def cpu_capability() -> str:
    """The vector instruction set PyTorch's own CPU kernels run: ``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``, ...

    It is what the CPU offers unless ``ATEN_CPU_CAPABILITY`` asks for less (``avx2`` on an AVX-512
    machine runs the kernels of an AVX2 one). CPU results are bit-identical for one seed on one
    machine and one instruction set: two sets round differently.
    """
    return torch.backends.cpu.get_cpu_capability()


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether bf16 matrix maths runs natively (not emulated) on this kind of device.

    On a CPU the hardware must have AVX512-BF16 or AMX, and PyTorch must be running its AVX-512
    kernels with oneDNN allowed to use them: ``ATEN_CPU_CAPABILITY=avx2`` or
    ``ONEDNN_MAX_CPU_ISA=AVX2`` (how an AVX-512 machine reproduces an AVX2 one) turn bf16 off.
    """
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        hardware = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
        onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
        allowed = onednn in ("ALL", "DEFAULT", "") or any(isa in onednn for isa in _ONEDNN_BF16_ISAS)
        return hardware and allowed and cpu_capability() == "AVX512"
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` becomes ``bf16`` where the device runs it natively, else ``fp32``."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(torch.device(device).type) else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast for ``precision="bf16"`` (resolved), a no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def separate_inductor_cache() -> None:
    """Cache compiled CPU kernels apart when ``ATEN_CPU_CAPABILITY`` lowers the instruction set.

    Inductor's cache keys do not hold the instruction set that variable selects (PyTorch 2.13):
    kernels an AVX-512 run cached are served to an ``avx2`` run and give NaN, and the other way
    round corrupt memory (measured on an AVX-512 machine). So with that variable set, and no
    ``TORCHINDUCTOR_CACHE_DIR`` of the user's, the cache is a folder named after it. Runs when the
    package is imported: Inductor writes its default folder into the environment the first time
    anything asks for it (``can_compile`` does), after which a user's choice and its own look alike.
    """
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if not capability or "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"torchinductor_{user}_{capability}")


separate_inductor_cache()


@functools.cache
def can_compile(device_type: str) -> bool:
    """Whether ``torch.compile``'s default backend can build kernels here: a C++ compiler for a CPU,
    Triton for CUDA. Settings that compile by themselves (``compile = "auto"``) ask this first."""
    if device_type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()  # raises when no working C++ compiler is found
        except Exception:
            return False
        return True
    if device_type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return False


@overload
def compile_fresh(function: torch.nn.Module) -> torch.nn.Module: ...
@overload
def compile_fresh(function: Callable[..., Any]) -> Callable[..., Any]: ...
def compile_fresh(function: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` one network (or its ``embed``) for fixed shapes, with Dynamo's graphs of earlier networks
    dropped.

    Dynamo keys its graphs on the code of ``forward``, which every ConvNet of the space shares: each
    architecture adds an entry, and past ``recompile_limit`` (8) every later one silently runs eagerly.
    A graph of one architecture never serves another, so dropping them all first costs nothing and a
    process can compile the whole space. Compiled work runs one network at a time (``concurrent_jobs``;
    a condensation compiles one embedding), so no other thread is using the graphs dropped.
    """
    torch.compiler.reset()
    return torch.compile(function, dynamic=False)


@contextlib.contextmanager
def deterministic(device: torch.device | str, enabled: bool = True) -> Iterator[None]:
    """Deterministic CUDA kernels inside the block (``deterministic = true``); a no-op on a CPU.

    A CPU run is already bit-identical for the same seed (everything draws from explicit
    generators, and the CPU kernels used do not race). On CUDA several kernels accumulate with
    atomics in whatever order threads arrive, so the same seed can give different scores. Inside
    the block: ``cudnn.deterministic = True``, ``cudnn.benchmark = False`` (autotuning may pick
    another algorithm per run) and ``torch.use_deterministic_algorithms(True, warn_only=True)``;
    all three are process-wide and restored on exit. ``warn_only``: an op with no deterministic
    CUDA kernel warns, naming itself, instead of stopping the run. In this package that is the
    backward of ``grid_sample`` (DSA's scale and rotate), which condensation differentiates, so a
    condensed set is not bit-repeatable on CUDA with those augmentations; proxy training only runs
    DSA forwards and is expected to be. ``index_add`` and indexed writes take deterministic kernels.

    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (or ``:16:8``), read once, at the process's
    first cuBLAS call. It is set here when unset, which is in time when nothing in the process has
    run a matrix product on the GPU yet (the command line's case); otherwise, or to be sure, set
    it in the environment before starting Python. It stays set after the block.

    Not ``enabled``, on CUDA: cuDNN autotuning (``cudnn.benchmark``) inside the block, where a run has one or two
    input shapes, and restored on exit (a setting of the caller's, not of the process).
    """
    if torch.device(device).type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    if not enabled:
        autotune = cudnn.benchmark
        cudnn.benchmark = True
        try:
            yield
        finally:
            cudnn.benchmark = autotune
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        cudnn.deterministic,
        cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn.deterministic, cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


# Eager CPU kernels that run faster in channels_last (pooling 10x, batch norm 3x, conv 2x on a 2-core AVX2 CPU):
# the norms whose kernels do too. Instance norm (GroupNorm with a group per channel) and layer norm run 1.1-2x
# slower in it, so those networks stay channels-first (benchmarks/RESULTS.md, "Memory format per norm").
_CHANNELS_LAST_NORMS = ("none", "batchnorm", "groupnorm")


def memory_format(device: torch.device, compiled: bool, norm: str | None = None) -> torch.memory_format:
    """channels_last on CUDA and for compiled networks; eager on a CPU, only for a network whose ``norm`` is
    faster in it (measured, see ``_CHANNELS_LAST_NORMS``). ``norm=None`` (no network in view): channels-first."""
    if device.type == "cuda" or compiled or norm in _CHANNELS_LAST_NORMS:
        return torch.channels_last
    return torch.contiguous_format


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


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to ``device`` without making the host wait for the device.

    A plain copy from ordinary host memory to CUDA waits until the GPU has finished all queued work;
    once per training step (the augmentation's random parameters, the epoch's batch order) that stall
    serialises host and GPU. Page-locked memory and ``non_blocking`` let the copy queue behind the
    work instead (PyTorch keeps the page-locked block alive until the copy has run).
    """
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
