"""Docstring examples (``--doctest-modules``, see pyproject.toml) run in a temporary folder.

Examples write what the tool writes (a preset of their own, ``runs/<name>/``) into the current
folder, as a user's session would: never into the repository.
"""

from __future__ import annotations

import pytest
from _pytest.doctest import DoctestItem


@pytest.fixture(autouse=True)
def _doctests_in_a_temporary_folder(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, DoctestItem):
        request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
