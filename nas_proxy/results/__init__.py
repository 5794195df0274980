"""What a study shows: the report, every proxy compared, and the cost-fidelity frontier.

:func:`make_report` (ranking.csv, report.md, summary.json, scatter.png), :func:`compare_proxies`
(every proxy against the reference, one row each), :func:`run_frontier` (ranking quality against
cost, every method on the same reference); ``_render`` writes their markdown and ``_plots`` their figures.

Example:
    >>> from nas_proxy.results import FAMILIES
    >>> FAMILIES
    ('zero-cost', 'subset', 'dm', 'short', 'sample', 'warm', 'ensemble', 'halving', 'calibrated')
"""

from __future__ import annotations

from nas_proxy.results._compare import Comparison, compare_proxies
from nas_proxy.results._frontier import Frontier, run_frontier
from nas_proxy.results._methods import FAMILIES
from nas_proxy.results._report import Report, make_report
from nas_proxy.results._summary import Calibrated, Summary

__all__ = [
    "Calibrated",
    "Comparison",
    "FAMILIES",
    "Frontier",
    "Report",
    "Summary",
    "compare_proxies",
    "make_report",
    "run_frontier",
]
