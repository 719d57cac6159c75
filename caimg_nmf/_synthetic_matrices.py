"""Planted nonnegative matrices (private; re-exported by :mod:`caimg_nmf.synthetic`)."""
from __future__ import annotations

import numpy as np

from .errors import InputError


def _check(cond, msg):
    if not cond:
        raise InputError(msg) from None


# The NMF primer's three factories: pollution per discharge at each of the 12 hours of the day
# (columns). Factory 3 reads wherever factories 1 and 2 do, so factory 3 - a * factory 1 stays
# nonnegative for a <= 5/9 and the factorization is not unique (examples/lake_factories.py).
PRIMER_FACTORIES = np.array([[0, 0, 9, 5, 3, 2, 1, 0, 0, 0, 0, 0],
                             [0, 0, 0, 0, 0, 3, 2, 1, 1, 0, 0, 0],
                             [0, 5, 5, 6, 6, 7, 4, 2, 1, 0.5, 0, 0]], dtype=np.float64).T


def make_factories(n_days=1000, *, profiles="primer", hours=None, n_factories=None, discharge_prob=0.3,
                   noise=0.0, seed=0):
    """The NMF primer's lake: hourly pollution readings explained by factories.

    Each factory has a daily time course (a column of ``W_true``) and discharges on random
    days (Bernoulli ``discharge_prob``, at least once). Readings are ``X = W_true @ H_true``
    plus Gaussian noise of sd ``noise`` (clipped at 0).

    Parameters
    ----------
    profiles : {"primer", "gaussian"} or array (hours, n_factories)
        ``"primer"``: the primer's three 12-hour profiles as it writes them
        (:data:`PRIMER_FACTORIES`; their factorization is not unique, see
        examples/lake_factories.py). ``"gaussian"``: smooth bumps (max 1, width ~ hours/8)
        peaking at different hours, ``hours`` x ``n_factories`` (default 12 x 3), each
        with hours of its own, so the factorization is unique. An array: those profiles.
    hours, n_factories : int, optional
        Only for ``"gaussian"``; the other profiles fix them.

    Returns
    -------
    X : ndarray (hours, n_days) float64
    W_true : ndarray (hours, n_factories) float64
        Column j = time course of factory j.
    H_true : ndarray (n_factories, n_days) float64
        1 where factory j discharged on day d, else 0.
    """
    W = _factory_profiles(profiles, hours, n_factories)
    _check(n_days >= 1, "make_factories: need n_days >= 1.")
    _check(0 < discharge_prob <= 1, f"make_factories: discharge_prob={discharge_prob!r} must "
           f"be in (0, 1].")
    rng = np.random.default_rng(seed)
    Hm = (rng.random((W.shape[1], n_days)) < discharge_prob).astype(np.float64)
    for j in np.flatnonzero(Hm.sum(axis=1) == 0):
        Hm[j, rng.integers(n_days)] = 1.0
    X = W @ Hm
    if noise > 0:
        X = np.maximum(X + rng.normal(0.0, noise, X.shape), 0.0)
    return X, W, Hm


def _factory_profiles(profiles, hours, n_factories):
    """W_true (hours, n_factories) for :func:`make_factories`."""
    if isinstance(profiles, str) and profiles == "gaussian":
        hours, n_factories = hours or 12, n_factories or 3
        _check(hours >= 2 and n_factories >= 1, "make_factories: need hours >= 2 and n_factories >= 1.")
        t = np.arange(hours)[:, None]
        peaks = (np.arange(n_factories) + 0.5) * hours / n_factories
        W = np.exp(-0.5 * ((t - peaks[None, :]) / max(hours / 8.0, 0.5)) ** 2)
        return W / W.max(axis=0, keepdims=True)
    if isinstance(profiles, str):
        _check(profiles == "primer", f"make_factories: profiles={profiles!r}; use 'primer', 'gaussian' "
               "or an array (hours, n_factories).")
        profiles = PRIMER_FACTORIES
    W = np.array(profiles, dtype=np.float64)
    _check(W.ndim == 2 and W.shape[0] >= 2 and W.shape[1] >= 1 and np.all(np.isfinite(W)) and W.min() >= 0
           and np.all(W.sum(axis=0) > 0), "make_factories: profiles must be a finite nonnegative array "
           f"(hours >= 2, n_factories >= 1) with no all-zero column; got shape {W.shape}.")
    _check(hours in (None, W.shape[0]) and n_factories in (None, W.shape[1]),
           f"make_factories: hours and n_factories are set by the profiles ({W.shape[0]} x {W.shape[1]}); "
           "give them only with profiles='gaussian'.")
    return W


def make_matrix(n_rows, n_cols, rank, *, sparsity=0.5, noise=0.0, seed=0):
    """Planted nonnegative low-rank matrix ``X = W @ H (+ noise)``.

    ``W`` and ``H`` have exponential(1) entries of which a fraction ``sparsity`` are set
    to 0 (every column of W and row of H keeps at least one nonzero). Noise is Gaussian
    with sd ``noise * mean(W @ H)``; X is clipped at 0.

    Returns
    -------
    X : ndarray (n_rows, n_cols) float64
    W : ndarray (n_rows, rank) float64
    H : ndarray (rank, n_cols) float64
    """
    _check(min(n_rows, n_cols, rank) >= 1, "make_matrix: n_rows, n_cols and rank must be >= 1.")
    _check(0 <= sparsity < 1, f"make_matrix: sparsity={sparsity!r} must be in [0, 1).")
    rng = np.random.default_rng(seed)

    def factor(shape, axis):
        A = rng.exponential(1.0, shape) * (rng.random(shape) >= sparsity)
        empty = np.flatnonzero(A.sum(axis=axis) == 0)
        for j in empty:
            i = rng.integers(shape[axis])
            if axis == 0:
                A[i, j] = rng.exponential(1.0) + 0.1
            else:
                A[j, i] = rng.exponential(1.0) + 0.1
        return A

    W = factor((n_rows, rank), 0)
    H = factor((rank, n_cols), 1)
    X = W @ H
    if noise > 0:
        X = np.maximum(X + rng.normal(0.0, noise * X.mean(), X.shape), 0.0)
    return X, W, H
