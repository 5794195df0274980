"""Load: W local workers on one PostgreSQL-backed study, a few hundred cheap trials, then audit it.

Runs ``nas-proxy search --workers W`` on the digits data and the 720-architecture space with a
zero-cost proxy (the parameter count by default), so the storage, the sampler and the worker
processes carry the load. Then checks that every trial number appears once, every trial
completed, the study holds the asked-for trials (up to W - 1 more finish while the others stop),
the study's best is the best trial, and no worker died (the command exits 0 only then).
Appends a table to benchmarks/RESULTS.md.

    bash .ci/postgres.sh > /tmp/pgurl
    python benchmarks/bench_load.py --storage "$(cat /tmp/pgurl)" --trials 300 --workers 4
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from _common import publish

from nas_proxy import load_preset, load_study
from nas_proxy.config import PROXIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--storage",
        default=os.environ.get("NAS_PROXY_TEST_POSTGRES"),
        help="PostgreSQL URL (default: $NAS_PROXY_TEST_POSTGRES)",
    )
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--proxy", default="params", choices=PROXIES, help="the trials' score (default: params)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if not args.storage:
        sys.exit("pass --storage postgresql://... or set NAS_PROXY_TEST_POSTGRES (bash .ci/postgres.sh prints one)")
    name = f"load-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.toml"
        path.write_text(
            f'[study]\nname = "{name}"\ndataset = "digits"\nsearch_space = "nas720"\nsampler = "tpe"\n'
            f'out_dir = "{folder}/out"\nstorage = "{args.storage}"\n\n[score]\nproxy = "{args.proxy}"\n'
        )
        command = [
            "nas-proxy",
            "search",
            str(path),
            "--n-trials",
            str(args.trials),
            "--workers",
            str(args.workers),
            "--no-progress",
        ]
        tic = time.perf_counter()
        status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - tic
        study = load_study(load_preset(path))
    trials = study.get_trials(deepcopy=False)
    states = collections.Counter(t.state.name for t in trials)
    per_worker = sorted(collections.Counter(t.user_attrs.get("worker") for t in trials).values())
    checks = {
        "command exited 0 (no worker died)": status == 0,
        "trial numbers 0..n-1, each once": sorted(t.number for t in trials) == list(range(len(trials))),
        "every trial COMPLETE": set(states) == {"COMPLETE"},
        f"{args.trials} to {args.trials + args.workers - 1} trials": args.trials
        <= len(trials)
        <= args.trials + args.workers - 1,
        "best_value is the best trial's": study.best_value
        == max(t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE),
    }
    table = "\n".join(
        [
            "| workers | trials | wall (s) | trials/s | trials per worker | checks |",
            "|---|---|---|---|---|---|",
            f"| {args.workers} | {len(trials)} | {wall:.1f} | {len(trials) / wall:.1f} | "
            f"{', '.join(map(str, per_worker))} | {sum(checks.values())}/{len(checks)} passed |",
        ]
    )
    notes = (
        "Checks: "
        + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
        + (
            f". Proxy `{args.proxy}` on digits, TPE on the 720-architecture space; wall time includes the workers' "
            f"start-up (imports, data loading). States: {dict(states)}."
        )
    )
    publish(f"Load: {args.workers} workers on one PostgreSQL study", table, notes, record=not args.no_record)
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
