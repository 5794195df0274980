"""Study wall time end to end: trials per hour with 1 and with 2 local workers, or a whole study from scratch.

Every run scores architectures from the same queue (the preset's reference sample, queued with
``search --archs``), each in a fresh study that shares the preset's output folder, so the
condensed set is built once beforehand and not timed. With W workers the queue holds N + W - 1
architectures: workers stop together once N trials have finished, and up to W - 1 trials
already in flight then finish too (Optuna's MaxTrialsCallback), so none comes from the sampler.
With ``--from-scratch`` it instead times the preset's own ``nas-proxy search`` in an empty output
folder: condensation, then the preset's n_trials from its sampler, as a first-time user runs it.
Appends a table to benchmarks/RESULTS.md.

    python benchmarks/bench_study.py studies/fashion_mnist.toml --data-root ../shared/data --trials 60
    python benchmarks/bench_study.py studies/quickstart.toml --from-scratch
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from _common import publish

from nas_proxy import load_dataset, load_preset, load_study
from nas_proxy.artifacts import get_condensed_set


def bench_preset(preset_path: Path, name: str, out_dir: Path, folder: Path) -> Path:
    """A copy of the preset with another study name and the original output folder (and condensed set)."""
    text = preset_path.read_text()
    text, count = re.subn(r'(?m)^name\s*=\s*".*"$', f'name = "{name}"\nout_dir = "{out_dir}"', text, count=1)
    if count != 1 or text.count("out_dir") > 1:
        sys.exit(f"{preset_path}: expected one [study] name line and no out_dir; adapt bench_preset()")
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def from_scratch(args: argparse.Namespace) -> None:
    preset = load_preset(args.preset)
    with tempfile.TemporaryDirectory() as folder:
        path = bench_preset(args.preset, preset.study.name, Path(folder) / "out", Path(folder))
        command = ["nas-proxy", "search", str(path), "--no-progress"]
        if args.data_root:
            command += ["--data-root", str(args.data_root)]
        tic = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - tic
        study = load_study(load_preset(path))
        trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        setup = study.user_attrs.get("setup_seconds", float("nan"))
    train = sum(t.user_attrs["seconds"] for t in trials if not t.user_attrs.get("cached"))
    table = "\n".join(
        [
            "| study | trials | wall (s) | condensation (s) | training + scoring (s) |",
            "|---|---|---|---|---|",
            f"| {preset.study.name} from scratch | {len(trials)} | {wall:.0f} | {setup:.0f} | {train:.0f} |",
        ]
    )
    publish(
        f"Study from scratch: {preset.study.name}",
        table,
        notes="`nas-proxy search` on an empty output folder, 1 worker: start-up, data loading, "
        "condensation, then the preset's trials. Repeated architectures reuse their score.",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", type=Path)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=8, help="architectures scored per run (default: 8)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: 1,2)")
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="time the preset's whole search (condensation included) in an empty folder, 1 worker",
    )
    args = parser.parse_args()
    if args.from_scratch:
        from_scratch(args)
        return
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root)
    get_condensed_set(preset.condense, data, preset.study.output)  # built (or found) before the clock starts
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in [int(w) for w in args.workers.split(",")]:
            name = f"bench-{preset.study.name}-w{workers}-{uuid.uuid4().hex[:6]}"
            path = bench_preset(args.preset, name, preset.study.output.resolve(), Path(folder))
            command = [
                "nas-proxy",
                "search",
                str(path),
                "--archs",
                str(args.trials + workers - 1),
                "--n-trials",
                str(args.trials),
                "--workers",
                str(workers),
                "--no-progress",
            ]
            if args.data_root:
                command += ["--data-root", str(args.data_root)]
            tic = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - tic
            trials = load_study(load_preset(path)).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            scored = [t for t in trials if not t.user_attrs.get("cached")]
            train = sum(t.user_attrs["seconds"] for t in scored)
            assert all(t.number < args.trials + workers - 1 for t in scored), "a trial came from the sampler"
            rows.append((workers, len(scored), wall, 3600 * len(scored) / wall, train / len(scored)))
            print(
                f"{workers} worker(s): {len(scored)} trials in {wall:.0f} s -> {rows[-1][3]:.1f} trials/hour",
                flush=True,
            )
    base = rows[0][3]
    table = "\n".join(
        ["| workers | trials | wall (s) | trials/hour | speed-up | mean train s/trial |", "|---|---|---|---|---|---|"]
        + [
            f"| {w} | {n} | {wall:.0f} | {rate:.1f} | {rate / base:.2f}x | {per:.1f} |"
            for w, n, wall, rate, per in rows
        ]
    )
    publish(
        f"Study throughput: {preset.study.name}",
        table,
        notes="Same architectures in every run (the preset's reference sample); the condensed set is "
        "built before timing. Wall time includes each worker's start-up (imports, data loading).",
    )


if __name__ == "__main__":
    main()
