"""What each command does: builds the stage's config object from its flags, calls the Python API and prints.

Every handler is a few Python calls a notebook can make as well; its docstring names them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Any

import torch

from nas_proxy._flags import from_options
from nas_proxy._io import check_writable
from nas_proxy.artifacts import imported_table_path, reference_table_path
from nas_proxy.config import Preset, load_preset
from nas_proxy.data import Dataset, load_dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method import CondenseConfig, TrainConfig, condense, train_candidate
from nas_proxy.method._checkpoint import checkpoint_path
from nas_proxy.method._condense import resolve_compile
from nas_proxy.method._train import default_epochs, training_set
from nas_proxy.reference import import_reference, reference_accuracy, run_reference, seed_ceiling
from nas_proxy.reference._agreement import MIN_PAIRS
from nas_proxy.reference._reference import protocol_warning
from nas_proxy.results import Report, compare_proxies, make_report, run_frontier
from nas_proxy.space import ArchSpec
from nas_proxy.study import load_study, run_workers, select_archs


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


CONDENSE_OPTIONS = {
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


def cmd_condense(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.condense`, then :meth:`~nas_proxy.method.CondensedSet.save`."""
    config = from_options(
        CondenseConfig, args, CONDENSE_OPTIONS, compile={"on": True, "off": False}.get(args.compile, args.compile)
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


TRAIN_OPTIONS = {
    "lr": "SGD learning rate, x0.1 at half",
    "batch_size": "batch size",
    "steps": "train exactly this many optimiser steps, whatever the set's size (0: --epochs passes)",
    "dsa_strategy": "per-image DSA during training: op families joined by '_', 'auto' or 'none'",
    "seed": "seed of the weights, batches, augmentation and of subset:IPC's subset",
    "precision": "training precision; auto: bf16 autocast where the device runs it natively, else fp32",
    "compile": "torch.compile the network: about 10 s per architecture on a CPU, paid back over long runs",
    "deterministic": "deterministic CUDA kernels and no cuDNN autotuning, for bit-repeatable scores on a GPU (a CPU "
    "run is repeatable without it)",
    "threads": "CPU threads, 0 for PyTorch's choice",
}


def cmd_train(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.method.training_set`, then :func:`~nas_proxy.train_candidate`."""
    epochs = args.epochs if args.epochs is not None else default_epochs(args.train)
    config = from_options(TrainConfig, args, TRAIN_OPTIONS, epochs=epochs)
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


def _load_preset(args: argparse.Namespace, n_trials: int | None = None) -> Preset:
    """The preset with the ``[study]`` values the flags override: ``--storage`` (when not empty), ``--n-trials``."""
    preset = load_preset(args.preset)
    overrides: dict[str, Any] = {"storage": getattr(args, "storage", None) or None, "n_trials": n_trials}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    return dataclasses.replace(preset, study=dataclasses.replace(preset.study, **overrides)) if overrides else preset


def _set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def _preset_data(preset: Preset, args: argparse.Namespace) -> Dataset:
    return load_dataset(preset.data, args.data_root, device=args.device)


def cmd_search(args: argparse.Namespace) -> int:
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


def cmd_reference(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.import_reference` or :func:`~nas_proxy.run_reference`, then
    :func:`~nas_proxy.seed_ceiling`."""
    preset = _load_preset(args)
    _set_threads(args.threads)
    if args.protocol and not args.import_csv:
        raise NasProxyError("--protocol describes an imported table; pass it with --import FILE.csv")
    data = _preset_data(preset, args)
    metric = preset.reference.metric
    if args.import_csv:
        path = imported_table_path(preset.study.output, preset.data)
        table = import_reference(args.import_csv, path, data, preset.space(), metric=metric, protocol=args.protocol)
        print(
            f"imported {len(table)} rows ({table['arch'].nunique()} architectures, {table['seed'].nunique()} "
            f"seed(s)) from {args.import_csv} into {path}; report, compare and search use it"
        )
    else:
        path = reference_table_path(preset.study.output, preset.data, preset.reference)
        warning = protocol_warning(preset.reference, path)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        study = load_study(preset) if args.archs.startswith("top-") else None
        archs = select_archs(args.archs, preset.space(), preset.reference, study)
        table = run_reference(preset.reference, data, archs, path, progress=not args.no_progress)
        chosen = table[table["arch"].isin({a.id for a in archs})]
        best = reference_accuracy(chosen, metric).sort_values(ascending=False)
        print(
            f"reference table {path}: {len(table)} rows; {chosen['arch'].nunique()} of the "
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


def cmd_report(args: argparse.Namespace) -> int:
    """:func:`~nas_proxy.make_report`."""
    report = make_report(_load_preset(args), args.out, n_boot=args.bootstrap, plot=not args.no_plot)
    print(report.markdown(rows=args.rows), end="")
    _print_files(report, plot=not args.no_plot)
    return 0


def _print_files(report: Report, plot: bool) -> None:
    print("report: " + ", ".join(str(path) for path in report.files))
    if plot and not any(path.suffix == ".png" for path in report.files) and len(report.ranking):
        print("no scatter plot: install matplotlib (pip install 'nas-proxy[plot]')")


def cmd_compare(args: argparse.Namespace) -> int:
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


def cmd_frontier(args: argparse.Namespace) -> int:
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
