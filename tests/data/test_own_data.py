"""Your own data: folder:PATH (PNG/JPEG class folders, read with Pillow), arrays:PATH.npz and Dataset.from_arrays;
bad data as one line naming the file; one search on a generated folder through the command line."""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_proxy import DataError, load_dataset
from nas_proxy.cli import main
from nas_proxy.data import DataConfig, Dataset

Image = pytest.importorskip("PIL.Image")  # the images extra

CLASSES = ("cat", "dog", "fish")


def write_folder(root: Path, per_class: int = 10, size: int = 8, mode: str = "L", seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: noise, each class a brighter band of its own, so classes differ."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 128, (size, size, 3), dtype=np.uint8)
            pixels[c * size // 3 : (c + 1) * size // 3] += 120
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}.png")
    return root


def one_line_error(dataset: str, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(dataset, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ----------------------------------------------------------------------------- loading


def test_folder_loads_with_classes_split_and_normalisation(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "pets")
    data = load_dataset(f"folder:{folder}")
    assert data.name == "folder:pets" and data.classes == CLASSES and data.num_classes == 3
    assert (data.channels, data.image_size) == (1, 8)  # grey PNGs: one channel
    # the test split is 20% of each class (2 of 10), the validation carve-out 10% of the rest as for the built-ins
    assert (len(data.train), len(data.val), len(data.test)) == (21, 3, 6)
    assert torch.bincount(data.val.y).tolist() == [1, 1, 1] and torch.bincount(data.test.y).tolist() == [2, 2, 2]
    # normalised with the training data's own statistics (the test split left out)
    train = torch.cat([data.train.x, data.val.x])
    assert abs(train.mean().item()) < 1e-4 and abs(train.std(unbiased=False).item() - 1) < 1e-3
    assert 0 < data.mean[0] < 1 and data.dsa_strategy == "color_crop_cutout_scale_rotate"  # no flips
    assert load_dataset(DataConfig(dataset=f"folder:{folder}")).fingerprint == data.fingerprint


def test_folder_infers_rgb_resizes_and_reads_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_folder(tmp_path / "images" / "mine", size=12)
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(folder / "dog" / "big.jpg")  # one RGB JPEG
    monkeypatch.chdir(tmp_path)  # a relative PATH is read from the current folder
    data = load_dataset("folder:images/mine", image_size=6)
    assert (data.channels, data.image_size) == (3, 6) and data.train.x.shape[1:] == (3, 6, 6)
    assert len(data.train) + len(data.val) + len(data.test) == 31


def test_folder_with_its_own_test_split(tmp_path: Path) -> None:
    write_folder(tmp_path / "ds" / "train")
    write_folder(tmp_path / "ds" / "test", per_class=3, seed=1)
    data = load_dataset(f"folder:{tmp_path / 'ds'}", val_fraction=0.2)
    assert len(data.test) == 9 and (len(data.train), len(data.val)) == (24, 6)


def test_image_size_resizes_a_built_in_set_too() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from the read-only arrays it resizes
        small = load_dataset("digits", image_size=8)
    assert small.image_size == 8 and small.train.x.shape[1:] == (1, 8, 8)
    assert small.fingerprint != load_dataset("digits").fingerprint


def test_fingerprint_follows_the_pixels(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "pets")
    before = load_dataset(f"folder:{folder}").fingerprint
    assert load_dataset(f"folder:{folder}").fingerprint == before
    image = folder / "dog" / "3.png"
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] ^= 1  # one pixel, one bit
    Image.fromarray(pixels).save(image)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000))  # a later edit
    changed = load_dataset(f"folder:{folder}").fingerprint
    assert changed != before
    assert load_dataset(f"folder:{folder}", image_size=4).fingerprint not in (before, changed)


def test_arrays_npz_and_from_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 10, 10, 3), dtype=np.uint8)  # (N, H, W, C)
    y = np.repeat([3, 7], 20)  # any integers: renumbered 0, 1 and named by their values
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    data = load_dataset(f"arrays:{tmp_path / 'mine.npz'}")
    assert data.name == "arrays:mine" and data.classes == ("3", "7") and set(data.train.y.tolist()) == {0, 1}
    assert (data.channels, data.image_size, len(data.test)) == (3, 10, 8)
    assert all(abs(data.train.x[:, c].mean().item()) < 0.1 for c in range(3))  # per channel, val included in stats
    same = Dataset.from_arrays(torch.from_numpy(x), y, name="arrays:mine")
    assert same.fingerprint == data.fingerprint  # the same pixels, however they were loaded
    named = Dataset.from_arrays(x.transpose(0, 3, 1, 2), (y == 7).astype(float), classes=["cat", "dog"])
    assert named.classes == ("cat", "dog") and named.name == "arrays" and named.fingerprint == data.fingerprint
    assert Dataset.from_arrays(x, y[::-1]).fingerprint != data.fingerprint  # other labels, other data


# ----------------------------------------------------------------------------- bad data


def test_bad_folders_are_one_line_naming_the_file(tmp_path: Path) -> None:
    mixed = write_folder(tmp_path / "mixed")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(mixed / "cat" / "odd.png")
    message = one_line_error(f"folder:{mixed}")
    assert re.search(r"mixed holds images of 2 sizes \(cat/0.png 8x8, cat/odd.png 10x10\).*--image-size", message)
    assert load_dataset(f"folder:{mixed}", image_size=8).image_size == 8  # the fix the message names

    broken = write_folder(tmp_path / "broken")
    (broken / "fish" / "4.png").write_bytes(b"not a png")
    assert f"{broken / 'fish' / '4.png'} is not a readable image" in one_line_error(f"folder:{broken}")

    empty = write_folder(tmp_path / "empty")
    (empty / "bird").mkdir()
    (empty / "bird" / "notes.txt").write_text("to do")
    assert f"{empty / 'bird'} holds no PNG or JPEG images (1 other files)" in one_line_error(f"folder:{empty}")

    single = write_folder(tmp_path / "single")
    for name in CLASSES[1:]:
        shutil.rmtree(single / name)
    assert re.search(r"single: every image is of one class \('cat'\).*at least 2", one_line_error(f"folder:{single}"))

    loose = write_folder(tmp_path / "loose")
    (loose / "dog" / "0.png").rename(loose / "0.png")
    assert f"{loose / '0.png'} is not in a class folder" in one_line_error(f"folder:{loose}")

    assert "no folder at" in one_line_error(f"folder:{tmp_path / 'nowhere'}")


def test_bad_arrays_are_one_line_naming_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 8, 8)).astype(np.float32)
    path = tmp_path / "labels.npz"
    np.savez(path, x=x, y=np.arange(29) % 3)
    assert f"{path}: y has shape (29,) but x holds 30 images" in one_line_error(f"arrays:{path}")
    x[4, 2, 2] = np.nan
    np.savez(path := tmp_path / "nan.npz", x=x, y=np.arange(30) % 3)
    assert f"{path}: x holds NaN or infinite values (in 1 of its images, the first at index 4)" in one_line_error(
        f"arrays:{path}"
    )
    np.savez(path := tmp_path / "one.npz", x=x[5:], y=np.zeros(25, dtype=int))
    assert "every image is of one class ('0')" in one_line_error(f"arrays:{path}")
    np.save(path := tmp_path / "x.npy", x)
    assert f"{path} is a single array (.npy)" in one_line_error(f"arrays:{path}")
    with pytest.raises(DataError, match=r"Dataset.from_arrays\(\): y has shape \(2,\) but x holds 30 images"):
        Dataset.from_arrays(np.zeros((30, 8, 8)), [0, 1])


def test_torchvision_folder_classes_point_to_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # refused whether or not it is installed
    message = one_line_error("ImageFolder")
    assert "pass folder:PATH instead" in message and "needs no torchvision" in message and "download" not in message


# ----------------------------------------------------------------------------- command line


def test_search_and_report_on_a_folder_of_your_own(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write_folder(tmp_path / "photos" / "pets", per_class=12, size=10)
    preset = tmp_path / "pets.toml"
    preset.write_text(
        """
[data]
dataset = "folder:photos/pets"  # from the current folder
image_size = 8

[study]
name = "pets"
search_space = "small"
sampler = "random"

[condense]
ipc = 2
iterations = 2
batch_real = 8
embed_arch = "d1-w8-relu-instancenorm-avgpool"

[training]
epochs = 1

[reference]
steps = 2
sample = 2
"""
    )
    assert main(["search", str(preset), "--n-trials", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "study pets: 2 finished trials, 2 architectures scored" in out
    tables = list((tmp_path / "runs" / "pets" / "reference").glob("*.csv"))
    assert [t.name.startswith("folder:pets-") for t in tables] == [True]  # one file, not folders of the path
    assert main(["report", str(preset), "--bootstrap", "0", "--no-plot"]) == 0
    assert "ranking.csv" in capsys.readouterr().out

    (tmp_path / "photos" / "pets" / "dog" / "5.png").write_bytes(b"broken")
    (other := tmp_path / "other.toml").write_text(preset.read_text().replace('name = "pets"', 'name = "other"'))
    assert main(["search", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dog/5.png is not a readable image" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "other").exists()  # refused before the study is opened


def test_a_folder_is_decoded_once_whether_or_not_a_bar_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads a folder to check it, then its worker reads it again: the pixels come from the first read,
    with or without a progress bar, and an edited file is read again."""
    from nas_proxy.data import _own_folder

    folder = write_folder(tmp_path / "pets")
    decoded, pixels = [], _own_folder._pixels
    monkeypatch.setattr(_own_folder, "_pixels", lambda *args: decoded.append(args) or pixels(*args))
    first = load_dataset(f"folder:{folder}", progress=True)
    assert len(decoded) == 30
    assert load_dataset(f"folder:{folder}", progress=False).fingerprint == first.fingerprint and len(decoded) == 30
    image = folder / "cat" / "0.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000))
    load_dataset(f"folder:{folder}", progress=False)
    assert len(decoded) == 60
