"""How the tool writes a number, a name, a tie and a table: one format everywhere a result is shown.

Example:
    >>> import pandas as pd
    >>> from nas_proxy.results._format import markdown_table
    >>> print(markdown_table(pd.DataFrame({"proxy": ["dm"], "spearman": [0.9123]})))
    | proxy | spearman |
    |---|---|
    | dm | 0.9123 |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from nas_proxy.reference import Agreement

CEILING = "reference seed-to-seed"  # the comparison's row for the reference's own seed-to-seed agreement


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def top1(a: Agreement) -> str:
    """The reference accuracy of the proxy's pick; for a tie for the best score, its mean (the expected pick)."""
    if a.top1_ties > 1:
        return f"{a.top1_ties}-way tie: mean {pct(a.top1_reference)}"
    return pct(a.top1_reference)


SHOWN = 3  # the names a tie lists before "and k more"


def names(archs: Sequence[str]) -> str:
    """``archs`` joined; a long list shortened to its first :data:`SHOWN` and how many more."""
    head = ", ".join(archs[:SHOWN])
    return head if len(archs) <= SHOWN else f"{head} and {len(archs) - SHOWN} more"


def best(archs: Sequence[str], at: str) -> str:
    """The architecture with the best value ``at`` (``score 0.9862``, ``99.44%``), or the tie for it:
    ``3 architectures tie at score 0.9862: a, b, c``."""
    if len(archs) == 1:
        return f"{archs[0]} ({at})"
    return f"{len(archs)} architectures tie at {at}: {names(archs)}"


def score(value: float) -> str:
    return f"score {value:.4g}"


def inline(archs: Sequence[str], at: str) -> str:
    """:func:`best` inside a sentence: a tie in parentheses."""
    return best(archs, at) if len(archs) == 1 else f"({best(archs, at)})"


def signed(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub markdown table (pandas' own ``to_markdown`` needs the tabulate package)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


__all__ = [
    "CEILING",
    "SHOWN",
    "best",
    "inline",
    "markdown_table",
    "names",
    "pct",
    "plural",
    "score",
    "signed",
    "top1",
]
