"""The reference a ranking is measured against: full-data runs, and agreement with them.

:func:`run_reference` trains architectures on the full data (``[reference]``), one CSV row per
(arch, seed); :func:`import_reference` adopts a table trained elsewhere; :func:`seed_ceiling` is
the agreement of the reference with itself across seeds. :func:`rank_agreement` compares any
ranking with it (Spearman, Kendall with intervals, top-k, precision@k, regret).

Example:
    >>> import pandas as pd
    >>> from nas_proxy.reference import rank_agreement
    >>> reference = pd.Series({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.5})
    >>> round(rank_agreement(reference * 2, reference, n_boot=0).spearman, 6)
    1.0
"""

from __future__ import annotations

from nas_proxy.reference._agreement import N_BOOT, TOP_K, Agreement, rank_agreement
from nas_proxy.reference._reference import (
    fit_reference,
    import_reference,
    read_reference,
    reference_accuracy,
    run_reference,
    seed_ceiling,
)

__all__ = [
    "Agreement",
    "N_BOOT",
    "TOP_K",
    "fit_reference",
    "import_reference",
    "rank_agreement",
    "read_reference",
    "reference_accuracy",
    "run_reference",
    "seed_ceiling",
]
