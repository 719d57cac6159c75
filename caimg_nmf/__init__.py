"""caimg_nmf: calcium-imaging movies to cells with nonnegative matrix factorization."""
from ._version import __version__
from .errors import CaimgError, ConfigError, InputError, OutputError, MemoryBudgetError
from .nmf import nmf, NMF, NMFResult

__all__ = ["__version__", "CaimgError", "ConfigError", "InputError", "OutputError", "MemoryBudgetError", "nmf", "NMF", "NMFResult"]
