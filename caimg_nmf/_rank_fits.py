"""The fits behind rank selection (private; used by :mod:`caimg_nmf.rank`).

* :func:`masked_nmf`: NMF that ignores a set of entries (the engine has no mask).
* :func:`cv_error`: relative error of such a fit on the entries it did not see.
* :func:`stability`: agreement of the components of independent fits.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["speckle_mask", "masked_nmf", "cv_error", "full_fit", "stability", "kneedle"]

_EPS = 1e-12


def speckle_mask(shape, holdout, rng):
    """Boolean mask, True = observed. About ``holdout`` of the entries, scattered at random,
    are held out; every row and column keeps at least one observed entry."""
    observed = rng.random(shape) >= holdout
    for axis in (1, 0):
        empty = np.flatnonzero(~observed.any(axis=axis))
        for i in empty:
            j = rng.integers(shape[1 - axis])
            if axis == 1:
                observed[i, j] = True
            else:
                observed[j, i] = True
    return observed


def masked_nmf(X, observed, rank, *, max_iter=300, tol=1e-4, seed=0):
    """Minimise ``||observed * (X - W H)||_F^2`` over ``W, H >= 0``.

    Masked HALS by expectation-maximisation: before each half-step the unobserved entries
    are filled with the current ``W H`` and one HALS sweep is run on the filled matrix. The
    filled objective majorises the masked one and touches it at the current point, so the
    masked error never increases (the usual EM argument); every product is a BLAS call.
    The start is 30 engine HALS iterations from a random start on X with the unobserved
    entries set to their row mean (random rather than NNDSVD: no SVD per fit).

    Returns
    -------
    W (P, K), H (K, T) : float64
    """
    from .nmf import nmf

    X = np.asarray(X, np.float64)
    obs_count = np.maximum(observed.sum(axis=1, keepdims=True), 1)
    row_mean = np.where(observed, X, 0.0).sum(axis=1, keepdims=True) / obs_count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = nmf(np.where(observed, X, row_mean), rank, init="random", max_iter=30, tol=tol,
                    random_state=seed)
    W, H = np.array(start.W, np.float64), np.array(start.H, np.float64)
    norm_obs = float(np.sum(np.where(observed, X, 0.0) ** 2)) or 1.0
    previous = np.inf
    for _ in range(max_iter):
        WH = W @ H
        Z = np.where(observed, X, WH)             # observed entries, the rest filled by the model
        Z -= WH
        loss = float(np.vdot(Z, Z)) / norm_obs    # ||observed * (X - WH)||^2 / ||observed * X||^2
        if np.isfinite(previous) and previous - loss <= tol * max(previous, _EPS):
            break
        previous = loss
        Z += WH
        _hals_rows(H, W.T @ W, W.T @ Z)          # H update
        Z = np.where(observed, X, W @ H)
        _hals_rows(W.T, H @ H.T, H @ Z.T)        # W update (on the transposed view)
    return W, H


def _hals_rows(A, G, B):
    """One HALS sweep updating the rows of A in place for ``min ||Z - F A||`` with
    ``G = F^T F`` and ``B = F^T Z``."""
    for k in range(A.shape[0]):
        if G[k, k] <= _EPS:
            continue
        A[k] = np.maximum(A[k] + (B[k] - G[k] @ A) / G[k, k], 0.0)


def cv_error(X, rank, holdout, seed, *, max_iter=300, tol=1e-4):
    """Relative error ``||X - WH|| / ||X||`` on a random speckled held-out set of entries,
    after fitting on the rest."""
    rng = np.random.default_rng(seed)
    observed = speckle_mask(X.shape, holdout, rng)
    W, H = masked_nmf(X, observed, rank, max_iter=max_iter, tol=tol, seed=seed)
    held = ~observed
    resid = float(np.sum(((X - W @ H)[held]) ** 2))
    scale = float(np.sum(X[held] ** 2)) or 1.0
    return np.sqrt(resid / scale)


def full_fit(X, rank, seed, *, solver, max_iter, tol):
    """One engine fit of the whole matrix from a random start (independent starts are what
    stability compares). Returns (unit-norm W columns, rel_error)."""
    from .nmf import nmf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = nmf(X, rank, solver=solver, init="random",
                  max_iter=max_iter, tol=tol, random_state=seed)
    W = np.asarray(res.W, np.float64)
    norms = np.linalg.norm(W, axis=0)
    return W / np.where(norms > 0, norms, 1.0), float(res.rel_error)


def stability(Ws):
    """Mean over pairs of fits of the mean cosine similarity of their W columns, matched
    one-to-one (Hungarian). 1: every fit found the same components. NaN for < 2 fits."""
    scores = []
    for a in range(len(Ws)):
        for b in range(a + 1, len(Ws)):
            cos = Ws[a].T @ Ws[b]
            r, c = linear_sum_assignment(-cos)
            scores.append(float(cos[r, c].mean()))
    return float(np.mean(scores)) if scores else float("nan")


def kneedle(x, y):
    """Index of the elbow of an increasing, saturating curve: the point farthest above the
    chord from the first to the last point (both axes scaled to [0, 1])."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 3 or not np.all(np.isfinite(y)):
        return int(np.nanargmax(y)) if np.any(np.isfinite(y)) and x.size < 3 else 0
    xs = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    ys = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    chord = ys[0] + (ys[-1] - ys[0]) * xs
    return int(np.argmax(ys - chord))
