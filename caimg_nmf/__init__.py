"""caimg_nmf: calcium-imaging movies to cells with nonnegative matrix factorization.

The public API for lab scripts::

    import caimg_nmf
    movie = caimg_nmf.load_movie("session1.tif")           # lazy (T, H, W)
    result = caimg_nmf.run("configs/demo.toml")            # whole pipeline -> Result
    result = caimg_nmf.Result.load("result.h5")            # .footprints .traces .dff .masks .config
    fit = caimg_nmf.nmf(X, 5, replicates=10)               # NMF of any nonnegative matrix
    caimg_nmf.select_rank(X, "1:10").plot()                # evidence for the rank
"""
from ._version import __version__
from .config import Config, load_config
from .errors import CaimgError, ConfigError, InputError, MemoryBudgetError, OutputError
from .io import Movie, Result, load_movie
from .nmf import NMF, NMFResult, nmf
from .pipeline import run
from .rank import RankSelection, select_rank

__all__ = ["__version__", "CaimgError", "ConfigError", "InputError", "OutputError", "MemoryBudgetError",
           "Config", "load_config", "Movie", "load_movie", "Result", "run", "nmf", "NMF", "NMFResult",
           "select_rank", "RankSelection"]
