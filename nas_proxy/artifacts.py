"""One copy of a study's shared files for every worker, through Optuna's artifact store.

A study's workers may run on machines that share no folder, and some files they need cannot be
rebuilt identically on each: a condensed set made on CUDA differs from run to run (the backward
of ``grid_sample`` accumulates with atomics). So the first worker to build such a file uploads
it to the artifact store named by ``[study].artifacts`` and records its id on the study (user
attribute ``artifact:<file name>``); every other worker downloads that one, checks its SHA-256
and keeps it in its own output folder, in place of a copy it built itself.

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

from nas_proxy._records import record_once
from nas_proxy.errors import NasProxyError

SETTLE_SECONDS = 2.0  # longer than a storage write takes: two records racing have both landed by then


def open_artifact_store(spec: str, output: Path) -> Any:
    """The artifact store ``[study].artifacts`` names: a folder, ``s3://bucket``, or ``""`` for ``<output>/artifacts``."""
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
        raise NasProxyError(f"[study].artifacts: cannot create the folder {folder} ({exc.strerror}); name a "
                            f"writable folder or s3://bucket") from None
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


def shared_file(study: optuna.Study, store: Any, path: Path, make: Callable[[], Any], *,
                settle: float | None = None) -> Path:
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
        artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
        record_once(study, key, {"artifact_id": artifact_id, "sha256": digest, "store": _describe(store)})
        time.sleep(SETTLE_SECONDS if settle is None else settle)
        record = study.user_attrs[key]
    if digest == record["sha256"]:
        return path
    part = path.with_name(f"{path.name}.{os.getpid()}.download")
    try:
        download_artifact(artifact_store=store, artifact_id=record["artifact_id"], file_path=str(part))
    except ArtifactNotFound:
        raise NasProxyError(f"study {study.study_name!r} uses {path.name}, artifact {record['artifact_id']} in "
                            f"{record['store']}, which {_describe(store)} does not hold; set [study].artifacts to a "
                            f"store every worker reaches (a shared folder or s3://bucket)") from None
    if sha256(part) != record["sha256"]:
        part.unlink()
        raise NasProxyError(f"artifact {record['artifact_id']} ({path.name}) in {_describe(store)} does not match "
                            f"the SHA-256 the study recorded; the store was changed: restore it or use a new "
                            f"[study].name")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, path)  # atomic: a reader sees the old copy or the study's, never half a file
    return path


__all__ = ["SETTLE_SECONDS", "open_artifact_store", "sha256", "shared_file"]
