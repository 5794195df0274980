"""Every file the tool keeps, named in one place, and one copy of a study's shared files for every worker.

**Names.** Each artifact is keyed by a hash of the settings that produce it, as they resolve on
this machine (``precision = "auto"`` and ``compile = "auto"`` enter as what they run: bf16 or
fp32, compiled or eager), and of the data it was made from:

- a condensed set (:func:`condensed_set_path`): the ``[condense]`` settings and the data fingerprint
  (the raw training files and the validation split);
- a proxy's cached scores (:func:`score_table_path`): the proxy's settings and the data fingerprint;
- the reference table (:func:`reference_table_path`): the ``[reference]`` training protocol and the
  ``[data]`` settings (name and split). It is found without loading the data (``report`` reads it
  alone), so the fingerprint is kept per row and checked whenever the data is at hand
  (:func:`nas_proxy.reference._reference.check_same_data`); an imported table (:func:`imported_table_path`)
  replaces it. The reference protocol names its precision (``[reference]`` refuses ``"auto"``).

Settings that change how a result is computed but not what it is (``deterministic``, ``threads``,
``jobs``, a checkpoint's interval) do not enter. Files shared by several processes are written
under one lock primitive, :func:`nas_proxy._io.file_lock`.

**One copy per study.** A study's workers may run on machines that share no folder, and some files
they need cannot be rebuilt identically on each: a condensed set made on CUDA differs from run to
run (the backward of ``grid_sample`` accumulates with atomics). So the first worker to build such
a file uploads it to the artifact store named by ``[study].artifacts`` and records its id on the
study (user attribute ``artifact:<file name>``); every other worker downloads that one, checks its
SHA-256 and keeps it in its own output folder, in place of a copy it built itself.

``[study].artifacts`` is a folder (``FileSystemArtifactStore``; default ``<out_dir>/artifacts``,
which only workers sharing the output folder reach) or ``s3://bucket`` (``Boto3ArtifactStore``;
any S3-compatible server, with the endpoint and credentials boto3 reads from the environment,
such as ``AWS_ENDPOINT_URL``).

A worker whose store lacks the recorded copy stops and names the store to set: a copy of its
own would not be the study's (a condensed set also records its own wall time).

Two workers that finish building at the same instant both upload; each records its id only if
none is recorded yet, waits :data:`SETTLE_SECONDS` for a concurrent record to land, and then uses
whatever the study holds, so both end on the same copy.

Example:
    >>> import optuna
    >>> from pathlib import Path
    >>> from nas_proxy.artifacts import open_artifact_store, shared_file
    >>> study = optuna.create_study()
    >>> store = open_artifact_store("shared", Path("out"))
    >>> made = Path("out/table.csv")
    >>> made.parent.mkdir(exist_ok=True)
    >>> path = shared_file(study, store, made, lambda: made.write_text("a,b\\n1,2\\n"), settle=0)
    >>> sorted(study.user_attrs["artifact:table.csv"])
    ['artifact_id', 'sha256', 'store']
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from nas_proxy import _accel
from nas_proxy._config import keyed_settings, settings_key
from nas_proxy._interrupt import interruptible
from nas_proxy._io import file_lock, refused_writes
from nas_proxy._records import record_once
from nas_proxy.config import ReferenceConfig
from nas_proxy.data import DataConfig, Dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method import CondenseConfig, CondensedSet, condense
from nas_proxy.method._checkpoint import checkpoint_path
from nas_proxy.method._condense import resolve_compile, resolve_precision

SETTLE_SECONDS = 2.0  # longer than a storage write takes: two records racing have both landed by then


def _condense_settings(config: CondenseConfig, data: Dataset) -> dict[str, Any]:
    settings = keyed_settings(config, skip=("checkpoint_every", "deterministic"))
    device = data.train.x.device
    settings["compile"] = resolve_compile(config, device)
    settings["precision"] = resolve_precision(config, device, settings["compile"])
    return settings


def condensed_set_path(config: CondenseConfig, data: Dataset, output: Path) -> Path:
    """Where the condensed set ``config`` makes of ``data`` lives: ``<output>/condensed/<data>-ipc<N>-<key>.pt``.

    ``compile = "auto"`` shares a set with the explicit setting it resolves to, and ``precision =
    "auto"`` with the precision it runs in here.
    """
    key = settings_key(_condense_settings(config, data), data.fingerprint)
    return output / "condensed" / f"{data.name}-ipc{config.ipc}-{key}.pt"


def get_condensed_set(
    config: CondenseConfig,
    data: Dataset,
    output: Path,
    *,
    artifacts: str = "",
    progress: bool = True,
    study: optuna.Study | None = None,
) -> CondensedSet:
    """Load the condensed set ``config`` makes of ``data`` from ``output``, or build it once (workers sharing the
    folder wait on a file lock).

    With ``study``, the study's one copy (:func:`shared_file`): the first worker publishes its set to the
    ``artifacts`` store (``[study].artifacts``), and every other worker, on any machine, downloads that one instead
    of scoring against a set of its own.
    """
    path = condensed_set_path(config, data, output)
    path.parent.mkdir(parents=True, exist_ok=True)

    def make() -> None:
        # Interruptible throughout: waiting for another worker and condensing write nothing to the study.
        with interruptible(), file_lock(path):  # one worker condenses; the rest find the file afterwards
            if not path.is_file():
                syn = condense(
                    data,
                    config,
                    checkpoint=checkpoint_path(path),
                    resume=True,
                    progress=progress,
                )
                syn.save(path)

    if study is None:
        make()
    else:
        shared_file(study, open_artifact_store(artifacts, output), path, make)
    return CondensedSet.load(path, data)


def _with_values(settings: Any, key: str, change: Callable[[Any], Any]) -> Any:
    """``settings`` (JSON-like) with ``change(value)`` for every ``key``, also in nested members and fidelities."""
    if isinstance(settings, dict):
        return {k: change(v) if k == key else _with_values(v, key, change) for k, v in settings.items()}
    if isinstance(settings, list):
        return [_with_values(v, key, change) for v in settings]
    return settings


def score_table_path(output: Path, name: str, settings: dict[str, Any], data: Dataset) -> Path:
    """Where proxy ``name``'s cached scores on ``data`` live: ``<output>/scores/<name>-<key>.csv``, keyed by its
    ``settings`` (precision resolved) and the data (its name, validation split and fingerprint)."""
    device = data.train.x.device
    resolved = _with_values(settings, "precision", lambda precision: _accel.resolve_precision(precision, device))
    key = settings_key(resolved, data.name, data.val_fraction, data.split_seed, data.fingerprint)
    return output / "scores" / f"{name}-{key}.csv"


_IMPORTED = "-imported.csv"


def imported_table_path(output: Path, data: DataConfig) -> Path:
    """Where ``nas-proxy reference --import`` puts a table of ``data`` trained elsewhere (its protocol note beside
    it), in the study folder ``output``."""
    return output / "reference" / f"{data.file_stem}{_IMPORTED}"


def is_imported_table(path: Path) -> bool:
    """Whether the reference table at ``path`` was imported (trained elsewhere), not computed here."""
    return Path(path).name.endswith(_IMPORTED)


def reference_table_path(output: Path, data: DataConfig, reference: ReferenceConfig) -> Path:
    """The reference table of ``data`` in the study folder ``output``: an imported one if there is one, else the
    one ``reference``'s protocol computes."""
    imported = imported_table_path(output, data)
    if imported.is_file():
        return imported
    key = settings_key(
        data.dataset, data.val_fraction, data.split_seed, data.image_size, reference.training.key_settings()
    )
    return output / "reference" / f"{data.file_stem}-{key}.csv"


def open_artifact_store(spec: str, output: Path) -> Any:
    """The artifact store ``[study].artifacts`` names: a folder, ``s3://bucket``, or ``""`` for
    ``<output>/artifacts``."""
    if spec.startswith("s3://"):
        bucket, _, rest = spec.removeprefix("s3://").partition("/")
        if not bucket or rest.strip("/"):
            raise NasProxyError(f"[study].artifacts = {spec!r}: name a bucket alone, as s3://my-bucket")
        try:
            import boto3
        except ImportError:
            raise NasProxyError(f"[study].artifacts = {spec!r} needs boto3: pip install boto3") from None
        return Boto3ArtifactStore(bucket, client=boto3.client("s3"))
    folder = Path(spec.removeprefix("file://")).expanduser() if spec else output / "artifacts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasProxyError(
            f"[study].artifacts: cannot create the folder {folder} ({exc.strerror}); name a "
            f"writable folder or s3://bucket"
        ) from None
    return FileSystemArtifactStore(str(folder))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(store: Any) -> str:
    if isinstance(store, FileSystemArtifactStore):
        return f"folder {store._base_path}"  # the class keeps its folder private; this is only a message
    return type(store).__name__


def shared_file(
    study: optuna.Study, store: Any, path: Path, make: Callable[[], Any], *, settle: float | None = None
) -> Path:
    """The study's copy of the file at ``path``: downloaded if another worker published it, else made here
    (``make()`` writes ``path`` if it is missing) and published. Returns ``path``, holding the study's copy.
    ``settle`` (default :data:`SETTLE_SECONDS`) is the wait for a racing record after publishing."""
    key = f"artifact:{path.name}"
    record = study.user_attrs.get(key)
    if record is None:
        make()
        record = study.user_attrs.get(key)  # another worker may have published while this one built or waited
    digest = sha256(path) if path.is_file() else None  # the local copy's, hashed once
    if record is None:
        # A full store: one line. The partial copy it may leave is named by no record, so nothing ever reads it.
        with refused_writes(_describe(store), "[study].artifacts"):
            artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
        record_once(study, key, {"artifact_id": artifact_id, "sha256": digest, "store": _describe(store)})
        time.sleep(SETTLE_SECONDS if settle is None else settle)
        record = study.user_attrs[key]
    if digest == record["sha256"]:
        return path
    part = path.with_name(f"{path.name}.{os.getpid()}.download")
    try:
        with refused_writes(path.parent, "[study].out_dir"):
            download_artifact(artifact_store=store, artifact_id=record["artifact_id"], file_path=str(part))
    except ArtifactNotFound:
        raise NasProxyError(
            f"study {study.study_name!r} uses {path.name}, artifact {record['artifact_id']} in "
            f"{record['store']}, which {_describe(store)} does not hold; set [study].artifacts to a "
            f"store every worker reaches (a shared folder or s3://bucket)"
        ) from None
    except NasProxyError:  # a full disk: no half-downloaded copy left behind
        part.unlink(missing_ok=True)
        raise
    if sha256(part) != record["sha256"]:
        part.unlink()
        raise NasProxyError(
            f"artifact {record['artifact_id']} ({path.name}) in {_describe(store)} does not match "
            f"the SHA-256 the study recorded; the store was changed: restore it or use a new "
            f"[study].name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, path)  # atomic: a reader sees the old copy or the study's, never half a file
    return path


__all__ = [
    "SETTLE_SECONDS",
    "condensed_set_path",
    "get_condensed_set",
    "imported_table_path",
    "is_imported_table",
    "open_artifact_store",
    "reference_table_path",
    "score_table_path",
    "sha256",
    "shared_file",
]
