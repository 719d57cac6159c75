"""Planted nonnegative matrices (private; re-exported by :mod:`caimg_nmf.synthetic`)."""
from __future__ import annotations

import numpy as np

from .errors import InputError


def _check(cond, msg):
    if not cond:
        raise InputError(msg) from None


def make_factories(n_days=1000, *, hours=12, n_factories=3, discharge_prob=0.3, noise=0.0,
                   seed=0):
    """The NMF primer's lake: hourly pollution readings explained by factories.

    Each factory has a smooth daily time course (a Gaussian bump, width ~ hours/8, peaking
    at a different hour, max 1) and discharges on random days (Bernoulli
    ``discharge_prob``, at least once). Readings are ``X = W_true @ H_true`` plus Gaussian
    noise of sd ``noise`` (clipped at 0).

    Returns
    -------
    X : ndarray (hours, n_days) float64
    W_true : ndarray (hours, n_factories) float64
        Column j = time course of factory j (max 1).
    H_true : ndarray (n_factories, n_days) float64
        1 where factory j discharged on day d, else 0.
    """
    _check(hours >= 2 and n_factories >= 1 and n_days >= 1,
           "make_factories: need hours >= 2, n_factories >= 1 and n_days >= 1.")
    _check(0 < discharge_prob <= 1, f"make_factories: discharge_prob={discharge_prob!r} must "
           f"be in (0, 1].")
    rng = np.random.default_rng(seed)
    t = np.arange(hours)[:, None]
    peaks = (np.arange(n_factories) + 0.5) * hours / n_factories
    W = np.exp(-0.5 * ((t - peaks[None, :]) / max(hours / 8.0, 0.5)) ** 2)
    W /= W.max(axis=0, keepdims=True)
    Hm = (rng.random((n_factories, n_days)) < discharge_prob).astype(np.float64)
    for j in np.flatnonzero(Hm.sum(axis=1) == 0):
        Hm[j, rng.integers(n_days)] = 1.0
    X = W @ Hm
    if noise > 0:
        X = np.maximum(X + rng.normal(0.0, noise, X.shape), 0.0)
    return X, W, Hm


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
