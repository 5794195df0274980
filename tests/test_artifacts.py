"""One condensed set per study for workers that share no folder (issue 14, item 3)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from presets import write_preset

import nas_proxy.artifacts
from nas_proxy import NasProxyError, load_preset, load_study, open_study
from nas_proxy.artifacts import condensed_set_path, get_condensed_set, open_artifact_store, sha256, shared_file


@pytest.fixture(autouse=True)
def _no_settle(monkeypatch):
    monkeypatch.setattr(nas_proxy.artifacts, "SETTLE_SECONDS", 0.0)


def _worker(tmp_path: Path, folder: str, storage: str, artifacts: str):
    """One worker's view of a study: its own output folder, the shared storage and artifact store."""
    (tmp_path / folder).mkdir()
    preset = load_preset(write_preset(tmp_path / folder, name="shared"))
    study = dataclasses.replace(
        preset.study, storage=storage, out_dir=str(tmp_path / folder / "out"), artifacts=artifacts
    )
    return dataclasses.replace(preset, study=study)


def _study_set(worker, data):
    """The study's one copy of ``worker``'s condensed set, as a worker gets it (its store, its study)."""
    study = open_study(worker)
    return get_condensed_set(
        worker.condense, data, worker.study.output, artifacts=worker.study.artifacts, progress=False, study=study
    )


def _set_path(worker, data):
    return condensed_set_path(worker.condense, data, worker.study.output)


@pytest.fixture
def unrepeatable_condense(monkeypatch):
    """Condensation that differs run to run, as on CUDA: every call shifts the images by its call number."""
    real, calls = nas_proxy.artifacts.condense, []

    def condense(*args, **kwargs):
        syn = real(*args, **kwargs)
        calls.append(1)
        return dataclasses.replace(syn, images=syn.images + len(calls))

    monkeypatch.setattr(nas_proxy.artifacts, "condense", condense)
    return calls


def test_a_second_worker_downloads_the_first_workers_set_instead_of_condensing(tmp_path, digits, unrepeatable_condense):
    storage, store = str(tmp_path / "study.journal"), str(tmp_path / "store")
    first, second = _worker(tmp_path, "a", storage, store), _worker(tmp_path, "b", storage, store)
    made = _study_set(first, digits)
    got = _study_set(second, digits)
    assert len(unrepeatable_condense) == 1  # the second worker did not condense
    assert torch.equal(made.images, got.images)
    study = open_study(first)
    record = study.user_attrs[f"artifact:{_set_path(first, digits).name}"]
    assert record["sha256"] == sha256(_set_path(second, digits)) == sha256(_set_path(first, digits))


def test_workers_that_condensed_at_once_end_on_one_set(tmp_path):
    """Both build a different file at the same instant and race to publish: both use the one the study records."""
    study = optuna.create_study(
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
        )
    )
    store = open_artifact_store(str(tmp_path / "store"), tmp_path)
    barrier, paths = threading.Barrier(2), [tmp_path / w / "set.pt" for w in ("a", "b")]

    def run(path: Path) -> None:
        def make() -> None:
            path.parent.mkdir()
            path.write_bytes(os.urandom(64))  # two different sets
            barrier.wait()  # neither has published yet

        shared_file(study, store, path, make, settle=0.5)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sha256(paths[0]) == sha256(paths[1]) == study.user_attrs["artifact:set.pt"]["sha256"]


def test_a_store_the_worker_cannot_reach_is_one_clear_line(tmp_path, digits):
    storage = str(tmp_path / "study.journal")
    first, second = _worker(tmp_path, "a", storage, ""), _worker(tmp_path, "b", storage, "")  # each its own folder
    _study_set(first, digits)
    with pytest.raises(
        NasProxyError,
        match=r"which folder .*b/out/artifacts does not hold; set \[study\].artifacts "
        r"to a store every worker reaches",
    ):
        _study_set(second, digits)


def test_workers_creating_the_database_tables_at_once_connect_again(tmp_path, monkeypatch):
    """On a fresh PostgreSQL database, concurrent CREATE TABLEs fail all but one (seen in CI): the loser connects
    again and gets a working storage (a real database here; the race itself: test_database.py)."""
    from sqlalchemy.exc import IntegrityError

    import nas_proxy.study._storage

    real, attempts = nas_proxy.study._storage.ResilientRDBStorage, []

    def storage(url, **kwargs):
        attempts.append(url)
        if len(attempts) == 1:
            raise IntegrityError(
                "CREATE TABLE studies",
                {},
                Exception('duplicate key value violates unique constraint "pg_type_typname_nsp_index"'),
            )
        return real(url, **kwargs)

    monkeypatch.setattr(nas_proxy.study._storage, "ResilientRDBStorage", storage)
    monkeypatch.setattr(nas_proxy.study._storage.time, "sleep", lambda seconds: None)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="x",
        storage=nas_proxy.study._storage.open_storage(nas_proxy.config.StudyConfig(name="x", storage=url)),
    )
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert len(attempts) == 2 and len(optuna.load_study(study_name="x", storage=url).trials) == 2


def test_a_changed_artifact_is_refused(tmp_path, digits):
    storage, store = str(tmp_path / "study.journal"), tmp_path / "store"
    first, second = _worker(tmp_path, "a", storage, str(store)), _worker(tmp_path, "b", storage, str(store))
    _study_set(first, digits)
    for artifact in store.iterdir():
        artifact.write_bytes(b"not the set")
    with pytest.raises(NasProxyError, match="does not match the SHA-256 the study recorded"):
        _study_set(second, digits)
    assert not _set_path(second, digits).exists()  # nothing half-written left behind


@pytest.mark.parametrize(
    "spec, message",
    [
        ("s3://", "name a bucket alone"),
        ("s3://bucket/prefix", "name a bucket"),
        ("/proc/no/such/folder", "cannot create the folder"),
    ],
)
def test_bad_artifact_stores_are_named(tmp_path, spec, message):
    with pytest.raises(NasProxyError, match=r"\[study\].artifacts"):
        try:
            open_artifact_store(spec, tmp_path)
        except NasProxyError as exc:
            assert message in str(exc)
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_on_postgresql_sharing_no_folder_score_against_one_set(tmp_path):
    """Two `nas-proxy search` processes, each in its own folder, one PostgreSQL study, one S3-compatible store."""
    url = os.environ.get("NAS_PROXY_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL test: .ci/run exports NAS_PROXY_TEST_POSTGRES")
        pytest.skip("set NAS_PROXY_TEST_POSTGRES (bash .ci/postgres.sh prints one) to run against PostgreSQL")
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        bucket = f"nas-proxy-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        name = f"pg_artifact_{uuid.uuid4().hex[:8]}"
        presets = []
        for folder in ("machine_a", "machine_b"):
            (tmp_path / folder).mkdir()
            presets.append(
                write_preset(tmp_path / folder, name=name, extra=f'storage = "{url}"\nartifacts = "s3://{bucket}"')
            )
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "nas_proxy.cli", "search", str(p), "--n-trials", "6", "--no-progress"],
                cwd=p.parent,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for p in presets
        ]
        outputs = [w.communicate(timeout=600) for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
        sets = [next((p.parent / "out" / "condensed").glob("*.pt")) for p in presets]
        study = load_study(dataclasses.replace(load_preset(presets[0])))
        record = study.user_attrs[f"artifact:{sets[0].name}"]
        assert sha256(sets[0]) == sha256(sets[1]) == record["sha256"] and record["store"] == "Boto3ArtifactStore"
        assert not list((tmp_path / "machine_a").glob("**/artifacts"))  # nothing went to a local store
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(done) >= 6 and study.user_attrs["proxy"]["trains_on"]["condensed"] == sets[0].name
    finally:
        server.stop()
