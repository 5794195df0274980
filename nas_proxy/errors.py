"""The one exception type the command line turns into a one-line message."""

from __future__ import annotations


class NasProxyError(Exception):
    """A problem with the user's input: the message names it and says how to fix it.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback.
    Library users can catch this type to tell bad input apart from bugs.
    """
