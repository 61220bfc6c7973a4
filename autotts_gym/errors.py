"""The project's error base classes.

Every error the project raises on purpose derives from :class:`AutoTTSError`; the CLI prints
its message as one line (exit 1), or exit 2 for a :class:`UsageError` (a bad flag or
argument), with no traceback unless ``--debug``.
"""

from __future__ import annotations


class AutoTTSError(Exception):
    """An expected failure with a message that names the thing and the problem."""


class UsageError(AutoTTSError, ValueError):
    """A bad command-line flag, argument or option value."""
