"""Files several tests write: a tiny study preset, and synthetic MNIST files in torchvision's layout."""

import gzip
from pathlib import Path

import numpy as np

from nas_proxy.artifacts import reference_table_path
from nas_proxy.reference import run_reference
from nas_proxy.study import select_archs


def write_preset(tmp_path, name="tiny", space="small", extra="", reference="", data=""):
    """A digits study that runs in seconds: 2-image-per-class set, 2 training and 2 reference epochs.

    ``extra`` goes into [study], ``data`` into [data], ``reference`` into [reference]."""
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[data]
dataset = "digits"
{data}
[study]
name = "{name}"
search_space = "{space}"
sampler = "random"
n_trials = 6
out_dir = "{tmp_path / "out"}"
{extra}
[condense]
ipc = 2
iterations = 3
batch_real = 16
embed_arch = "d1-w8-relu-instancenorm-avgpool"

[training]
epochs = 2

[reference]
epochs = 2
{reference}
""")
    return path


def reference_path(preset):
    """The reference table the preset reads (an imported one if there is one)."""
    return reference_table_path(preset.study.output, preset.data, preset.reference)


def train_reference(preset, data, archs: str = "10"):
    """Train the preset's reference on ``archs`` (the ``--archs`` language) into the table the preset reads."""
    picked = select_archs(archs, preset.space(), preset.reference)
    return run_reference(preset.reference, data, picked, reference_path(preset), progress=False)


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 20, gz: tuple[str, ...] = ()
) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    paths = {}
    for name, arr in arrays.items():
        data = idx_bytes(arr)
        if name in gz:
            path = raw / (name + ".gz")
            path.write_bytes(gzip.compress(data))
        else:
            path = raw / name
            path.write_bytes(data)
        paths[name] = path
    return paths
