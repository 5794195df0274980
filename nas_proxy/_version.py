"""The package version: read by ``pyproject.toml`` (setuptools) and the code alike."""

__version__ = "0.1.0"
