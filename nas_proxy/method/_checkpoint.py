"""The checkpoint of an interrupted condensation: where it lives (:func:`checkpoint_path`, ``<set>.ckpt``), its
format (``nas-proxy-condense-checkpoint/1``; :func:`~nas_proxy.method.condense` writes it every
``checkpoint_every`` iterations) and :func:`_load_checkpoint`, which reads it back for a resumed run and refuses one
of other data or other settings (only those in :data:`_RESUMABLE` may change between the two runs).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from nas_proxy.data import Dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method._condensed_set import _format_problem, _newer_hint, _read
from nas_proxy.method._config import CondenseConfig

_CHECKPOINT_FORMAT = "nas-proxy-condense-checkpoint/1"
# Settings that may change between a checkpoint and its resumption without changing the result.
# ``compile`` is compared by its resolved value in condense() ("auto" and true are the same run if
# "auto" compiles); ``deterministic`` changes bitwise repeatability on CUDA, not the result.
_RESUMABLE = {"iterations", "checkpoint_every", "compile", "deterministic"}


def checkpoint_path(path: str | Path) -> Path:
    """Where an interrupted condensation that will write ``path`` keeps its state: ``<path>.ckpt``."""
    path = Path(path)
    return path.with_name(path.name + ".ckpt")


_CHECKPOINT_FIELDS = {
    "iteration": int,
    "images": torch.Tensor,
    "optimizer": dict,
    "generator": torch.Tensor,
    "losses": list,
    "elapsed": float,
    "config": dict,
    "fingerprint": str,
    "compiled": bool,
}


def _load_checkpoint(path: Path, data: Dataset, config: CondenseConfig) -> dict[str, Any]:
    state: dict[str, Any] = _read(path, "checkpoint", "delete it to start over")
    problem = _format_problem(state, _CHECKPOINT_FORMAT, _CHECKPOINT_FIELDS)
    if problem:
        raise NasProxyError(
            f"checkpoint {path} is unreadable ({problem}); {_newer_hint(state, _CHECKPOINT_FORMAT)}"
            f"delete it to start over"
        )
    if state["fingerprint"] != data.fingerprint:
        raise NasProxyError(
            f"checkpoint {path} was made from other data ({data.name} differs); delete it to start over"
        )
    saved = state["config"]
    for key, value in dataclasses.asdict(config).items():
        if key not in _RESUMABLE and saved.get(key) != value:
            raise NasProxyError(
                f"checkpoint {path} has {key}={saved.get(key)!r} but this run asks for {value!r}; "
                f"use the same settings or delete the checkpoint"
            )
    if state["iteration"] > config.iterations:
        raise NasProxyError(
            f"checkpoint {path} is at iteration {state['iteration']}, past the requested "
            f"{config.iterations}; ask for at least that many iterations"
        )
    return state
