"""Result container and warning class of the NMF engine."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NMFResult", "ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before the relative decrease fell below ``tol``."""


@dataclass(repr=False)
class NMFResult:
    """Outcome of :func:`caimg_nmf.nmf.nmf`.

    Attributes
    ----------
    W : ndarray, shape (P, K)
        Nonnegative footprints (one column per component).
    H : ndarray, shape (K, T)
        Nonnegative traces (one row per component).
    rel_error : float
        ``||X - W H||_F / ||X||_F`` of the returned factors.
    n_iter : int
        Iterations run by the best replicate.
    converged : bool
        True when the best replicate stopped because the relative decrease of its
        objective fell below ``tol`` (False: ``max_iter`` reached or a callback stopped it).
    loss_history : ndarray, shape (n_iter,)
        ``rel_error`` of the current iterate after each iteration (best replicate).
    elapsed : float
        Wall-clock seconds of the whole call (all replicates, init and post-processing).
    replicate_errors : ndarray, shape (replicates,)
        Final ``rel_error`` of each replicate.
    replicate_seeds : ndarray of uint32, shape (replicates,)
        Seed of each replicate's random generator (``np.random.default_rng(seed)``).
    best_replicate : int
        Index of the replicate that was kept (lowest ``rel_error``).
    solver, init : str
        Solver and initialization of the best replicate (``init`` is ``"custom"`` when
        W0/H0 were given, ``"random"`` for the random restarts of a deterministic init).
    """

    W: np.ndarray
    H: np.ndarray
    rel_error: float
    n_iter: int
    converged: bool
    loss_history: np.ndarray
    elapsed: float
    replicate_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    replicate_seeds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    best_replicate: int = 0
    solver: str = "hals"
    init: str = "nndsvda"

    @property
    def rank(self) -> int:
        """Number of components K."""
        return int(self.W.shape[1])

    def __repr__(self) -> str:
        P, K = self.W.shape
        T = self.H.shape[1]
        state = "converged" if self.converged else "not converged"
        reps = len(self.replicate_errors)
        rep = f", best of {reps} replicates (#{self.best_replicate})" if reps > 1 else ""
        return (
            f"NMFResult(W: {P}x{K}, H: {K}x{T}, {self.W.dtype}, solver={self.solver!r}, "
            f"init={self.init!r}, rel_error={self.rel_error:.6g}, n_iter={self.n_iter} "
            f"({state}){rep}, elapsed={self.elapsed:.3g} s)"
        )
