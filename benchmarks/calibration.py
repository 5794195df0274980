"""Which scores make the calibrated ranking faithful, measured leave-one-out on a converged reference.

Imports the reference table (if given), scores its architectures with every candidate feature
proxy (cached in the preset's output folder), then fits a calibration for each feature set and
ranks every reference architecture by a fit that left it out. Prints, for each ranking: Spearman
and Kendall with 95% intervals, top-10/20 Spearman, P@10, regret, and the paired bootstrap
interval of its Spearman minus the factors-only baseline's. The cost line counts arithmetic
(multiply-adds x 2) for the reference runs the fit uses against training every architecture of
the space once on the full data with the same protocol.

    python benchmarks/calibration.py studies/fashion_mnist_dm.toml --data-root ../shared/data \
        --reference ../shared/reference/fashion_mnist_converged.csv --features grad_norm,naswot,synflow,random
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from _common import publish
from nas_proxy import ArchSpec, Calibration, import_reference, load_preset, load_dataset
from nas_proxy.model import network_size
from nas_proxy.artifacts import imported_table_path, reference_table_path
from nas_proxy.config import ACCURACY_PROXIES
from nas_proxy.proxies import make_proxy, score_archs
from nas_proxy.ranking import rank_agreement
from nas_proxy.reference import read_reference, reference_accuracy
from nas_proxy.render import markdown_table


def paired_gain(a: pd.Series, b: pd.Series, truth: pd.Series, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of Spearman(a, truth) - Spearman(b, truth), resampling architectures together."""
    index = truth.index.to_numpy()
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(n_boot):
        pick = index[rng.integers(0, len(index), len(index))]
        gains.append(stats.spearmanr(a[pick], truth[pick]).statistic - stats.spearmanr(b[pick], truth[pick]).statistic)
    low, high = np.nanpercentile(gains, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--reference", type=Path, default=None, help="a CSV to import as the reference first")
    parser.add_argument("--features", default="grad_norm,naswot,synflow",
                        help="candidate feature proxies; every set of up to two of them and all together are fitted")
    parser.add_argument("--reference-images", type=int, default=60000, help="training images of a reference run")
    parser.add_argument("--reference-epochs", type=int, default=6, help="epochs of a reference run")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root)
    if args.reference:
        import_reference(args.reference, imported_table_path(preset), data, preset.space(), metric=preset.reference.metric,
                         protocol=f"imported from {args.reference.name}")
    table = read_reference(reference_table_path(preset))
    truth = reference_accuracy(table, preset.reference.metric)
    first_seed = table[table["seed"] == table["seed"].min()].set_index("arch")[preset.reference.metric]
    archs = [ArchSpec.parse(a) for a in truth.index]
    space = preset.space()

    features = args.features.split(",")
    scores, seconds = {}, {}
    for name in features:
        proxy = make_proxy(name, preset, data)
        rows = score_archs(proxy, archs, [preset.proxy.seed], preset, data)
        scores[name] = rows.groupby("arch")["score"].mean()
        seconds[name] = float(rows["seconds"].mean())
    scores = pd.DataFrame(scores).loc[truth.index]

    rankings: dict[str, tuple[pd.Series, str]] = {}
    for name in features:
        rankings[f"{name} alone"] = (scores[name], f"{seconds[name]:.1f}")
    sets = [()] + [c for k in (1, 2) for c in itertools.combinations(features, k)]
    if len(features) > 2:
        sets.append(tuple(features))
    for chosen in sets:
        label = "factors" + "".join(f" + {c}" for c in chosen)
        prediction = Calibration.fit(scores[list(chosen)], truth, space).cross_validated()
        rankings[label] = (prediction, f"{sum(seconds[c] for c in chosen):.1f}")
    best = max((k for k in rankings if k.startswith("factors +")),
               key=lambda k: stats.spearmanr(rankings[k][0][truth.index], truth).statistic)
    chosen = tuple(best.removeprefix("factors + ").split(" + "))
    rankings[f"{best}, fitted on seed {table['seed'].min()} only"] = (
        Calibration.fit(scores[list(chosen)], first_seed, space).cross_validated(), rankings[best][1])

    shipped = preset.score
    if shipped.proxy == "calibrated" and all(f in features for f in [*shipped.features, *shipped.refine]):
        base = Calibration.fit(scores[shipped.features], truth, space).cross_validated()[truth.index]
        label = "the preset: factors + " + " + ".join(shipped.features)
        cost = sum(seconds[f] for f in shipped.features)
        if shipped.refine:
            # successive halving promotes about the best 1/reduction_factor; here by the first fidelity's ranking
            top = base.sort_values().index[-round(len(base) / shipped.reduction_factor):]
            full = [*shipped.features, *shipped.refine]
            base[top] = Calibration.fit(scores[full], truth, space).cross_validated()[top]
            label += f", then + {' + '.join(shipped.refine)} for the best 1/{shipped.reduction_factor}"
            cost += sum(seconds[f] for f in shipped.refine) / shipped.reduction_factor
        rankings[label] = (base, f"{cost:.1f}")
    baseline = rankings["factors"][0][truth.index]
    rows = []
    for label, (prediction, cost) in rankings.items():
        prediction = prediction[truth.index]
        a = rank_agreement(prediction, truth, n_boot=1000)
        low, high = paired_gain(prediction, baseline, truth) if label != "factors" else (np.nan, np.nan)
        rows.append({"ranking": label, "n": a["n"],
                     "Spearman [95% CI]": f"{a['spearman']:+.3f} [{a['spearman_low']:+.3f}, {a['spearman_high']:+.3f}]",
                     "Kendall": f"{a['kendall']:+.3f}", "top-10 ρ": f"{a['top10_spearman']:+.2f}",
                     "top-20 ρ": f"{a['top20_spearman']:+.2f}",
                     "P@10": f"{a['precision10']:.2f}" if a["precision10"] == a["precision10"] else "",
                     "regret (pts)": f"{a['regret']:.2f}",
                     "gain over factors [95% CI]": "" if np.isnan(low) else
                     f"{a['spearman'] - stats.spearmanr(baseline, truth).statistic:+.3f} [{low:+.3f}, {high:+.3f}]",
                     "s per arch (this CPU)": cost})

    def train_flops(ids: list[str]) -> float:  # forward + backward ~ 3 forward passes, per image and epoch
        return sum(3.0 * network_size(ArchSpec.parse(a), data)[1] for a in ids) * args.reference_images * \
            args.reference_epochs

    def feature_flops(name: str, ids: list[str]) -> float:  # forward passes a feature's score takes, per arch
        passes = {"grad_norm": 3 * preset.score.batch_size, "naswot": preset.score.batch_size,
                  "synflow": 3}.get(name, 3 * preset.proxy.epochs * preset.condense.ipc * data.num_classes + len(data.val))
        return sum(passes * network_size(ArchSpec.parse(a), data)[1] for a in ids)

    space_flops = train_flops([a.id for a in space.archs()])
    scoring = sum(feature_flops(f, list(truth.index)) for f in features)
    used_all = train_flops(list(table["arch"]))
    used_first = train_flops(list(first_seed.index))
    extra = [f for f in features if f in ACCURACY_PROXIES]
    notes = (f"{len(truth)} reference architectures ({preset.reference.metric}, mean over {table['seed'].nunique()} "
             f"seeds) from {reference_table_path(preset)}; every calibrated row is leave-one-out (each architecture "
             f"ranked by a fit without it, ridge penalty chosen inside the fit). Cost of the reference runs a fit "
             f"uses, as training arithmetic against training all {len(space)} architectures once "
             f"({args.reference_epochs} epochs on {args.reference_images} images): both seeds "
             f"{used_all / space_flops:.3f}, seed {table['seed'].min()} only {used_first / space_flops:.3f}; scoring "
             f"the {len(truth)} architectures with every feature above {scoring / space_flops:.4f}. "
             f"Feature scores cost the seconds shown per architecture"
             + (f" ({', '.join(extra)} also need their own training)" if extra else "") + ".")
    publish(f"Calibrated ranking: {preset.study.name} against {len(truth)} converged reference architectures",
            markdown_table(pd.DataFrame(rows)), notes, record=not args.no_record)


if __name__ == "__main__":
    main()
