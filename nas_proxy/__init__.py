"""nas-proxy: rank ConvNet architectures cheaply by training them on a condensed data set.

The package reads top to bottom as the data flows: configs -> data -> search space -> model ->
augmentation -> condensation -> proxy training -> proxies -> reference -> study and search ->
ranking, report, comparison and the cost-fidelity frontier; :mod:`nas_proxy.cli` is a thin layer over these calls.

Example:
    >>> from nas_proxy import ArchSpec, CondenseConfig, ProxyConfig, condense, load_dataset, train_proxy
    >>> data = load_dataset("digits")
    >>> syn = condense(data, CondenseConfig(ipc=2, iterations=2, batch_real=32,
    ...                                     embed_arch="d2-w32-relu-instancenorm-avgpool"), progress=False)
    >>> score = train_proxy(ArchSpec.parse("d2-w32-relu-none-avgpool"), syn.split(), data, ProxyConfig(epochs=2))
    >>> score.train_size, 0.0 <= score.val_acc <= 1.0
    (20, True)
"""

from nas_proxy._version import __version__
from nas_proxy.errors import DataError, NasProxyError
from nas_proxy.config import (PROXIES, CondenseConfig, DataConfig, Preset, ProxyConfig, ReferenceConfig, ScoreConfig,
                              StudyConfig, load_preset)
from nas_proxy.data import DATASETS, Dataset, Split, default_data_root, load_dataset
from nas_proxy.space import DEFAULT_ARCH, ArchSpec, SearchSpace, load_search_space
from nas_proxy.model import ConvNet, build_convnet, count_flops, count_params, init_parameters
from nas_proxy.augment import DSA, DSAParams
from nas_proxy.condensation import CondensedSet, condense, matching_loss
from nas_proxy.training import ProxyResult, accuracy, train_proxies, train_proxy, training_set
from nas_proxy.artifacts import condensed_set_path, imported_table_path, reference_table_path, score_table_path
from nas_proxy.proxies import Proxy, make_proxy
from nas_proxy.calibration import Calibration
from nas_proxy.reference import import_reference, read_reference, run_reference, seed_ceiling
from nas_proxy.study import enqueue_archs, load_study, open_study, proxy_scores, select_archs
from nas_proxy.search import run_search
from nas_proxy.workers import run_workers
from nas_proxy.ranking import rank_agreement
from nas_proxy.report import Report, make_report
from nas_proxy.compare import Comparison, compare_proxies
from nas_proxy.frontier import Frontier, run_frontier

__all__ = [
    "DATASETS", "DEFAULT_ARCH", "DSA", "PROXIES", "ArchSpec", "Calibration", "Comparison", "CondenseConfig",
    "Frontier",
    "CondensedSet", "ConvNet", "DSAParams", "DataConfig", "DataError", "Dataset", "NasProxyError", "Preset", "Proxy",
    "ProxyConfig", "ProxyResult", "ReferenceConfig", "Report", "ScoreConfig", "SearchSpace", "Split", "StudyConfig",
    "accuracy", "build_convnet", "compare_proxies", "condense", "condensed_set_path", "count_flops", "count_params",
    "default_data_root", "enqueue_archs", "import_reference", "imported_table_path", "init_parameters", "load_dataset",
    "load_preset", "load_search_space", "load_study", "make_proxy", "make_report", "matching_loss", "open_study",
    "proxy_scores", "rank_agreement", "run_frontier", "read_reference", "reference_table_path", "run_reference", "run_search",
    "run_workers", "score_table_path", "seed_ceiling", "select_archs", "train_proxies", "train_proxy", "training_set",
    "__version__",
]
