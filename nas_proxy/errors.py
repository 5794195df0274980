"""The exception types the command line turns into a one-line message; every other error is a bug."""

from __future__ import annotations


class NasProxyError(Exception):
    """A problem with the user's input: the message names it and says how to fix it.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    Library users can catch this type to tell bad input apart from bugs.
    """


class DataError(NasProxyError):
    """A dataset cannot be found, read or split; the message says which file and how to fix it.

    Example:
        >>> from nas_proxy import DataError, load_dataset
        >>> try:
        ...     load_dataset("mnist", root="/nonexistent")
        ... except DataError as exc:
        ...     print("MNIST not found" in str(exc))
        True
    """


class ConfigError(NasProxyError):
    """A bad value in one config field: ``section`` (e.g. ``[study]``), ``key`` and the ``problem``.

    Loading from TOML re-raises it naming the file; the CLI re-raises it naming the flag.
    """

    def __init__(self, section: str, key: str, problem: str) -> None:
        self.section, self.key, self.problem = section, key, problem
        super().__init__(f"{section}.{key} {problem}")


class ArgumentError(ConfigError):
    """A bad argument to a library call: names the function and the parameter, so a notebook user reads the
    name they typed (``select_archs(): archs 'top-x': expected top-K ...``); the CLI names the flag instead
    (``--archs 'top-x': ...``), as for any :class:`ConfigError` whose key is one of its options."""

    def __init__(self, function: str, parameter: str, problem: str) -> None:
        super().__init__(function, parameter, problem)
        self.args = (f"{function}(): {parameter} {problem}",)  # the message: a call, not a config table
