"""Exceptions raised by caimg_nmf.

Every error a user can cause (bad file, bad config, bad argument) is a :class:`CaimgError`
whose message says what was wrong, where, and how to fix it. The CLI maps these to exit
code 2 and prints the message without a traceback.
"""


class CaimgError(Exception):
    """Base class of every error caimg_nmf raises on purpose."""


class InputError(CaimgError, ValueError):
    """The input data (movie, matrix, file) cannot be used as given."""


class ConfigError(CaimgError, ValueError):
    """A configuration value or key is invalid."""


class OutputError(CaimgError, OSError):
    """A result cannot be written where it was asked to go."""


class MemoryBudgetError(CaimgError, MemoryError):
    """The work would not fit in the memory available or allowed."""
