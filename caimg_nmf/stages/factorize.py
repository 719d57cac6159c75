"""Factorize: NMF of the prepared movie (whole field)."""
from __future__ import annotations

from .preprocess import flatten

__all__ = ["factorize_whole"]


def factorize_whole(frames, nmf_cfg, *, progress=None):
    """One NMF of the whole field: X (pixels, frames) ≈ W H with ``nmf_cfg.rank`` components.

    Footprints are scaled to a peak of 1 (traces carry the movie units) and components are
    ordered by their share of the reconstruction, largest first.

    Parameters
    ----------
    frames : ndarray (T, H, W) float32, nonnegative
    nmf_cfg : NMFConfig
    progress : callable(n_iterations) or None

    Returns
    -------
    NMFResult with W (H*W, K) and H (K, T)
    """
    from ..nmf import nmf

    callback = None
    if progress is not None:
        def callback(iteration, W, H, rel_error):
            progress(1)
            return False

    return nmf(flatten(frames), nmf_cfg.rank, solver=nmf_cfg.solver, beta_loss=nmf_cfg.beta_loss,
               init=nmf_cfg.init, replicates=nmf_cfg.replicates, max_iter=nmf_cfg.max_iter,
               tol=nmf_cfg.tol, l1_W=nmf_cfg.l1_W, l1_H=nmf_cfg.l1_H, random_state=nmf_cfg.seed,
               n_jobs=nmf_cfg.n_jobs, backend=nmf_cfg.backend,
               memory_budget=int(nmf_cfg.memory_budget_gb * 1024**3),
               normalize="footprints_max", order="energy", callback=callback)
