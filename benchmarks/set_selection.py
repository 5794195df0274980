"""A training set chosen for ranking (issue 23, item 5): does picking it on reference rows carry to the others?

Each candidate is a small training set and the way candidates train on it (a benchmark preset's
random real subset or DM set, at one seed of the subset draw or the condensation). All of them
score the preset's reference architectures (cached, as the frontier does). Then, on many random
half splits (A, B) of the reference:

1. the candidate whose ranking of A agrees best with the reference is chosen ("tuned on A");
2. its Spearman on B, which the choice never looked at, is the honest figure of a set chosen for
   ranking; against it stand the average candidate on B and the best one on B in hindsight.

If the choice carries, the chosen set beats the average candidate on B; if the candidates differ
only by noise, it does not, and tuning the set on reference rows buys nothing.

    python benchmarks/set_selection.py --data-root ../shared/data --cache runs/set_selection \\
        --candidates dm_paper:subset@0,1,2,3 dm_paper:dm@0,1,2 dm_2k:dm dm_dsa:dm dm_dsa:subset dm_space:dm \\
        subset_onecycle:subset

A candidate is ``PRESET:FAMILY[@SEEDS]``: a preset of ``benchmarks/presets`` (or a path), ``subset`` or
``dm``, and the seeds (of ``[training] seed`` for a random subset, which draws it, or of ``[condense] seed``
for a DM set). Every candidate's files go to ``--cache`` (names are keyed on the settings, so they coexist).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from _common import publish
from scipy import stats

from nas_proxy import ArchSpec, Preset, load_dataset, load_preset, rank_agreement
from nas_proxy.reference import reference_accuracy
from nas_proxy.reference._reference import preset_reference
from nas_proxy.results._format import markdown_table
from nas_proxy.results._methods import base_scores

PRESETS = Path(__file__).with_name("presets")


def candidate_presets(spec: str, cache: Path) -> list[tuple[str, str, Preset]]:
    """``(label, family, preset)`` for each seed of one ``PRESET:FAMILY[@SEEDS]``, all writing to ``cache``."""
    name, _, rest = spec.partition(":")
    family, _, seeds = rest.partition("@")
    if family not in ("subset", "dm"):
        raise SystemExit(f"candidate {spec!r}: the family must be subset or dm, as in dm_paper:subset@0,1")
    path = PRESETS / f"{name}.toml" if (PRESETS / f"{name}.toml").exists() else Path(name)
    base = load_preset(path)
    base = dataclasses.replace(base, study=dataclasses.replace(base.study, out_dir=str(cache)))
    out = []
    for seed in [int(s) for s in seeds.split(",")] if seeds else [None]:
        preset = base
        if seed is not None and family == "subset":
            preset = dataclasses.replace(preset, training=dataclasses.replace(preset.training, seed=seed))
        elif seed is not None:
            preset = dataclasses.replace(preset, condense=dataclasses.replace(preset.condense, seed=seed))
        label = f"{Path(name).stem} {family} ipc {preset.condense.ipc}" + ("" if seed is None else f" seed {seed}")
        out.append((label, family, preset))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", nargs="+", required=True, help="PRESET:FAMILY[@SEEDS] ...")
    parser.add_argument("--cache", type=Path, default=Path("runs/set_selection"))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--splits", type=int, default=1000)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    candidates = [c for spec in args.candidates for c in candidate_presets(spec, args.cache)]
    first = candidates[0][2]
    data = load_dataset(first.data, args.data_root)
    path, table = preset_reference(first, data)
    truth = reference_accuracy(table, first.reference.metric)
    archs = [ArchSpec.parse(a) for a in truth.index]
    scores = {}
    for label, family, preset in candidates:
        ipc = preset.condense.ipc
        scored = base_scores(
            preset,
            data,
            archs,
            families=("subset",) if family == "subset" else ("dm",),
            ipcs=[ipc],
            dm_ipcs=[ipc],
            progress=not args.no_progress,
        )
        scores[label] = scored[f"{family} ipc {ipc}"].scores  # base_scores' labels: "subset ipc 10", "dm ipc 10"
    frame = pd.DataFrame(scores).loc[truth.index]

    ranked = {**frame, "rank average of all candidates (pays for all)": frame.rank().mean(axis=1)}
    rows = [{"candidate": label, **_figures(column, truth)} for label, column in ranked.items()]

    rng = np.random.default_rng(0)
    n, half = len(truth), len(truth) // 2
    values, reference = frame.to_numpy(), truth.to_numpy()
    chosen, average, best, won = [], [], [], 0
    for _ in range(args.splits):
        order = rng.permutation(n)
        a, b = order[:half], order[half:]
        on_a = np.array([stats.spearmanr(values[a, j], reference[a]).statistic for j in range(values.shape[1])])
        on_b = np.array([stats.spearmanr(values[b, j], reference[b]).statistic for j in range(values.shape[1])])
        pick = int(np.argmax(on_a))
        chosen.append(on_b[pick])
        average.append(on_b.mean())
        best.append(on_b.max())
        won += int(on_b[pick] >= np.median(on_b))
    chosen, average, best = map(np.array, (chosen, average, best))
    gain = chosen - average
    selection = pd.DataFrame(
        [
            {"on B (never looked at)": "the candidate best on A", "mean Spearman [5%, 95%]": _spread(chosen)},
            {"on B (never looked at)": "the average candidate", "mean Spearman [5%, 95%]": _spread(average)},
            {
                "on B (never looked at)": "the best candidate on B, in hindsight",
                "mean Spearman [5%, 95%]": _spread(best),
            },
            {"on B (never looked at)": "chosen - average", "mean Spearman [5%, 95%]": _spread(gain)},
        ]
    )
    notes = (
        f"{n} reference architectures ({path}, {first.reference.metric}, mean over {table['seed'].nunique()} "
        f"seeds), {len(frame.columns)} candidates. {args.splits} random half splits into A ({half}) and B "
        f"({n - half}): the candidate with the best Spearman on A is scored on B. It is at or above the "
        f"median candidate on B in {100 * won / args.splits:.0f}% of the splits."
    )
    publish(
        "A training set chosen for ranking: chosen on half the reference, scored on the other half",
        markdown_table(pd.DataFrame(rows)) + "\n\n" + markdown_table(selection),
        notes,
        record=not args.no_record,
    )


def _figures(scores: pd.Series, truth: pd.Series) -> dict[str, str]:
    agreement = rank_agreement(scores, truth, seed=0)
    return {
        "Spearman, all [95% CI]": f"{agreement.spearman:+.3f} {agreement.interval('spearman')}",
        "top-20 ρ": f"{agreement.top_spearman[20]:+.2f}",
    }


def _spread(values: np.ndarray) -> str:
    return f"{values.mean():+.3f} [{np.quantile(values, 0.05):+.3f}, {np.quantile(values, 0.95):+.3f}]"


if __name__ == "__main__":
    main()
