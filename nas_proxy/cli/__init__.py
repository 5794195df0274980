"""``nas-proxy``: a thin command line over the Python API.

Each sub-command is a row of :data:`COMMANDS`: its options (the shared ones by name from :data:`SHARED`, so a flag
such as ``--data-root`` is written once), the config table its flags fill, and the handler that calls the API and
prints (``_commands``; its docstring names the Python calls a notebook makes instead). Flags that set a config field
take their default from the config class, so a default lives in one place. Bad input (a :class:`NasProxyError`)
becomes one line on stderr and exit status 2.

Example:
    >>> from nas_proxy.cli import build_parser
    >>> args = build_parser().parse_args(["report", "quickstart", "--rows", "5"])
    >>> args.preset, args.rows, args.bootstrap
    ('quickstart', 5, 1000)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, cast

from nas_proxy._config import Bounds
from nas_proxy._flags import ConfigFlags, OneOf, Option, Parser, add_option, integer, numbers, option
from nas_proxy._version import __version__
from nas_proxy.cli import _commands
from nas_proxy.config import BASE_PROXIES, PROXIES
from nas_proxy.data import DATASETS, DataConfig
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import READOUTS, CondenseConfig, TrainConfig
from nas_proxy.method._condense import COMPILE_AUTO_MIN_ITERATIONS
from nas_proxy.method._train import default_epochs
from nas_proxy.reference import N_BOOT
from nas_proxy.results import FAMILIES
from nas_proxy.results._frontier import FIT_SIZES
from nas_proxy.results._methods import IPCS, SAMPLES, SHORT
from nas_proxy.space import DEFAULT_ARCH
from nas_proxy.study._search import quiet_optuna

_THREADS = next(f.metadata["bounds"] for f in dataclasses.fields(TrainConfig) if f.name == "threads")
# Memory grows with resamples x architectures
_BOOTSTRAP = Bounds(at_least=0, at_most=10_000, why="more cannot sharpen a 95% interval, only exhaust memory")
_D = DataConfig()

# Every option more than one command takes, written once.
SHARED: dict[str, Option] = {
    "preset": option(
        "preset",
        help="a shipped study preset by name (quickstart, fashion_mnist, fashion_mnist_dm, cifar10_dm_ipc50) or the "
        "path of your own .toml",
    ),
    "storage": option(
        "--storage",
        default=None,
        help="Optuna storage URL overriding the preset's, e.g. postgresql://user@host/db (default: the preset's, "
        "else a journal file in its output folder)",
    ),
    "dataset": option(
        "--dataset",
        default=_D.dataset,
        help=f"data set: {', '.join(DATASETS)}; your own images, folder:PATH (one subfolder of PNG/JPEG images per "
        f"class) or arrays:PATH.npz (x, y), a relative PATH read from the current folder; or a torchvision data set "
        f"when torchvision is installed (default: {_D.dataset}, bundled with scikit-learn)",
    ),
    "image_size": option(
        "--image-size",
        type=int,
        default=_D.image_size,
        help="resize every image to this many pixels square (default: 0, the size stored, which a folder's images "
        "must share)",
    ),
    "data_root": option(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding the data in torchvision's layout (default: $NAS_PROXY_DATA, then ./data)",
    ),
    "download": option(
        "--download",
        action="store_true",
        help="download a missing standard data set with torchvision (needs internet and torchvision)",
    ),
    "val_fraction": option(
        "--val-fraction",
        type=float,
        default=_D.val_fraction,
        help=f"fraction of each class of the training data held out for validation (default: {_D.val_fraction})",
    ),
    "split_seed": option(
        "--split-seed",
        type=int,
        default=_D.split_seed,
        help=f"seed of the validation carve-out (default: {_D.split_seed})",
    ),
    "device": option("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N"),
    "no_progress": option("--no-progress", action="store_true", help="hide progress bars"),
    "threads": option("--threads", type=integer(_THREADS), default=0, help="CPU threads (default: PyTorch's choice)"),
    "bootstrap": option(
        "--bootstrap",
        type=integer(_BOOTSTRAP),
        default=N_BOOT,
        help=f"bootstrap resamples for the intervals (default: {N_BOOT})",
    ),
    "no_plot": option("--no-plot", action="store_true", help="skip the plot (needs matplotlib)"),
}
_DATA = ("dataset", "image_size", "data_root", "download", "val_fraction", "split_seed", "device", "no_progress")
_PRESET_DATA = ("preset", "data_root", "device", "no_progress")
# The commands that score the reference table's architectures and measure them against it
_MEASURING = (*_PRESET_DATA, "threads", "bootstrap", "no_plot")


def _out_folder(command: str) -> Option:
    return option("--out", type=Path, default=None, help=f"output folder (default: <study output>/{command})")


def _continue(what: str) -> str:
    return f"{what} interrupted; scores so far are saved, run the same command to continue"


@dataclass(frozen=True)
class Command:
    """A sub-command: its help, the shared options it takes by name, its own, and the handler it runs."""

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    shared: tuple[str, ...] = ()
    options: tuple[Option | OneOf | ConfigFlags, ...] = ()
    interrupted: str = "interrupted"
    data_group: bool = field(default=False)  # the shared options as the "data" group (the commands without a preset)


COMMANDS: tuple[Command, ...] = (
    Command(
        "condense",
        "learn a condensed training set with Distribution Matching",
        "Learn a few synthetic images per class with Distribution Matching and save them (with provenance) to "
        "--out, plus a PNG grid beside it.",
        _commands.cmd_condense,
        _DATA,
        (
            option("--out", type=Path, required=True, help="output file (.pt); a PNG grid is written beside it"),
            option("--force", action="store_true", help="overwrite --out if it exists"),
            option("--resume", action="store_true", help="continue from the checkpoint <out>.ckpt if there is one"),
            ConfigFlags(
                CondenseConfig,
                _commands.CONDENSE_OPTIONS,
                "condensation ([condense] of a preset)",
                (
                    option(
                        "--compile",
                        choices=["auto", "on", "off"],
                        nargs="?",
                        const="on",
                        default=CondenseConfig().compile,
                        help=f"torch.compile the embedding network: a one-off compilation, then faster iterations "
                        f"(on a CPU also bf16 under --precision auto); auto: on for runs of at least "
                        f"{COMPILE_AUTO_MIN_ITERATIONS['cpu']:,} iterations on a CPU and "
                        f"{COMPILE_AUTO_MIN_ITERATIONS['cuda']:,} on CUDA; bare --compile means on (default: auto)",
                    ),
                ),
            ),
        ),
        "condensation interrupted; run the same command with --resume to continue from the last checkpoint",
        data_group=True,
    ),
    Command(
        "train",
        "train one architecture on a training set and report its accuracy",
        "Train one ConvNet with the paper's protocol and report validation (and test) accuracy, parameters, FLOPs "
        "and seconds.",
        _commands.cmd_train,
        _DATA,
        (
            option(
                "--arch",
                default=DEFAULT_ARCH.id,
                help=f"architecture id d<depth>-w<width>-<act>-<norm>-<pool> (default: {DEFAULT_ARCH.id})",
            ),
            option(
                "--train",
                default="full",
                help="what to train on: a condensed set file, subset:IPC (class-balanced random real subset), or "
                "full (default: full)",
            ),
            option(
                "--epochs",
                type=int,
                default=None,
                help=f"training epochs (default: {default_epochs('full')} with --train full, the reference "
                f"protocol's; else {default_epochs('subset:10')}, the paper's)",
            ),
            ConfigFlags(TrainConfig, _commands.TRAIN_OPTIONS, "training ([training] of a preset)"),
            option("--no-test", action="store_true", help="skip the test-set accuracy"),
            option("--json", action="store_true", help="print one JSON object instead of a sentence"),
        ),
        data_group=True,
    ),
    Command(
        "search",
        "run (or resume) an Optuna study from a preset in studies/",
        "Condense once (cached by settings and data), then let Optuna propose architectures, scored by training "
        "them on the condensed set. Ctrl-C stops cleanly; the same command continues the study.",
        _commands.cmd_search,
        ("preset", "storage", "data_root", "device", "no_progress"),
        (
            option(
                "--n-trials",
                type=int,
                default=None,
                help="finished trials the study should hold when done (default: the preset's n_trials)",
            ),
            option(
                "--workers",
                type=int,
                default=0,
                help="local worker processes sharing the study: CPU threads are split between them, GPUs are "
                "dealt out round-robin (default: one per visible GPU, else 1)",
            ),
            option(
                "--archs",
                default=None,
                help="score these architectures first, then let the sampler go on: N (the sample `reference "
                "--archs N` draws), all, or comma-separated ids",
            ),
        ),
        "search interrupted; run the same command to continue the study",
    ),
    Command(
        "reference",
        "train architectures on the full training data (the reference)",
        "Train architectures on the full training data with the preset's [reference] protocol and append one row "
        "per (architecture, seed) to the reference table in the study's output folder. Finished rows are kept; the "
        "same command continues an interrupted run.",
        _commands.cmd_reference,
        ("preset", "storage", "data_root", "device", "no_progress", "threads"),
        (
            OneOf(
                (
                    option(
                        "--archs",
                        help="N (a sample drawn with [reference].sample_seed from [reference].search_space, else "
                        "the study's space), spread:N (N spread over every choice: a calibration needs fewer), "
                        "all, top-K (the study's best K) or comma-separated architecture ids",
                    ),
                    option(
                        "--import",
                        dest="import_csv",
                        type=Path,
                        metavar="FILE.csv",
                        help="use a table trained elsewhere as the reference (columns arch, seed, test_acc, "
                        "optional val_acc): checked row by row, then report, compare and search use it",
                    ),
                )
            ),
            option(
                "--protocol",
                default="",
                help="with --import: how the table was trained, kept beside it and shown in reports",
            ),
        ),
        "reference interrupted; finished rows are saved, run the same command to continue",
    ),
    Command(
        "report",
        "rank the study's architectures against the reference",
        "Write the ranking (CSV and markdown), Spearman and Kendall with bootstrap 95% intervals, top-k Spearman, "
        "the study's best by the proxy (ties said), the proxy's pick among the reference architectures and its "
        "regret, the proxy's cost against the reference's, and a scatter plot. Works while the study is running.",
        _commands.cmd_report,
        ("preset", "storage", "bootstrap", "no_plot"),
        (
            _out_folder("report"),
            option(
                "--rows",
                type=integer(Bounds(at_least=0)),
                default=20,
                help="ranking rows to print (default: 20; files hold all)",
            ),
        ),
    ),
    Command(
        "compare",
        "measure every proxy against the reference, side by side",
        "Score the reference table's architectures with each proxy and print one row per proxy: Spearman and "
        "Kendall with bootstrap 95% intervals, top-k Spearman, precision@k, each proxy's pick's reference accuracy "
        "and regret, and the cost. Scores are cached; the same command continues an interrupted run.",
        _commands.cmd_compare,
        _MEASURING,
        (
            option(
                "--proxies",
                default=",".join(BASE_PROXIES),
                help=f"comma-separated proxies from {', '.join(PROXIES)}; join with + for a rank ensemble, e.g. "
                "dm+naswot (default: all)",
            ),
            option("--seeds", type=int, default=None, help="scores averaged per architecture (default: [score].seeds)"),
            _out_folder("compare"),
        ),
        _continue("compare"),
    ),
    Command(
        "frontier",
        "ranking quality against cost, every method on the same reference",
        "Score the reference architectures with every method of the families asked for and print each one's "
        "honest Spearman, top-20 Spearman, P@10 and regret against the cost of ranking the whole space that way. "
        "Scores are cached: the same command continues, a later one reuses them.",
        _commands.cmd_frontier,
        _MEASURING,
        (
            option(
                "--families",
                default=",".join(FAMILIES),
                help=f"comma-separated, from {', '.join(FAMILIES)} (default: all)",
            ),
            *(
                option(
                    flag,
                    type=numbers(kind),
                    default=list(default),
                    help=f"{text} (default: {','.join(map(str, default))})",
                )
                for flag, kind, default, text in (
                    ("--ipc", int, IPCS, "images per class of the subset and DM sets"),
                    ("--short", float, SHORT, "short-training budgets, fractions of the reference's optimiser steps"),
                    (
                        "--fit-sizes",
                        int,
                        FIT_SIZES,
                        "reference architectures calibrations are fitted on, besides all of them",
                    ),
                    ("--samples", float, SAMPLES, "fractions of the training data the sample family trains on"),
                )
            ),
            option("--dm-ipc", type=numbers(int), default=None, help="the DM sets' sizes (default: --ipc)"),
            option(
                "--readouts",
                default="val_acc",
                help=f"how trained methods' runs are read, comma-separated, from {', '.join(READOUTS)}; halving and "
                "calibrated use the first (default: val_acc)",
            ),
            _out_folder("frontier"),
        ),
        _continue("frontier"),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nas-proxy", description="Neural architecture search on a condensed proxy set (Distribution Matching)."
    )
    parser.add_argument("--version", action="version", version=f"nas-proxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = commands.add_parser(command.name, help=command.help, description=command.description)
        shared = p.add_argument_group("data") if command.data_group else p
        for name in command.shared:
            add_option(shared, SHARED[name])
        for entry in command.options:
            add_option(p, entry)
        p.set_defaults(run=command.run, interrupted=command.interrupted)
    return parser


# Parameters of the API's calls whose flag has another name, for an ArgumentError's message
_FLAGS = {"ipcs": "ipc", "dm_ipcs": "dm_ipc"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_optuna():
            return cast(int, args.run(args))
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
        print(args.interrupted, file=sys.stderr)
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


__all__ = ["COMMANDS", "SHARED", "Command", "build_parser", "main", "run"]
