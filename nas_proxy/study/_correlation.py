"""The search's running correlation with the reference: an Optuna callback run on every finished trial.

:class:`ReferenceCorrelation` is what :func:`~nas_proxy.study.run_search` passes its trial loop: whenever a trial
scores an architecture that has a reference accuracy, the Spearman and Kendall correlation between the proxy's
scores and the reference over all such architectures is stored on the study and, if asked, printed, so a search
shows how far its proxy can be trusted while it runs.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from tqdm.auto import tqdm

from nas_proxy.reference import rank_agreement, read_reference, reference_accuracy
from nas_proxy.reference._agreement import MIN_PAIRS
from nas_proxy.study._study import proxy_scores


class ReferenceCorrelation:
    """Optuna callback: after a trial that scores a reference architecture, update the correlation.

    Spearman and Kendall between proxy score and reference accuracy, over every architecture the
    study has scored that is in the reference table, go to the study's user attributes
    (``reference_spearman``, ``reference_kendall``, ``reference_n``) once there are
    :data:`~nas_proxy.reference._agreement.MIN_PAIRS` of them, and, if ``verbose``, to the terminal.
    """

    def __init__(self, table: Path, metric: str, verbose: bool = True) -> None:
        self.path = table  # the reference table, read anew after each trial: a reference run may add rows
        self.metric = metric
        self.verbose = verbose

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        if trial.state != optuna.trial.TrialState.COMPLETE or "reference_acc" not in attrs or attrs.get("cached"):
            return  # a repeated architecture changes nothing
        reference = reference_accuracy(read_reference(self.path), self.metric)
        scores = proxy_scores(study).set_index("arch")["score"]
        agreement = rank_agreement(scores, reference, top_k=(), n_boot=0)
        if agreement.n >= MIN_PAIRS:
            study.set_user_attr("reference_n", agreement.n)
            study.set_user_attr("reference_spearman", agreement.spearman)
            study.set_user_attr("reference_kendall", agreement.kendall)
        if self.verbose:
            tqdm.write(f"trial {trial.number}: {agreement.correlation_line()}")


__all__ = ["ReferenceCorrelation"]
