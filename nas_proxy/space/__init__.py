"""The search space: architecture ids (:class:`ArchSpec`) and the spaces of ``search_spaces/`` (:class:`SearchSpace`).

Example:
    >>> from nas_proxy.space import ArchSpec, load_search_space
    >>> ArchSpec.parse("d3-w128-relu-instancenorm-avgpool").depth
    3
    >>> len(load_search_space("nas720"))
    720
"""

from __future__ import annotations

from nas_proxy.space._space import AXES, DEFAULT_ARCH, ArchSpec, SearchSpace, load_search_space

__all__ = ["AXES", "ArchSpec", "DEFAULT_ARCH", "SearchSpace", "load_search_space"]
