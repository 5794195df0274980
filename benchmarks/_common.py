"""Shared by the benchmark scripts: machine description and publishing tables to RESULTS.md."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    # Two CPUs print the same model name here with and without AVX-512/bf16: name the vector unit too.
    cpu += f" ({torch.backends.cpu.get_cpu_capability()})"
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def publish(title: str, table: str, notes: str = "", record: bool = True) -> None:
    """Print the table and notes; with ``record``, append them as one dated section (title, the command
    that ran, machine) to benchmarks/RESULTS.md."""
    print(table)
    if notes:
        print(notes)
    if not record:
        return
    command = shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    section = (
        f"\n## {title} ({date.today().isoformat()}, commit {git_rev()})\n\n"
        f"Command: `{command}`\n\nMachine: {machine()}\n\n{table}\n"
    )
    if notes:
        section += f"\n{notes}\n"
    with RESULTS.open("a") as handle:
        handle.write(section)
