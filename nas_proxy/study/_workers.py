"""Several search workers on one machine: one process per GPU (or as many as asked), sharing one study.

Workers share the study through its storage: the first to arrive condenses (and publishes the set,
:mod:`nas_proxy.artifacts`), the rest wait and use that one; all stop together when the study holds
its ``n_trials``. Workers on other machines run the same preset with the same ``[study].storage``.

Example:
    >>> from nas_proxy.study._workers import worker_devices
    >>> worker_devices("cpu", 3)
    ['cpu', 'cpu', 'cpu']
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import optuna
import torch
from tqdm.auto import tqdm

from nas_proxy._config import Bounds
from nas_proxy._interrupt import interruptible, safe_interrupt
from nas_proxy._io import check_writable
from nas_proxy.config import Preset
from nas_proxy.data import load_dataset
from nas_proxy.data._dataset import resolve_device
from nas_proxy.errors import ArgumentError, NasProxyError
from nas_proxy.study._search import run_search
from nas_proxy.study._study import enqueue_archs, open_study, select_archs

_WORKERS = Bounds(at_least=0, at_most=256, why="one process per GPU or CPU core; more only take turns")


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each local search worker: one worker per visible GPU unless ``workers`` says otherwise.

    ``workers`` 0 means one per GPU on CUDA (one on a CPU). Workers beyond the GPU count share
    GPUs round-robin; an explicit ``cuda:N`` puts every worker on that GPU.
    """
    if device == "auto":
        device = resolve_device(device).type
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    workers = workers or max(1, gpus)
    if gpus > 1:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [device] * workers


def _work(preset: Preset, data_root: Path | None, device: str, threads: int, progress: bool, verbose: bool) -> None:
    """One worker: its share of the machine's CPU threads (the caller's count comes back after), its device's copy
    of the data, then the search."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with safe_interrupt():
            with interruptible():  # reading data writes nothing
                data = load_dataset(preset.data, data_root, device=device)
            run_search(preset, data, progress=progress, verbose=verbose)
    finally:
        torch.set_num_threads(before)


def _helper(preset: Preset, data_root: Path | None, device: str, threads: int, error: Connection) -> None:
    """A spawned worker: the parent reports errors (each worker meets a lost database, say: one line, not one per
    worker) and interruptions, so send it the error's line on ``error`` and exit quietly with a status.

    It starts with SIGINT ignored (:func:`run_workers`), so a Ctrl-C while Python starts up prints no traceback
    from multiprocessing's bootstrap (the parent sends it again, :func:`_stop`); from :func:`safe_interrupt` on,
    Ctrl-C stops the search, and once that ends it is ignored again: the terminal's and the parent's both come.
    """
    tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock: a killed worker would leak its semaphore
    try:
        with safe_interrupt():
            _work(preset, data_root, device, threads, False, False)
    except NasProxyError as exc:
        error.send(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _stop(helpers: Sequence[BaseProcess]) -> None:
    """Stop the spawned workers after a Ctrl-C: it reaches the whole process group, a plain ``kill -INT`` only this
    process, and a worker still starting up ignores it, so each is sent SIGINT until it has stopped."""
    for helper in helpers:
        while helper.is_alive():
            assert helper.pid is not None  # a process alive has been started, so has its pid
            os.kill(helper.pid, signal.SIGINT)
            helper.join(timeout=0.5)


def _queue_archs(study: optuna.Study, preset: Preset, archs: str, say: Callable[[str], object]) -> None:
    """Queue the architectures ``archs`` names (``--archs``) to run first, and say how many."""
    queued = enqueue_archs(study, select_archs(archs, preset.space(), preset.reference, study))
    named = str(archs)
    named = named if len(named) <= 40 else f"{named[:40]}..."  # a list of ids runs to thousands of characters
    say(f"queued {queued} architectures ({named}) to run first")


def _start_helpers(
    preset: Preset, root: Path | None, devices: list[str], threads: int
) -> tuple[Sequence[BaseProcess], list[tuple[Connection, Connection]]]:
    """Spawn one worker per device in ``devices`` (:func:`_helper`), each with a pipe to send its error back on.

    They start with SIGINT ignored, so that a Ctrl-C while Python starts up in them prints no traceback.
    """
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe(duplex=False) for _ in devices]  # a pipe, not a queue: no semaphore to leak
    helpers = [
        context.Process(target=_helper, args=(preset, root, device, threads, sender))
        for device, (_, sender) in zip(devices, pipes)
    ]
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the workers: see _helper
    try:
        for helper in helpers:
            helper.start()
    finally:
        signal.signal(signal.SIGINT, handler)
    return helpers, pipes


def _join(
    helpers: Sequence[BaseProcess], pipes: list[tuple[Connection, Connection]], say: Callable[[str], object]
) -> None:
    """Wait for the spawned workers; raise the first error one of them sent (one line, however many failed), and
    say which were killed by a signal (their trials ran again here)."""
    for helper in helpers:
        helper.join()
    if any(helper.exitcode and helper.exitcode > 0 for helper in helpers):
        said = [receiver.recv() for receiver, _ in pipes if receiver.poll()]
        raise NasProxyError(said[0] if said else "a search worker failed; run the same command to continue")
    for helper in helpers:
        if helper.exitcode:  # killed by a signal: this worker took its trial over and finished the study
            say(
                f"a search worker (process {helper.pid}) was killed by {signal.Signals(-helper.exitcode).name} "
                f"(out of memory?); its trial, if it was running one, ran again"
            )


def run_workers(
    preset: Preset,
    *,
    workers: int = 0,
    device: str = "auto",
    data_root: str | Path | None = None,
    archs: str | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> optuna.Study:
    """Run the preset's study with ``workers`` local processes (:func:`worker_devices`); return the study.

    ``archs`` (the ``--archs`` language of :func:`~nas_proxy.select_archs`: ``N``, ``all``, ids) are
    queued first. This process is the first worker and shows progress; the others are spawned, each
    with an equal share of the CPU threads. A worker that fails raises one error here after the
    others finish; Ctrl-C stops them all, and running the same call again continues the study.
    """
    problem = _WORKERS.problem(workers)
    if problem is not None:
        raise ArgumentError("run_workers", "workers", problem)
    say = tqdm.write if verbose else (lambda message: None)
    root = Path(data_root) if data_root is not None else None
    check_writable(preset.study.output, "[study].out_dir")  # here, not once in every worker
    with safe_interrupt() as interrupt:  # every storage write below finishes before Ctrl-C takes effect
        study = open_study(preset)  # fails fast on a bad storage URL or a clashing study, before any work
        if archs:
            _queue_archs(study, preset, archs, say)
        devices = worker_devices(device, workers)
        threads = max(1, torch.get_num_threads() // len(devices))
        helpers, pipes = _start_helpers(preset, root, devices[1:], threads)
        try:
            _work(preset, root, devices[0], threads, progress, verbose)
        except (KeyboardInterrupt, NasProxyError):  # this worker's error is the one line; the others' trials queue
            _stop(helpers)
            raise
        if interrupt.requested:  # this worker stopped at a safe point: stop the others rather than wait for them
            _stop(helpers)  # (a worker still starting up ignored the terminal's Ctrl-C and would run the study out)
            raise KeyboardInterrupt
        _join(helpers, pipes, say)
    return study


__all__ = ["run_workers", "worker_devices"]
