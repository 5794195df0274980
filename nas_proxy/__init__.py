"""nas-proxy: rank ConvNet architectures cheaply by training them on a condensed data set.

The subpackages follow the data flow: :mod:`~nas_proxy.data` -> :mod:`~nas_proxy.space` ->
:mod:`~nas_proxy.method` (model, augmentation, condensation, candidate training) ->
:mod:`~nas_proxy.reference` (the full-data reference and agreement with it) -> :mod:`~nas_proxy.scoring`
(proxies, calibration) -> :mod:`~nas_proxy.study` (the Optuna study, search, workers) ->
:mod:`~nas_proxy.results` (report, comparison, frontier). :mod:`~nas_proxy.config` holds the
:class:`Preset`, one config per stage; :mod:`nas_proxy.cli` is a thin layer over these calls. This
module exports the entry points a user calls; each subpackage exports the rest of its stage.

Example:
    >>> from nas_proxy import ArchSpec, condense, load_dataset, train_candidate
    >>> from nas_proxy.method import CondenseConfig, TrainConfig
    >>> data = load_dataset("digits")
    >>> syn = condense(data, CondenseConfig(ipc=2, iterations=2, batch_real=32,
    ...                                     embed_arch="d2-w32-relu-instancenorm-avgpool"), progress=False)
    >>> score = train_candidate(ArchSpec.parse("d2-w32-relu-none-avgpool"), syn.split(), data, TrainConfig(epochs=2))
    >>> score.train_size, 0.0 <= score.val_acc <= 1.0
    (20, True)
"""

from nas_proxy._version import __version__
from nas_proxy.config import Preset, load_preset
from nas_proxy.data import load_dataset
from nas_proxy.errors import ArgumentError, ConfigError, DataError, NasProxyError
from nas_proxy.method import condense, train_candidate
from nas_proxy.reference import import_reference, rank_agreement, run_reference, seed_ceiling
from nas_proxy.results import compare_proxies, make_report, run_frontier
from nas_proxy.scoring import make_proxy
from nas_proxy.space import ArchSpec, load_search_space
from nas_proxy.study import load_study, open_study, run_search, run_workers

__all__ = [
    "ArgumentError",
    "ArchSpec",
    "ConfigError",
    "DataError",
    "NasProxyError",
    "Preset",
    "__version__",
    "compare_proxies",
    "condense",
    "import_reference",
    "load_dataset",
    "load_preset",
    "load_search_space",
    "load_study",
    "make_proxy",
    "make_report",
    "open_study",
    "rank_agreement",
    "run_frontier",
    "run_reference",
    "run_search",
    "run_workers",
    "seed_ceiling",
    "train_candidate",
]
