"""``nas-proxy``: a thin command line over the Python API.

Each sub-command parses its options, builds the stage's config object, calls the API and
prints. Bad input (a :class:`NasProxyError`) becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn
from pathlib import Path

import torch

from nas_proxy import __version__
from nas_proxy._accel import PRECISIONS
from nas_proxy.compare import compare_proxies
from nas_proxy.condensation import COMPILE_AUTO_MIN_ITERATIONS, CondensedSet, condense, resolve_compile
from nas_proxy.config import PROXIES, REFERENCE_DEFAULTS, CondenseConfig, Preset, ProxyConfig, load_preset
from nas_proxy.artifacts import reference_table_path
from nas_proxy.data import DATASETS, Dataset, Split, load_dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.training import train_proxy
from nas_proxy.space import DEFAULT_ARCH, ArchSpec
from nas_proxy._config import ConfigError
from nas_proxy._interrupt import interruptible, safe_interrupt
from nas_proxy.reference import (import_reference, protocol_warning, reference_accuracy, run_reference, seed_ceiling,
                                 select_archs)
from nas_proxy.ranking import MIN_PAIRS, correlation_line, interval
from nas_proxy.report import Report, make_report
from nas_proxy.study import enqueue_archs, load_study, open_study, preset_data, run_search


def _device(name: str) -> str:
    """Resolve ``auto``; load_dataset() validates every other name."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", default="digits",
                       help=f"data set name: {', '.join(DATASETS)}, or any torchvision dataset when torchvision is "
                            "installed (default: digits, bundled with scikit-learn)")
    group.add_argument("--data-root", type=Path, default=None,
                       help="folder holding the data in torchvision's layout (default: $NAS_PROXY_DATA, then ./data)")
    group.add_argument("--download", action="store_true",
                       help="download a missing standard data set with torchvision (needs internet and torchvision)")
    group.add_argument("--val-fraction", type=float, default=0.1,
                       help="fraction of each class of the training data held out for validation (default: 0.1)")
    group.add_argument("--split-seed", type=int, default=0, help="seed of the validation carve-out (default: 0)")
    group.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    group.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load_data(args: argparse.Namespace) -> Dataset:
    return load_dataset(args.dataset, args.data_root, val_fraction=args.val_fraction, seed=args.split_seed,
                        device=_device(args.device), download=args.download)


def _cmd_condense(args: argparse.Namespace) -> int:
    config = CondenseConfig(
        ipc=args.ipc, iterations=args.iterations, lr_img=args.lr_img, momentum=args.momentum,
        batch_real=args.batch_real, init=args.init, embed_arch=args.embed_arch, dsa_strategy=args.dsa_strategy,
        seed=args.seed, precision=args.precision, compile={"on": True, "off": False}.get(args.compile, args.compile),
        real_chunk=args.real_chunk, checkpoint_every=args.checkpoint_every, deterministic=args.deterministic)
    if args.out.exists() and not args.force:
        raise NasProxyError(f"{args.out} exists; pass --force to overwrite it or choose another --out")
    checkpoint = args.out.with_name(args.out.name + ".ckpt")
    if checkpoint.exists() and not args.resume:
        raise NasProxyError(f"{checkpoint} holds an interrupted run; pass --resume to continue it, or delete it to "
                            f"start over")
    data = _load_data(args)
    if config.compile == "auto" and resolve_compile(config, data.train.x.device) and not args.no_progress:
        print(f"compiling the embedding network (--compile auto, {config.iterations:,} iterations): the first "
              f"iteration includes the compilation (20-30 s on a 2-core CPU), the rest run faster", file=sys.stderr)
    syn = condense(data, config, checkpoint=checkpoint, resume=args.resume, progress=not args.no_progress)
    syn.save(args.out)
    how = f"{'compiled' if syn.meta['compile'] else 'eager'} {syn.meta['precision']}"
    print(f"wrote {args.out} ({len(syn.images)} images, {config.iterations} iterations, {how}, "
          f"final loss {syn.meta['final_loss']}, {syn.meta['seconds']:.1f} s) and {args.out.with_suffix('.png')}")
    return 0


def _training_set(spec: str, data: Dataset, seed: int) -> tuple[Split, str]:
    """``full``, ``random:IPC`` (a class-balanced random real subset) or the path of a condensed set."""
    if spec == "full":
        return data.train, "full"
    if spec.startswith("random:"):
        try:
            ipc = int(spec.split(":", 1)[1])
        except ValueError:
            raise NasProxyError(f"--train {spec!r}: expected random:<images per class>, e.g. random:10") from None
        return data.sample_per_class(ipc, seed=seed), spec
    syn = CondensedSet.load(spec, data)
    return syn.split(data.train.x.device), spec


def _cmd_evaluate(args: argparse.Namespace) -> int:
    # Full data needs the reference protocol's epochs, not the 1000 of a 10-image-per-class set.
    epochs = args.epochs if args.epochs is not None else (REFERENCE_DEFAULTS["epochs"] if args.train == "full"
                                                          else ProxyConfig().epochs)
    config = ProxyConfig(epochs=epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         dsa_strategy=args.dsa_strategy, precision=args.precision, compile=args.compile,
                         threads=args.threads, deterministic=args.deterministic)
    arch = ArchSpec.parse(args.arch)
    data = _load_data(args)
    train, train_name = _training_set(args.train, data, args.seed)
    result = train_proxy(arch, train, data, config, test=not args.no_test, progress=not args.no_progress)
    record = {"dataset": data.name, "train": train_name, **result.to_dict(), "device": str(data.train.x.device)}
    if args.json:
        print(json.dumps(record))
    else:
        test = f", test {result.test_acc:.4f}" if result.test_acc is not None else ""
        print(f"{arch.id} on {train_name} ({result.train_size} images, {result.epochs} epochs, seed {result.seed}): "
              f"val {result.val_acc:.4f}{test}, {result.params} params, {result.seconds:.1f} s")
    return 0


def _add_preset_options(parser: argparse.ArgumentParser, data: bool = True, storage: bool = True) -> None:
    parser.add_argument("preset", help="a shipped study preset by name (quickstart, fashion_mnist_dm, "
                                       "cifar10_dm_ipc50) or the path of your own .toml")
    if storage:
        parser.add_argument("--storage", default=None,
                            help="Optuna storage URL overriding the preset's, e.g. postgresql://user@host/db "
                                 "(default: the preset's, else a journal file in its output folder)")
    if data:
        parser.add_argument("--data-root", type=Path, default=None,
                            help="folder holding the data in torchvision's layout (default: $NAS_PROXY_DATA, "
                                 "then ./data)")
        parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _load_preset(args: argparse.Namespace) -> Preset:
    preset = load_preset(args.preset)
    if getattr(args, "storage", None):
        preset = dataclasses.replace(preset, study=dataclasses.replace(preset.study, storage=args.storage))
    return preset


def _preset_data(preset: Preset, data_root: Path | None, device: str) -> Dataset:
    return preset_data(preset, data_root, _device(device))


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each local search worker: one worker per visible GPU unless ``workers`` says otherwise.

    ``workers`` 0 means one per GPU on CUDA (one on a CPU). Workers beyond the GPU count share
    GPUs round-robin; an explicit ``cuda:N`` puts every worker on that GPU.
    """
    device = _device(device)
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    workers = workers or max(1, gpus)
    if gpus > 1:
        return [f"cuda:{i % gpus}" for i in range(workers)]
    return [device] * workers


def _search_worker(preset: Preset, args: argparse.Namespace, device: str, threads: int, progress: bool,
                   verbose: bool) -> None:
    torch.set_num_threads(threads)
    with safe_interrupt():
        with interruptible():  # reading data writes nothing
            data = _preset_data(preset, args.data_root, device)
        run_search(preset, data, progress=progress, verbose=verbose)


def _helper(preset: Preset, args: argparse.Namespace, device: str, threads: int) -> None:
    """A spawned worker: the parent reports errors and interruptions, so exit quietly with a status."""
    _quiet_optuna()
    try:
        _search_worker(preset, args, device, threads, False, False)
    except NasProxyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _cmd_search(args: argparse.Namespace) -> int:
    preset = _load_preset(args)
    if args.n_trials is not None:  # validated by the config itself; an error names --n-trials
        preset = dataclasses.replace(preset, study=dataclasses.replace(preset.study, n_trials=args.n_trials))
    if args.workers < 0:
        raise NasProxyError(f"--workers must be at least 1 (or 0: one per GPU), got {args.workers}")
    with safe_interrupt():  # every storage write below finishes before Ctrl-C takes effect
        study = open_study(preset)  # fails fast on a bad storage URL or a clashing study, before any work
        if args.archs:
            queued = enqueue_archs(study, select_archs(preset, args.archs, study))
            print(f"queued {queued} architectures from --archs {args.archs} to run first")
        devices = worker_devices(args.device, args.workers)
        threads = max(1, torch.get_num_threads() // len(devices))
        helpers = []
        if len(devices) > 1:
            import multiprocessing

            # Workers share the study through its storage; the first to arrive condenses, the rest wait.
            context = multiprocessing.get_context("spawn")
            helpers = [context.Process(target=_helper, args=(preset, args, device, threads)) for device in devices[1:]]
            for helper in helpers:
                helper.start()
        try:
            _search_worker(preset, args, devices[0], threads, not args.no_progress, True)
        except KeyboardInterrupt:
            for helper in helpers:  # Ctrl-C reaches the whole process group; a plain `kill -INT` only us
                if helper.is_alive():
                    os.kill(helper.pid, signal.SIGINT)
            for helper in helpers:
                helper.join()
            raise
        for helper in helpers:
            helper.join()
        if any(helper.exitcode for helper in helpers):
            raise NasProxyError("a search worker failed; run the same command again to continue the study")
        report = make_report(preset, plot=True)
    a = report.agreement
    best = f"; best by the proxy {a['study_best_arch']}" if a["study_best_arch"] else ""
    print(f"study {preset.study.name}: {a['trials_complete']} finished trials, {a['scored']} architectures scored"
          f"{best}")
    if a["n"] >= MIN_PAIRS:
        print(f"{correlation_line(a)}; among them the proxy's pick is {a['regret']:.2f} points below the best")
    if "calibration_n" in a:
        print(f"ranked by a calibration fitted on {a['calibration_n']} reference architectures; on architectures "
              f"it was not fitted on (leave-one-out): Spearman {a['calibration_spearman']:+.3f} "
              f"{interval(a, 'calibration_spearman')}, factors alone {a['factors_spearman']:+.3f} "
              f"{interval(a, 'factors_spearman')}")
    elif a["n"] < MIN_PAIRS:
        print(f"{correlation_line(a)}: `nas-proxy reference {preset.ref} --archs 20` trains a sample on the full "
              f"data, then run this command again")
    _print_files(report, plot=True)
    print(f"storage: {preset.study.storage_url} (open it with `optuna-dashboard {preset.study.storage_url}`, "
          f"or nas_proxy.load_study({preset.ref!r}) in Python)")
    return 0


def _cmd_reference(args: argparse.Namespace) -> int:
    preset = _load_preset(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.protocol and not args.import_csv:
        raise NasProxyError("--protocol describes an imported table; pass it with --import FILE.csv")
    data = _preset_data(preset, args.data_root, args.device)
    metric = preset.reference.metric
    if args.import_csv:
        table = import_reference(preset, data, args.import_csv, args.protocol)
        print(f"imported {len(table)} rows ({table['arch'].nunique()} architectures, {table['seed'].nunique()} "
              f"seed(s)) from {args.import_csv} into {reference_table_path(preset)}; report, compare and search use it")
    else:
        warning = protocol_warning(preset)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        study = load_study(preset) if args.archs.startswith("top-") else None
        archs = select_archs(preset, args.archs, study)
        table = run_reference(preset, data, archs, progress=not args.no_progress)
        chosen = table[table["arch"].isin({a.id for a in archs})]
        best = reference_accuracy(chosen, metric).sort_values(ascending=False)
        print(f"reference table {reference_table_path(preset)}: {len(table)} rows; {chosen['arch'].nunique()} of the "
              f"{len(archs)} requested architectures done, best {best.index[0]} {metric} {best.iloc[0]:.4f}, "
              f"{chosen['seconds'].sum() / 60:.1f} min of training")
    ceiling = seed_ceiling(table, metric)
    if ceiling is None:
        print("seed-to-seed ceiling: needs two seeds per architecture ([reference].seeds = 2)")
    else:
        first, second = sorted(table["seed"].unique())[:2]
        print(f"seed-to-seed ceiling: seed {first} ranks seed {second} at Spearman {ceiling['spearman']:+.3f} "
              f"{interval(ceiling, 'spearman')}, Kendall {ceiling['kendall']:+.3f} {interval(ceiling, 'kendall')} "
              f"(n = {ceiling['n']}); no proxy can be expected to rank closer than this")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    report = make_report(_load_preset(args), args.out, n_boot=args.bootstrap, plot=not args.no_plot)
    print(report.markdown(rows=args.rows), end="")
    _print_files(report, plot=not args.no_plot)
    return 0


def _print_files(report: Report, plot: bool) -> None:
    print("report: " + ", ".join(str(path) for path in report.files))
    if plot and not any(path.suffix == ".png" for path in report.files) and len(report.ranking):
        print("no scatter plot: install matplotlib (pip install 'nas-proxy[plot]')")


def _cmd_compare(args: argparse.Namespace) -> int:
    preset = _load_preset(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _preset_data(preset, args.data_root, args.device)
    comparison = compare_proxies(preset, data, args.proxies.split(","), seeds=args.seeds, n_boot=args.bootstrap,
                                 out_dir=args.out, plot=not args.no_plot, progress=not args.no_progress)
    print(comparison.markdown())
    print("wrote " + ", ".join(str(path) for path in comparison.files))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with bad input as one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nas-proxy", description="Neural architecture search on a condensed proxy set (Distribution Matching).")
    parser.add_argument("--version", action="version", version=f"nas-proxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = CondenseConfig()
    p = commands.add_parser("condense", help="learn a condensed training set with Distribution Matching",
                            description="Learn a few synthetic images per class with Distribution Matching and "
                                        "save them (with provenance) to --out, plus a PNG grid beside it.")
    _add_data_options(p)
    p.add_argument("--out", type=Path, required=True, help="output file (.pt); a PNG grid is written beside it")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint <out>.ckpt if there is one")
    p.add_argument("--ipc", type=int, default=d.ipc, help=f"synthetic images per class (default: {d.ipc})")
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"DM iterations (default: {d.iterations})")
    p.add_argument("--lr-img", type=float, default=d.lr_img, help=f"SGD learning rate on the pixels (default: {d.lr_img})")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum on the pixels (default: {d.momentum})")
    p.add_argument("--batch-real", type=int, default=d.batch_real,
                   help=f"real images per class per iteration (default: {d.batch_real})")
    p.add_argument("--init", choices=["real", "noise"], default=d.init, help="initial images (default: real)")
    p.add_argument("--embed-arch", default=d.embed_arch, help=f"embedding ConvNet (default: {d.embed_arch})")
    p.add_argument("--dsa-strategy", default=d.dsa_strategy,
                   help="DSA op families joined by '_', 'auto' for the data set's, or 'none' (default: auto)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the whole run (default: {d.seed})")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help=f"precision of the embedding passes; auto: bf16 where the device runs it natively "
                        f"(default: {d.precision})")
    p.add_argument("--compile", choices=["auto", "on", "off"], nargs="?", const="on", default="auto",
                   help=f"torch.compile the embedding network: a one-off compilation, then faster iterations (on a "
                        f"CPU also bf16 under --precision auto); auto: on for runs of at least "
                        f"{COMPILE_AUTO_MIN_ITERATIONS['cpu']:,} iterations on a CPU and "
                        f"{COMPILE_AUTO_MIN_ITERATIONS['cuda']:,} on CUDA; bare --compile means on (default: auto)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels, for bit-repeatable runs on a GPU (a CPU run is repeatable "
                        "without it)")
    p.add_argument("--real-chunk", type=int, default=d.real_chunk,
                   help=f"real images per forward pass, bounds memory (default: {d.real_chunk})")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help=f"write a resumable checkpoint every N iterations (default: {d.checkpoint_every})")
    p.set_defaults(run=_cmd_condense,
                   interrupted="condensation interrupted; run the same command with --resume to continue from the "
                               "last checkpoint")

    e = ProxyConfig()
    p = commands.add_parser("evaluate", help="train one architecture on a training set and report its accuracy",
                            description="Train one ConvNet with the paper's protocol and report validation (and "
                                        "test) accuracy, parameters, FLOPs and seconds.")
    _add_data_options(p)
    p.add_argument("--arch", default=DEFAULT_ARCH.id,
                   help=f"architecture id d<depth>-w<width>-<act>-<norm>-<pool> (default: {DEFAULT_ARCH.id})")
    p.add_argument("--train", default="full",
                   help="what to train on: a condensed set file, random:IPC (class-balanced random real subset), "
                        "or full (default: full)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default: {REFERENCE_DEFAULTS['epochs']} with --train full, the reference "
                        f"protocol's; else {e.epochs}, the paper's)")
    p.add_argument("--lr", type=float, default=e.lr, help=f"SGD learning rate, x0.1 at half (default: {e.lr})")
    p.add_argument("--batch-size", type=int, default=e.batch_size, help=f"batch size (default: {e.batch_size})")
    p.add_argument("--dsa-strategy", default=e.dsa_strategy,
                   help="per-image DSA during training: op families joined by '_', 'auto' or 'none' (default: auto)")
    p.add_argument("--seed", type=int, default=e.seed, help="seed of the weights, batches, augmentation and of "
                                                            "random:IPC's subset (default: 0)")
    p.add_argument("--precision", choices=PRECISIONS, default=e.precision,
                   help="training precision; auto: bf16 autocast where the device runs it natively, else fp32 "
                        f"(default: {e.precision})")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network: about 10 s per architecture on a CPU, paid back over long runs")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels and no cuDNN autotuning, for bit-repeatable scores on a GPU (a "
                        "CPU run is repeatable without it)")
    p.add_argument("--threads", type=int, default=e.threads, help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--no-test", action="store_true", help="skip the test-set accuracy")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")
    p.set_defaults(run=_cmd_evaluate)

    p = commands.add_parser("search", help="run (or resume) an Optuna study from a preset in studies/",
                            description="Condense once (cached by settings and data), then let Optuna propose "
                                        "architectures, scored by training them on the condensed set. Ctrl-C stops "
                                        "cleanly; the same command continues the study.")
    _add_preset_options(p)
    p.add_argument("--n-trials", type=int, default=None,
                   help="finished trials the study should hold when done (default: the preset's n_trials)")
    p.add_argument("--workers", type=int, default=0,
                   help="local worker processes sharing the study: CPU threads are split between them, GPUs are "
                        "dealt out round-robin (default: one per visible GPU, else 1)")
    p.add_argument("--archs", default=None,
                   help="score these architectures first, then let the sampler go on: N (the sample `reference "
                        "--archs N` draws), all, or comma-separated ids")
    p.set_defaults(run=_cmd_search, interrupted="search interrupted; run the same command to continue the study")

    p = commands.add_parser("reference", help="train architectures on the full training data (the ground truth)",
                            description="Train architectures on the full training data with the preset's "
                                        "[reference] protocol and append one row per (architecture, seed) to the "
                                        "reference table in the study's output folder. Finished rows are kept; the "
                                        "same command continues an interrupted run.")
    _add_preset_options(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archs",
                       help="N (a sample drawn with [reference].sample_seed from [reference].search_space, else the "
                            "study's space), all, top-K (the study's best K) or comma-separated architecture ids")
    which.add_argument("--import", dest="import_csv", type=Path, metavar="FILE.csv",
                       help="use a table trained elsewhere as the reference (columns arch, seed, test_acc, optional "
                            "val_acc): checked row by row, then report, compare and search use it")
    p.add_argument("--protocol", default="",
                   help="with --import: how the table was trained, kept beside it and shown in reports")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's choice)")
    p.set_defaults(run=_cmd_reference,
                   interrupted="reference interrupted; finished rows are saved, run the same command to continue")

    p = commands.add_parser("report", help="rank the study's architectures against the reference",
                            description="Write the ranking (CSV and markdown), Spearman and Kendall with bootstrap "
                                        "95% intervals, top-k Spearman, the proxy's top-1 regret and a scatter plot. "
                                        "Works while the study is running.")
    _add_preset_options(p, data=False)
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <study output>/report)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default: 1000)")
    p.add_argument("--rows", type=int, default=20, help="ranking rows to print (default: 20; files hold all)")
    p.add_argument("--no-plot", action="store_true", help="skip the scatter plot")
    p.set_defaults(run=_cmd_report)

    p = commands.add_parser("compare", help="measure every proxy against the reference, side by side",
                            description="Score the reference table's architectures with each proxy and print one "
                                        "row per proxy: Spearman and Kendall with bootstrap 95% intervals, top-k "
                                        "Spearman, precision@k, the top-1's reference accuracy and regret, and the "
                                        "cost. Scores are cached; the same command continues an interrupted run.")
    _add_preset_options(p, storage=False)
    p.add_argument("--proxies", default="dm,random,early,synflow,naswot,grad_norm,params,flops",
                   help=f"comma-separated proxies from {', '.join(PROXIES)}; join with + for a rank ensemble, e.g. "
                        "dm+naswot (default: all)")
    p.add_argument("--seeds", type=int, default=None, help="scores averaged per architecture (default: [score].seeds)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <study output>/compare)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default: 1000)")
    p.add_argument("--no-plot", action="store_true", help="skip the plot")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: PyTorch's choice)")
    p.set_defaults(run=_cmd_compare, interrupted="compare interrupted; scores so far are saved, run the same command "
                                                 "to continue")
    return parser


def _quiet_optuna() -> None:
    """Optuna's INFO lines (study created, trial finished) repeat what the progress bar and our own lines say."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_optuna()
    try:
        return args.run(args)
    except ConfigError as exc:  # a config built from flags: name the flag the bad value came from
        flag = f"--{exc.key.replace('_', '-')}" if exc.key in vars(args) else f"{exc.section}.{exc.key}"
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
