"""Data: a data set as whole tensors on the device, with its validation carve-out.

:func:`load_dataset` takes a :class:`DataConfig` (the ``[data]`` table) or a name and returns a
:class:`Dataset`: train / val / test :class:`Split` tensors, normalised. The validation split is
carved from the official training data; search and condensation never see the test set. The
:class:`Dataset` type lives in ``_dataset`` and :func:`load_dataset` in ``_load``; built-in readers and
downloads in ``_sources``; your own files (``folder:PATH``, ``arrays:PATH.npz``) in ``_own``, which reads
a folder with ``_own_folder`` and checks arrays (also :meth:`Dataset.from_arrays`'s) with ``_own_arrays``;
any other torchvision data set in ``_torchvision``.

Example:
    >>> from nas_proxy.data import DataConfig, load_dataset
    >>> data = load_dataset(DataConfig(dataset="digits", val_fraction=0.2))
    >>> data.num_classes, data.image_size, len(data.val) > 0
    (10, 16, True)
"""

from __future__ import annotations

from nas_proxy.data._config import DataConfig
from nas_proxy.data._dataset import Dataset, Split
from nas_proxy.data._load import default_data_root, load_dataset
from nas_proxy.data._sources import DATASETS

__all__ = [
    "DATASETS",
    "DataConfig",
    "Dataset",
    "Split",
    "default_data_root",
    "load_dataset",
]
