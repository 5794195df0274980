"""Tests for nas_proxy.data._dataset: built-in digits, real MNIST/FashionMNIST, synthetic files."""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from presets import idx_bytes, write_mnist

from nas_proxy import DataError, NasProxyError, load_dataset
from nas_proxy.data import DATASETS, Dataset, Split, default_data_root


def _shared_data() -> Path:
    env = os.environ.get("NAS_PROXY_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


SHARED = _shared_data()


def _need(folder: str) -> Path:
    if not (SHARED / folder / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(
            f"real {folder} files not found under {SHARED} (set NAS_PROXY_TEST_DATA to a folder holding {folder}/raw/)"
        )
    return SHARED


def _rows(x: torch.Tensor) -> list[bytes]:
    return sorted(r.numpy().tobytes() for r in x.reshape(x.shape[0], -1))


# ------------------------------------------------------------------ IDX / CIFAR writers


def _write_cifar(root: Path, hundred: bool = False, per_batch: int = 10) -> Path:
    rng = np.random.default_rng(1)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = b"fine_labels" if hundred else b"labels"
    k = 100 if hundred else 10
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for j, name in enumerate(names):
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        data[0, :] = 0
        data[0, 1024] = 255  # first image: green channel, pixel (0, 0)
        labels = [(i + j) % k for i in range(per_batch)]
        with (folder / name).open("wb") as fh:
            pickle.dump({b"data": data, key: labels, b"batch_label": b"x"}, fh)
    return folder


# ---------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", val_fraction=0.1, seed=0)


def test_digits_loads_without_files(tmp_path: Path, digits: Dataset) -> None:
    ds = load_dataset("Digits", root=tmp_path / "nothing-here")
    assert ds.name == "digits"
    assert not (tmp_path / "nothing-here").exists()
    assert ds.fingerprint == digits.fingerprint


def test_digits_shapes_dtypes_and_normalisation(digits: Dataset) -> None:
    ds = digits
    assert (ds.num_classes, ds.channels, ds.image_size) == (10, 1, 16)
    assert ds.dsa_strategy == "color_crop_cutout_scale_rotate"
    for split in (ds.train, ds.val, ds.test):
        assert isinstance(split, Split)
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 16, 16) and split.x.is_contiguous()
        assert split.x.shape[0] == split.y.shape[0] == len(split)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    assert abs(ds.train.x.mean().item()) < 0.05
    assert abs(ds.train.x.std().item() - 1.0) < 0.05
    assert len(ds.mean) == len(ds.std) == 1
    assert re.fullmatch(r"[0-9a-f]{16}", ds.fingerprint)


def test_digits_val_is_class_balanced(digits: Dataset) -> None:
    train_counts = torch.bincount(digits.train.y, minlength=10)
    val_counts = torch.bincount(digits.val.y, minlength=10)
    for n_train, n_val in zip(train_counts.tolist(), val_counts.tolist()):
        assert n_val == math.floor(0.1 * (n_train + n_val) + 0.5)
    test_counts = torch.bincount(digits.test.y, minlength=10)
    total = train_counts + val_counts + test_counts
    for n_test, n in zip(test_counts.tolist(), total.tolist()):
        assert n_test == math.floor(0.2 * n + 0.5)


def test_split_determinism_and_seed(digits: Dataset) -> None:
    again = load_dataset("digits", val_fraction=0.1, seed=0)
    assert torch.equal(again.val.x, digits.val.x) and torch.equal(again.val.y, digits.val.y)
    assert torch.equal(again.train.x, digits.train.x)
    assert again.fingerprint == digits.fingerprint
    other = load_dataset("digits", val_fraction=0.1, seed=1)
    assert other.val.x.shape == digits.val.x.shape
    assert not torch.equal(other.val.x, digits.val.x)
    assert other.fingerprint != digits.fingerprint
    assert torch.equal(other.test.x, digits.test.x)  # the digits test split ignores seed
    assert load_dataset("digits", val_fraction=0.2).fingerprint != digits.fingerprint


def test_train_and_val_partition_official_train(digits: Dataset) -> None:
    full = load_dataset("digits", val_fraction=0.0)
    assert full.val.x.shape == (0, 1, 16, 16) and full.val.y.shape == (0,)
    assert len(digits.train) + len(digits.val) == len(full.train)
    # Same multiset of images: together they are the official train set, hence disjoint.
    assert _rows(torch.cat([digits.train.x, digits.val.x])) == _rows(full.train.x)


def test_split_and_dataset_helpers(digits: Dataset) -> None:
    sub = digits.train.subset(torch.tensor([0, 2, 4]))
    assert len(sub) == 3 and torch.equal(sub.y, digits.train.y[[0, 2, 4]])
    moved = digits.to("cpu")
    assert moved.train.x.device.type == "cpu" and moved.fingerprint == digits.fingerprint
    idx = digits.class_indices()
    assert len(idx) == 10 and sum(len(i) for i in idx) == len(digits.train)
    for c, i in enumerate(idx):
        assert i.dtype == torch.int64 and bool((digits.train.y[i] == c).all())
    assert digits.class_indices()[3] is idx[3]  # cached


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device() -> None:
    ds = load_dataset("digits", device="cuda")
    assert ds.train.x.is_cuda and ds.val.y.is_cuda and ds.test.x.is_cuda


def test_bad_arguments() -> None:
    for bad in (1.0, -0.1, float("nan"), 1.5):
        with pytest.raises(DataError, match=r"val_fraction must be .*\[0, 1\)"):
            load_dataset("digits", val_fraction=bad)
    with pytest.raises(DataError, match="device"):
        load_dataset("digits", device="not-a-device")
    assert issubclass(DataError, NasProxyError)


def test_default_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NAS_PROXY_DATA", raising=False)
    assert default_data_root() == Path("./data")
    monkeypatch.setenv("NAS_PROXY_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    write_mnist(tmp_path, n_train=100)  # 10 per class: the default val_fraction holds out one of each
    assert len(load_dataset("mnist").test) == 20  # root=None uses $NAS_PROXY_DATA


# ------------------------------------------------------------------ real MNIST / Fashion


@pytest.mark.parametrize(
    ("name", "folder", "first_label", "mean"),
    [("fashion_mnist", "FashionMNIST", 9, 0.2861), ("mnist", "MNIST", 5, 0.1307)],
)
def test_real_idx_datasets(name: str, folder: str, first_label: int, mean: float) -> None:
    root = _need(folder)
    files = sorted((root / folder / "raw").iterdir())
    before = [(p, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    ds = load_dataset(name, root, val_fraction=0.1, seed=0)
    assert ds.name == name and ds.mean == (mean,)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    assert ds.train.x.shape == (54000, 1, 28, 28) and ds.test.x.dtype == torch.float32
    assert abs(ds.train.x.mean().item()) < 0.05 and abs(ds.train.x.std().item() - 1) < 0.05
    if name == "fashion_mnist":  # 6000 images of each class
        assert torch.bincount(ds.val.y).tolist() == [600] * 10
    full = load_dataset(name.upper(), str(root), val_fraction=0.0)
    assert int(full.train.y[0]) == first_label and len(full.train) == 60000
    assert full.fingerprint != ds.fingerprint
    after = [(p, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    assert before == after


def test_fashion_aliases() -> None:
    root = _need("FashionMNIST")
    a = load_dataset("FashionMNIST", root)
    b = load_dataset("fashion-mnist", root)
    assert a.name == b.name == "fashion_mnist" and a.fingerprint == b.fingerprint
    assert a.dsa_strategy == "color_crop_cutout_flip_scale_rotate"


# ------------------------------------------------------------------ missing / corrupt


def test_missing_root_names_expected_path(tmp_path: Path) -> None:
    expected = tmp_path / "none" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    with pytest.raises(DataError, match=re.escape(str(expected))) as info:
        load_dataset("fashion_mnist", tmp_path / "none")
    msg = str(info.value)
    assert "\n" not in msg and "download=True" in msg and "NAS_PROXY_DATA" in msg
    cifar = tmp_path / "none" / "cifar-10-batches-py" / "data_batch_1"
    with pytest.raises(DataError, match=re.escape(str(cifar))):
        load_dataset("CIFAR-10", tmp_path / "none")


def test_synthetic_idx_and_gz(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    ds = load_dataset("mnist", tmp_path, val_fraction=0.25)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)
    assert torch.bincount(ds.val.y, minlength=10).tolist() == [1] * 10


def _corrupt_case(tmp_path: Path, mutate) -> None:
    paths = write_mnist(tmp_path)
    target = mutate(paths)
    before = target.read_bytes()
    with pytest.raises(DataError, match=re.escape(str(target)) + ".*corrupt") as info:
        load_dataset("mnist", tmp_path)
    assert "re-download" in str(info.value) and "\n" not in str(info.value)
    assert target.read_bytes() == before


def test_truncated_idx(tmp_path: Path) -> None:
    def mutate(paths: dict[str, Path]) -> Path:
        p = paths["train-images-idx3-ubyte"]
        p.write_bytes(p.read_bytes()[:-100])
        return p

    _corrupt_case(tmp_path, mutate)


def test_truncated_real_prefix(tmp_path: Path) -> None:
    root = _need("MNIST")
    real = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"

    def mutate(paths: dict[str, Path]) -> Path:
        with real.open("rb") as fh:
            paths["t10k-images-idx3-ubyte"].write_bytes(fh.read(16 + 784 * 5))
        return paths["t10k-images-idx3-ubyte"]

    _corrupt_case(tmp_path, mutate)


def test_bad_magic_idx(tmp_path: Path) -> None:
    def mutate(paths: dict[str, Path]) -> Path:
        p = paths["train-labels-idx1-ubyte"]
        p.write_bytes(b"\x12\x34" + p.read_bytes()[2:])
        return p

    _corrupt_case(tmp_path, mutate)


def test_label_count_mismatch_and_range(tmp_path: Path) -> None:
    def fewer(paths: dict[str, Path]) -> Path:
        p = paths["t10k-labels-idx1-ubyte"]
        p.write_bytes(idx_bytes(np.zeros(7)))
        return p

    _corrupt_case(tmp_path / "a", fewer)

    def out_of_range(paths: dict[str, Path]) -> Path:
        p = paths["train-labels-idx1-ubyte"]
        p.write_bytes(idx_bytes(np.full(40, 12)))
        return p

    _corrupt_case(tmp_path / "b", out_of_range)


def test_bad_gzip(tmp_path: Path) -> None:
    def mutate(paths: dict[str, Path]) -> Path:
        p = paths["train-images-idx3-ubyte"]
        p.unlink()
        gz = p.with_name(p.name + ".gz")
        gz.write_bytes(b"not gzip at all")
        return gz

    _corrupt_case(tmp_path, mutate)


# ------------------------------------------------------------------------- CIFAR


def test_synthetic_cifar10(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    ds = load_dataset("cifar-10", tmp_path, val_fraction=0.0)
    assert ds.name == "cifar10" and (ds.channels, ds.image_size, ds.num_classes) == (3, 32, 10)
    assert ds.train.x.shape == (50, 3, 32, 32) and ds.test.x.shape == (10, 3, 32, 32)
    assert ds.dsa_strategy == "color_crop_cutout_flip_scale_rotate"
    std, mean = torch.tensor(ds.std).view(3, 1, 1), torch.tensor(ds.mean).view(3, 1, 1)
    first = ds.train.x[0] * std + mean
    assert first[1, 0, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert first.sum().item() == pytest.approx(1.0, abs=1e-3)
    ds2 = load_dataset("CIFAR10", tmp_path, val_fraction=0.2)
    assert (len(ds2.train), len(ds2.val)) == (40, 10)


def test_synthetic_cifar100(tmp_path: Path) -> None:
    _write_cifar(tmp_path, hundred=True, per_batch=200)
    ds = load_dataset("CIFAR-100", tmp_path, val_fraction=0.0)
    assert ds.num_classes == 100 and ds.train.x.shape == (200, 3, 32, 32)
    assert ds.mean == (0.5071, 0.4866, 0.4409)


def test_unpicklable_cifar_batch(tmp_path: Path) -> None:
    folder = _write_cifar(tmp_path)
    bad = folder / "data_batch_3"
    bad.write_bytes(b"garbage, not a pickle")
    with pytest.raises(DataError, match=re.escape(str(bad)) + ".*corrupt"):
        load_dataset("cifar10", tmp_path)
    assert bad.read_bytes() == b"garbage, not a pickle"


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2's cPickle wrote its str (BINSTRING), as in the official CIFAR batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _official_like(batch: dict) -> bytes:
    """``batch`` pickled as the official Python 2 files are: protocol 2, str keys, numpy.core's _reconstruct."""
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(batch)
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.mark.parametrize("hundred", [False, True])
def test_official_style_cifar_batches_read(tmp_path: Path, hundred: bool) -> None:
    folder = _write_cifar(tmp_path, hundred=hundred, per_batch=100)
    rng = np.random.default_rng(2)
    for batch in folder.iterdir():
        data = rng.integers(0, 256, (100, 3072)).astype(np.uint8)
        labels = {b"fine_labels": [i % 100 for i in range(100)], b"coarse_labels": [i % 20 for i in range(100)]}
        content = {
            b"batch_label": b"training batch 1 of 1",
            **(labels if hundred else {b"labels": [i % 10 for i in range(100)]}),
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(100)],
        }
        blob = _official_like(content)
        assert b"cnumpy.core.multiarray\n_reconstruct" in blob and b"_codecs" not in blob
        batch.write_bytes(blob)
    ds = load_dataset("cifar100" if hundred else "cifar10", tmp_path, val_fraction=0.0)
    assert ds.train.x.shape[1:] == (3, 32, 32) and len(ds.test) == 100


class _Payload:
    """Unpickling it calls ``call(*args)``: what a crafted data file would do."""

    def __init__(self, call: object, *args: object) -> None:
        self.call, self.args = call, args

    def __reduce__(self) -> tuple:
        return self.call, self.args


@pytest.mark.parametrize("via", ["os.system", "builtins.exec", "builtins.open"])
def test_a_crafted_cifar_batch_runs_nothing_and_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, via: str
) -> None:
    from nas_proxy.cli import main

    folder = _write_cifar(tmp_path / "root")
    marker = tmp_path / "marker"
    payload = {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w')"),
        "builtins.open": _Payload(open, str(marker), "w"),
    }[via]
    batch = folder / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2))
    before = batch.read_bytes()
    with pytest.raises(DataError) as refused:
        load_dataset("cifar10", tmp_path / "root")
    assert not marker.exists(), "reading the data root ran the pickle's code"
    name = via.split(".")[1]  # as pickled: posix.system, __builtin__.exec
    assert re.match(
        rf"{re.escape(str(batch))} is corrupt \(holds Python objects \('\w+\.{name}'\), not", str(refused.value)
    )
    capsys.readouterr()
    assert main(["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "root"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {batch} is corrupt (holds Python objects") and err.count("\n") == 1, err
    assert not marker.exists() and batch.read_bytes() == before


# ------------------------------------------------------------------ names / torchvision


def _block_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError


def test_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_torchvision(monkeypatch)
    # No torchvision extra (a bare `pip install torchvision` replaces a CPU torch): the hint pins the build
    pin = re.escape(f"pip install 'torchvision==0.{int(torch.__version__.split('.')[1]) + 15}.*'")
    with pytest.raises(DataError, match=rf"unknown dataset 'imagenot'.*digits, mnist.*folder:PATH.*{pin}") as info:
        load_dataset("imagenot")
    assert "\n" not in str(info.value)
    assert DATASETS == ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")


def test_broken_torchvision_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "torchvision"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DataError, match="unknown dataset 'SVHN' \\(torchvision fails to import .*nms"):
        load_dataset("SVHN", tmp_path)
    with pytest.raises(DataError, match="download=True needs torchvision .*pip install 'torchvision=="):
        load_dataset("mnist", tmp_path / "empty", download=True)


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []

    class KMNIST:  # images as H x W uint8 arrays, labels 0..9
        classes = [str(i) for i in range(10)]

        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append(("KMNIST", train))
            n = 30 if train else 10
            rng = np.random.default_rng(int(train))
            self.items = [(rng.integers(0, 256, (12, 12), dtype=np.uint8), i % 10) for i in range(n)]

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, i: int):
            return self.items[i]

    class MNIST:  # "downloads" synthetic IDX files into root
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append(("MNIST", train))
            if download and not (Path(root) / "MNIST" / "raw").exists():
                write_mnist(Path(root))

    datasets = types.ModuleType("torchvision.datasets")
    datasets.KMNIST, datasets.MNIST = KMNIST, MNIST
    datasets.__all__ = ["KMNIST", "MNIST"]
    tv = types.ModuleType("torchvision")
    tv.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    return calls


def test_torchvision_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_torchvision(monkeypatch)
    ds = load_dataset("kmnist", tmp_path, val_fraction=0.0)
    assert ds.name == "KMNIST" and (ds.channels, ds.image_size, ds.num_classes) == (1, 12, 10)
    assert ds.train.x.shape == (30, 1, 12, 12) and len(ds.test) == 10
    # not known to be mirror-safe (KMNIST's characters, SVHN's digits): no flips, as for your own data
    assert abs(ds.train.x.mean().item()) < 1e-4 and "flip" not in ds.dsa_strategy
    with pytest.raises(DataError, match="unknown dataset 'Places'"):
        load_dataset("Places", tmp_path)


def test_download_uses_torchvision_then_own_reader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _fake_torchvision(monkeypatch)
    ds = load_dataset("mnist", tmp_path / "dl", download=True, val_fraction=0.0)
    assert ("MNIST", True) in calls and len(ds.train) == 40 and len(ds.test) == 20
