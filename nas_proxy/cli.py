"""``nas-proxy``: a thin command line over the Python API.

Each sub-command parses its options, builds the stage's config object, calls the API and
prints; every command is a few Python calls a notebook can make as well (its function names
them). Flags that set a config field take their default from the config class, so a default
lives in one place. Bad input (a :class:`NasProxyError`) becomes one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch

from nas_proxy._config import Bounds
from nas_proxy._flags import Parser, config_options, from_options, integer, numbers
from nas_proxy._io import check_writable
from nas_proxy._version import __version__
from nas_proxy.artifacts import imported_table_path, reference_table_path
from nas_proxy.config import BASE_PROXIES, PROXIES, Preset, load_preset
from nas_proxy.data import DATASETS, DataConfig, Dataset, load_dataset
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import READOUTS, CondenseConfig, TrainConfig, condense, train_candidate
from nas_proxy.method._condense import COMPILE_AUTO_MIN_ITERATIONS, checkpoint_path, resolve_compile
from nas_proxy.method._train import default_epochs, training_set
from nas_proxy.reference import N_BOOT, import_reference, reference_accuracy, run_reference, seed_ceiling
from nas_proxy.reference._agreement import MIN_PAIRS
from nas_proxy.reference._reference import protocol_warning
from nas_proxy.results import FAMILIES, Report, compare_proxies, make_report, run_frontier
from nas_proxy.results._frontier import FIT_SIZES, IPCS, SAMPLES, SHORT
from nas_proxy.space import DEFAULT_ARCH, ArchSpec
from nas_proxy.study import load_study, run_workers, select_archs
from nas_proxy.study._search import quiet_optuna

# Flags that set no config field, checked by the parser: threads as [training].threads is, and bootstrap resamples
# (memory grows with resamples x architectures)
_THREADS = next(f.metadata["bounds"] for f in dataclasses.fields(TrainConfig) if f.name == "threads")
_BOOTSTRAP = Bounds(at_least=0, at_most=10_000, why="more cannot sharpen a 95% interval, only exhaust memory")
# Parameters of the API's calls whose flag has another name, for an ArgumentError's message
_FLAGS = {"ipcs": "ipc", "dm_ipcs": "dm_ipc"}


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    d = DataConfig()
    group.add_argument(
        "--dataset",
        default=d.dataset,
        help=f"data set: {', '.join(DATASETS)}; your own images, folder:PATH (one subfolder of PNG/JPEG images per "
        f"class) or arrays:PATH.npz (x, y), a relative PATH read from the current folder; or a torchvision data set "
        f"when torchvision is installed (default: {d.dataset}, bundled with scikit-learn)",
    )
    group.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help="resize every image to this many pixels square (default: 0, the size stored, which a folder's images "
        "must share)",
    )
    group.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding the data in torchvision's layout (default: $NAS_PROXY_DATA, then ./data)",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="download a missing standard data set with torchvision (needs internet and torchvision)",
    )
    group.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"fraction of each class of the training data held out for validation (default: {d.val_fraction})",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        default=d.split_seed,
        help=f"seed of the validation carve-out (default: {d.split_seed})",
    )
    group.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load_data(args: argparse.Namespace) -> Dataset:
    return load_dataset(
        args.dataset,
        args.data_root,
        val_fraction=args.val_fraction,
        seed=args.split_seed,
        image_size=args.image_size,
        device=args.device,
        download=args.download,
        progress=not args.no_progress,
    )


_CONDENSE_OPTIONS = {
    "ipc": "synthetic images per class",
    "iterations": "DM iterations",
    "lr_img": "SGD learning rate on the pixels",
    "momentum": "SGD momentum on the pixels",
    "batch_real": "real images per class per iteration",
    "init": "initial images",
    "embed_arch": "embedding ConvNet",
    "embed_space": "draw each iteration's embedding ConvNet from this search space instead of --embed-arch",
    "match": "match the last block's features (last) or every block's (blocks)",
    "dsa_strategy": "DSA op families joined by '_', 'auto' for the data set's, or 'none'",
    "seed": "seed of the whole run",
    "precision": "precision of the embedding passes; auto: bf16 where the device runs it natively",
    "real_chunk": "real images per forward pass, bounds memory",
    "checkpoint_every": "write a resumable checkpoint every N iterations",
    "deterministic": "deterministic CUDA kernels, for bit-repeatable runs on a GPU (a CPU run is repeatable "
    "without it)",
}


def _cmd_condense(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.condense`, then :meth:`~nas_proxy.method.CondensedSet.save`."""
    config = from_options(
        CondenseConfig, args, _CONDENSE_OPTIONS, compile={"on": True, "off": False}.get(args.compile, args.compile)
    )
    if args.out.is_dir():
        raise NasProxyError(f"--out {args.out} is a folder; name the file to write, e.g. --out {args.out / 'set.pt'}")
    if args.out.exists() and not args.force:
        raise NasProxyError(f"{args.out} exists; pass --force to overwrite it or choose another --out")
    check_writable(args.out.parent, "--out")  # the set, its picture and its checkpoints
    checkpoint = checkpoint_path(args.out)
    if checkpoint.exists() and not args.resume:
        raise NasProxyError(
            f"{checkpoint} holds an interrupted run; pass --resume to continue it, or delete it to start over"
        )
    data = _load_data(args)
    if config.compile == "auto" and resolve_compile(config, data.train.x.device) and not args.no_progress:
        print(
            f"compiling the embedding network (--compile auto, {config.iterations:,} iterations): the first "
            f"iteration includes the compilation (20-30 s on a 2-core CPU), the rest run faster",
            file=sys.stderr,
        )
    syn = condense(data, config, checkpoint=checkpoint, resume=args.resume, progress=not args.no_progress)
    syn.save(args.out)
    how = f"{'compiled' if syn.meta['compile'] else 'eager'} {syn.meta['precision']}"
    print(
        f"wrote {args.out} ({len(syn.images)} images, {config.iterations} iterations, {how}, "
        f"final loss {syn.meta['final_loss']}, {syn.meta['seconds']:.1f} s) and {args.out.with_suffix('.png')}"
    )
    return 0


_EVALUATE_OPTIONS = {
    "lr": "SGD learning rate, x0.1 at half",
    "batch_size": "batch size",
    "steps": "train exactly this many optimiser steps, whatever the set's size (0: --epochs passes)",
    "dsa_strategy": "per-image DSA during training: op families joined by '_', 'auto' or 'none'",
    "seed": "seed of the weights, batches, augmentation and of random:IPC's subset",
    "precision": "training precision; auto: bf16 autocast where the device runs it natively, else fp32",
    "compile": "torch.compile the network: about 10 s per architecture on a CPU, paid back over long runs",
    "deterministic": "deterministic CUDA kernels and no cuDNN autotuning, for bit-repeatable scores on a GPU (a CPU "
    "run is repeatable without it)",
    "threads": "CPU threads, 0 for PyTorch's choice",
}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.method.training_set`, then :func:`~nas_proxy.train_candidate`."""
    epochs = args.epochs if args.epochs is not None else default_epochs(args.train)
    config = from_options(TrainConfig, args, _EVALUATE_OPTIONS, epochs=epochs)
    arch = ArchSpec.parse(args.arch)
    data = _load_data(args)
    train = training_set(args.train, data, args.seed)
    result = train_candidate(arch, train, data, config, test=not args.no_test, progress=not args.no_progress)
    record = {"dataset": data.name, "train": args.train, **result.to_dict(), "device": str(data.train.x.device)}
    if args.json:
        print(json.dumps(record))
    else:
        test = f", test {result.test_acc:.4f}" if result.test_acc is not None else ""
        budget = f"{config.steps} steps" if config.steps else f"{result.epochs} epochs"
        print(
            f"{arch.id} on {args.train} ({result.train_size} images, {budget}, seed {result.seed}): "
            f"val {result.val_acc:.4f}{test}, {result.params} params, {result.seconds:.1f} s"
        )
    return 0


def _add_preset_options(parser: argparse.ArgumentParser, data: bool = True, storage: bool = True) -> None:
    parser.add_argument(
        "preset",
        help="a shipped study preset by name (quickstart, fashion_mnist, fashion_mnist_dm, "
        "cifar10_dm_ipc50) or the path of your own .toml",
    )
    if storage:
        parser.add_argument(
            "--storage",
            default=None,
            help="Optuna storage URL overriding the preset's, e.g. postgresql://user@host/db "
            "(default: the preset's, else a journal file in its output folder)",
        )
    if data:
        parser.add_argument(
            "--data-root",
            type=Path,
            default=None,
            help="folder holding the data in torchvision's layout (default: $NAS_PROXY_DATA, then ./data)",
        )
        parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load_preset(args: argparse.Namespace, n_trials: int | None = None) -> Preset:
    """The preset with the ``[study]`` values the flags override: ``--storage`` (when not empty), ``--n-trials``."""
    preset = load_preset(args.preset)
    overrides = {"storage": getattr(args, "storage", None) or None, "n_trials": n_trials}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(preset, study=dataclasses.replace(preset.study, **overrides)) if overrides else preset


def _set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def _preset_data(preset: Preset, args: argparse.Namespace) -> Dataset:
    return load_dataset(preset.data, args.data_root, device=args.device)


def _cmd_search(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.run_workers`, then :func:`~nas_proxy.make_report`."""
    preset = _load_preset(args, n_trials=args.n_trials)  # validated by the config itself; an error names --n-trials
    # Bad data (a folder of your own with a broken image, say) is one line before the study is opened or any file
    # written; the workers load it again, this process from the arrays cached by this read
    load_dataset(preset.data, args.data_root, device="cpu")
    run_workers(
        preset,
        workers=args.workers,
        device=args.device,
        data_root=args.data_root,
        archs=args.archs,
        progress=not args.no_progress,
    )
    report = make_report(preset, plot=True)
    summary, a = report.summary, report.summary.agreement
    best = f"; {summary.best_line()}" if summary.study_best_archs else ""
    print(
        f"study {preset.study.name}: {summary.trials_complete} finished trials, {summary.scored} architectures "
        f"scored{best}"
    )
    if a.n >= MIN_PAIRS:
        print(f"{a.correlation_line()}; {summary.pick_line()}")
    if summary.calibrated is not None:
        c = summary.calibrated
        top20, p10 = c.estimate.top_spearman[20], c.estimate.precision[10]
        top = "" if math.isnan(top20) else f", top-20 Spearman {top20:+.3f}, P@10 {p10:.2f}"
        print(
            f"ranked by a calibration fitted on {c.n} reference architectures; expected on "
            f"architectures it has never seen (nested, repeated 5-fold): Spearman {c.estimate.spearman:+.3f} "
            f"{c.estimate.interval('spearman')}{top}; factors alone {c.factors.spearman:+.3f} "
            f"{c.factors.interval('spearman')}"
        )
    elif a.n < MIN_PAIRS:
        print(
            f"{a.correlation_line()}: `nas-proxy reference {preset.ref} --archs 20` trains a sample on the full "
            f"data, then run this command again"
        )
    print(summary.cost_line())
    _print_files(report, plot=True)
    print(
        f"storage: {preset.study.storage_url} (open it with `optuna-dashboard {preset.study.storage_url}`, "
        f"from pip install 'nas-proxy[dashboard]', or nas_proxy.load_study({preset.ref!r}) in Python)"
    )
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.import_reference` or :func:`~nas_proxy.run_reference`, then
    :func:`~nas_proxy.seed_ceiling`."""
    preset = _load_preset(args)
    _set_threads(args.threads)
    if args.protocol and not args.import_csv:
        raise NasProxyError("--protocol describes an imported table; pass it with --import FILE.csv")
    data = _preset_data(preset, args)
    metric = preset.reference.metric
    if args.import_csv:
        table = import_reference(
            args.import_csv, imported_table_path(preset), data, preset.space(), metric=metric, protocol=args.protocol
        )
        print(
            f"imported {len(table)} rows ({table['arch'].nunique()} architectures, {table['seed'].nunique()} "
            f"seed(s)) from {args.import_csv} into {reference_table_path(preset)}; report, compare and search use it"
        )
    else:
        warning = protocol_warning(preset.reference, reference_table_path(preset))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        study = load_study(preset) if args.archs.startswith("top-") else None
        archs = select_archs(args.archs, preset.space(), preset.reference, study)
        table = run_reference(
            preset.reference, data, archs, reference_table_path(preset), progress=not args.no_progress
        )
        chosen = table[table["arch"].isin({a.id for a in archs})]
        best = reference_accuracy(chosen, metric).sort_values(ascending=False)
        print(
            f"reference table {reference_table_path(preset)}: {len(table)} rows; {chosen['arch'].nunique()} of the "
            f"{len(archs)} requested architectures done, best {best.index[0]} {metric} {best.iloc[0]:.4f}, "
            f"{chosen['seconds'].sum() / 60:.1f} min of training"
        )
    ceiling = seed_ceiling(table, metric)
    if ceiling is None:
        print("seed-to-seed ceiling: needs two seeds per architecture ([reference].seeds = 2)")
    else:
        first, second = sorted(table["seed"].unique())[:2]
        print(
            f"seed-to-seed ceiling: seed {first} ranks seed {second} at Spearman {ceiling.spearman:+.3f} "
            f"{ceiling.interval('spearman')}, Kendall {ceiling.kendall:+.3f} {ceiling.interval('kendall')} "
            f"(n = {ceiling.n}); no proxy can be expected to rank closer than this"
        )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.make_report`."""
    report = make_report(_load_preset(args), args.out, n_boot=args.bootstrap, plot=not args.no_plot)
    print(report.markdown(rows=args.rows), end="")
    _print_files(report, plot=not args.no_plot)
    return 0


def _print_files(report: Report, plot: bool) -> None:
    print("report: " + ", ".join(str(path) for path in report.files))
    if plot and not any(path.suffix == ".png" for path in report.files) and len(report.ranking):
        print("no scatter plot: install matplotlib (pip install 'nas-proxy[plot]')")


def _cmd_compare(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.compare_proxies`."""
    preset = _load_preset(args)
    _set_threads(args.threads)
    data = _preset_data(preset, args)
    comparison = compare_proxies(
        preset,
        data,
        args.proxies.split(","),
        seeds=args.seeds,
        n_boot=args.bootstrap,
        out_dir=args.out,
        plot=not args.no_plot,
        progress=not args.no_progress,
    )
    print(comparison.markdown())
    print("wrote " + ", ".join(str(path) for path in comparison.files))
    return 0


def _cmd_frontier(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.run_frontier`."""
    preset = _load_preset(args)
    _set_threads(args.threads)
    frontier = run_frontier(
        preset,
        _preset_data(preset, args),
        families=args.families.split(","),
        ipcs=args.ipc,
        dm_ipcs=args.dm_ipc,
        short=args.short,
        fit_sizes=args.fit_sizes,
        samples=args.samples,
        readouts=args.readouts.split(","),
        n_boot=args.bootstrap,
        out_dir=args.out,
        plot=not args.no_plot,
        progress=not args.no_progress,
    )
    print(frontier.markdown() + "\nwrote " + ", ".join(str(path) for path in frontier.files))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas-proxy", description="Neural architecture search on a condensed proxy set (Distribution Matching)."
    )
    parser.add_argument("--version", action="version", version=f"nas-proxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "condense",
        help="learn a condensed training set with Distribution Matching",
        description="Learn a few synthetic images per class with Distribution Matching and "
        "save them (with provenance) to --out, plus a PNG grid beside it.",
    )
    _add_data_options(p)
    p.add_argument("--out", type=Path, required=True, help="output file (.pt); a PNG grid is written beside it")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint <out>.ckpt if there is one")
    group = config_options(p, CondenseConfig, _CONDENSE_OPTIONS, "condensation ([condense] of a preset)")
    group.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        nargs="?",
        const="on",
        default=CondenseConfig().compile,
        help=f"torch.compile the embedding network: a one-off compilation, then faster iterations (on "
        f"a CPU also bf16 under --precision auto); auto: on for runs of at least "
        f"{COMPILE_AUTO_MIN_ITERATIONS['cpu']:,} iterations on a CPU and "
        f"{COMPILE_AUTO_MIN_ITERATIONS['cuda']:,} on CUDA; bare --compile means on (default: auto)",
    )
    p.set_defaults(
        run=_cmd_condense,
        interrupted="condensation interrupted; run the same command with --resume to continue from the last checkpoint",
    )

    p = commands.add_parser(
        "evaluate",
        help="train one architecture on a training set and report its accuracy",
        description="Train one ConvNet with the paper's protocol and report validation (and "
        "test) accuracy, parameters, FLOPs and seconds.",
    )
    _add_data_options(p)
    p.add_argument(
        "--arch",
        default=DEFAULT_ARCH.id,
        help=f"architecture id d<depth>-w<width>-<act>-<norm>-<pool> (default: {DEFAULT_ARCH.id})",
    )
    p.add_argument(
        "--train",
        default="full",
        help="what to train on: a condensed set file, random:IPC (class-balanced random real subset), "
        "or full (default: full)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs (default: {default_epochs('full')} with --train full, the reference "
        f"protocol's; else {default_epochs('random:10')}, the paper's)",
    )
    config_options(p, TrainConfig, _EVALUATE_OPTIONS, "training ([training] of a preset)")
    p.add_argument("--no-test", action="store_true", help="skip the test-set accuracy")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")
    p.set_defaults(run=_cmd_evaluate)

    p = commands.add_parser(
        "search",
        help="run (or resume) an Optuna study from a preset in studies/",
        description="Condense once (cached by settings and data), then let Optuna propose "
        "architectures, scored by training them on the condensed set. Ctrl-C stops "
        "cleanly; the same command continues the study.",
    )
    _add_preset_options(p)
    p.add_argument(
        "--n-trials",
        type=int,
        default=None,
        help="finished trials the study should hold when done (default: the preset's n_trials)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="local worker processes sharing the study: CPU threads are split between them, GPUs are "
        "dealt out round-robin (default: one per visible GPU, else 1)",
    )
    p.add_argument(
        "--archs",
        default=None,
        help="score these architectures first, then let the sampler go on: N (the sample `reference "
        "--archs N` draws), all, or comma-separated ids",
    )
    p.set_defaults(run=_cmd_search, interrupted="search interrupted; run the same command to continue the study")

    p = commands.add_parser(
        "reference",
        help="train architectures on the full training data (the ground truth)",
        description="Train architectures on the full training data with the preset's "
        "[reference] protocol and append one row per (architecture, seed) to the "
        "reference table in the study's output folder. Finished rows are kept; the "
        "same command continues an interrupted run.",
    )
    _add_preset_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--archs",
        help="N (a sample drawn with [reference].sample_seed from [reference].search_space, else the "
        "study's space), spread:N (N spread over every choice: a calibration needs fewer), all, "
        "top-K (the study's best K) or comma-separated architecture ids",
    )
    which.add_argument(
        "--import",
        dest="import_csv",
        type=Path,
        metavar="FILE.csv",
        help="use a table trained elsewhere as the reference (columns arch, seed, test_acc, optional "
        "val_acc): checked row by row, then report, compare and search use it",
    )
    p.add_argument(
        "--protocol", default="", help="with --import: how the table was trained, kept beside it and shown in reports"
    )
    p.add_argument("--threads", type=integer(_THREADS), default=0, help="CPU threads (default: PyTorch's choice)")
    p.set_defaults(
        run=_cmd_reference,
        interrupted="reference interrupted; finished rows are saved, run the same command to continue",
    )

    p = commands.add_parser(
        "report",
        help="rank the study's architectures against the reference",
        description="Write the ranking (CSV and markdown), Spearman and Kendall with bootstrap "
        "95% intervals, top-k Spearman, the study's best by the proxy (ties said), the proxy's pick among the "
        "reference architectures and its regret, the proxy's cost against the reference's, and a scatter plot. "
        "Works while the study is running.",
    )
    _add_preset_options(p, data=False)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <study output>/report)")
    p.add_argument(
        "--bootstrap",
        type=integer(_BOOTSTRAP),
        default=N_BOOT,
        help=f"bootstrap resamples for the intervals (default: {N_BOOT})",
    )
    p.add_argument(
        "--rows",
        type=integer(Bounds(at_least=0)),
        default=20,
        help="ranking rows to print (default: 20; files hold all)",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the scatter plot")
    p.set_defaults(run=_cmd_report)

    p = commands.add_parser(
        "compare",
        help="measure every proxy against the reference, side by side",
        description="Score the reference table's architectures with each proxy and print one "
        "row per proxy: Spearman and Kendall with bootstrap 95% intervals, top-k "
        "Spearman, precision@k, each proxy's pick's reference accuracy and regret, and the "
        "cost. Scores are cached; the same command continues an interrupted run.",
    )
    _add_preset_options(p, storage=False)
    p.add_argument(
        "--proxies",
        default=",".join(BASE_PROXIES),
        help=f"comma-separated proxies from {', '.join(PROXIES)}; join with + for a rank ensemble, e.g. "
        "dm+naswot (default: all)",
    )
    p.add_argument("--seeds", type=int, default=None, help="scores averaged per architecture (default: [score].seeds)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <study output>/compare)")
    p.add_argument(
        "--bootstrap",
        type=integer(_BOOTSTRAP),
        default=N_BOOT,
        help=f"bootstrap resamples for the intervals (default: {N_BOOT})",
    )
    p.add_argument("--no-plot", action="store_true", help="skip the plot")
    p.add_argument("--threads", type=integer(_THREADS), default=0, help="CPU threads (default: PyTorch's choice)")
    p.set_defaults(
        run=_cmd_compare, interrupted="compare interrupted; scores so far are saved, run the same command to continue"
    )

    p = commands.add_parser(
        "frontier",
        help="ranking quality against cost, every method on the same reference",
        description="Score the reference architectures with every method of the families asked "
        "for and print each one's honest Spearman, top-20 Spearman, P@10 and regret "
        "against the cost of ranking the whole space that way. Scores are cached: "
        "the same command continues, a later one reuses them.",
    )
    _add_preset_options(p, storage=False)
    p.add_argument(
        "--families", default=",".join(FAMILIES), help=f"comma-separated, from {', '.join(FAMILIES)} (default: all)"
    )
    for flag, kind, default, text in (
        ("--ipc", int, IPCS, "images per class of the subset and DM sets"),
        ("--short", float, SHORT, "short-training budgets, fractions of the reference's optimiser steps"),
        ("--fit-sizes", int, FIT_SIZES, "reference architectures calibrations are fitted on, besides all of them"),
        ("--samples", float, SAMPLES, "fractions of the training data the sample family trains on"),
    ):
        joined = ",".join(map(str, default))
        p.add_argument(flag, type=numbers(kind), default=list(default), help=f"{text} (default: {joined})")
    p.add_argument("--dm-ipc", type=numbers(int), default=None, help="the DM sets' sizes (default: --ipc)")
    p.add_argument(
        "--readouts",
        default="val_acc",
        help=f"how trained methods' runs are read, comma-separated, from {', '.join(READOUTS)}; halving and "
        "calibrated use the first (default: val_acc)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <study output>/frontier)")
    p.add_argument(
        "--bootstrap", type=integer(_BOOTSTRAP), default=N_BOOT, help=f"bootstrap resamples (default: {N_BOOT})"
    )
    p.add_argument("--no-plot", action="store_true", help="skip the plot (frontier.png, needs matplotlib)")
    p.add_argument("--threads", type=integer(_THREADS), default=0, help="CPU threads (default: PyTorch's choice)")
    p.set_defaults(
        run=_cmd_frontier, interrupted="frontier interrupted; scores so far are saved, run the same command to continue"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_optuna():
            return args.run(args)
    except ConfigError as exc:  # a config built from flags: name the flag the bad value came from
        key = _FLAGS.get(exc.key, exc.key)
        flag = f"--{key.replace('_', '-')}" if key in vars(args) else f"{exc.section}.{exc.key}"
        print(f"error: {flag} {exc.problem}", file=sys.stderr)
        return 2
    except NasProxyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Handled: a Ctrl-C still pending, or pressed again while Python shuts down, must not turn the
        # exit into a kill by SIGINT (or a traceback) after the one line below.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(getattr(args, "interrupted", "interrupted"), file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The ``nas-proxy`` command: :func:`main`, then exit with its status."""
    code = main()
    if code == 130:
        # Ctrl-C was handled and reported, yet CPython sometimes ends such a process by re-raising
        # SIGINT at shutdown (exit status -2 instead of 130; seen in about half of the runs stopped
        # early in a search). Every file and storage write is complete here, so leave directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()
