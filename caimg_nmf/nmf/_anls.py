"""ANLS with block principal pivoting (Kim & Park 2011).

:func:`nnls_bpp` solves ``min_{Z >= 0} ||A Z - B||_F`` for many right-hand sides
exactly, from the normal equations ``C = A^T A`` (K, K) and ``D = A^T B`` (K, n).
Columns that share a passive set are solved together (one Cholesky solve per distinct
set), so there is no per-element Python loop. :class:`ANLSSolver` alternates exact
nonnegative least squares for W and H: each half-step is the exact minimizer, so the
objective never increases.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["nnls_bpp", "ANLSSolver"]


def _solve_groups(C, D, Pset):
    """Z with Z[Pset] solving C[P,P] z = D[P] per column, zero elsewhere."""
    K, n = D.shape
    Z = np.zeros((K, n), dtype=C.dtype)
    if n == 0:
        return Z
    keys, inv = np.unique(np.packbits(Pset, axis=0), axis=1, return_inverse=True)
    inv = np.asarray(inv).ravel()
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(keys.shape[1] + 1))
    for g in range(keys.shape[1]):
        cols = order[bounds[g]:bounds[g + 1]]
        p = Pset[:, cols[0]]
        if not p.any():
            continue
        Cp = C[np.ix_(p, p)]
        Dp = D[np.ix_(p, cols)]
        try:
            sol = sla.solve(Cp, Dp, assume_a="pos", check_finite=False)
        except (np.linalg.LinAlgError, sla.LinAlgError):
            sol = np.linalg.lstsq(Cp, Dp, rcond=None)[0]
        Z[np.ix_(p, cols)] = sol
    return Z


def nnls_bpp(C, D, init=None, allowed=None, max_iter=None):
    """Nonnegative least squares by block principal pivoting.

    Parameters
    ----------
    C : ndarray (K, K)
        ``A^T A`` (add l2 penalties to its diagonal before calling).
    D : ndarray (K, n)
        ``A^T B`` (subtract l1 penalties before calling).
    init : bool ndarray (K, n), optional
        Starting passive set (e.g. ``Z_prev > 0``): warm start.
    allowed : bool ndarray (K, n), optional
        Entries that may be nonzero (others are held at 0).

    Returns
    -------
    Z : ndarray (K, n), float64
    """
    C = np.asarray(C, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    K, n = D.shape
    max_iter = 5 * K + 10 if max_iter is None else max_iter
    allowed = np.ones((K, n), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if init is None:
        Pset = np.zeros((K, n), dtype=bool)
        Z = np.zeros((K, n))
        Y = -D
    else:
        Pset = np.asarray(init, dtype=bool) & allowed
        Z = _solve_groups(C, D, Pset)
        Y = C @ Z - D
    tiny = 1e-12 * max(1.0, float(np.abs(D).max(initial=0)), float(np.abs(C).max(initial=0)))
    p_bar = 3
    p_vec = np.full(n, p_bar)
    ninf = np.full(n, K + 1)
    nonopt = (Y < -tiny) & ~Pset & allowed
    infea = (Z < -tiny) & Pset
    not_good = nonopt.sum(0) + infea.sum(0)
    todo = not_good > 0
    it = 0
    while todo.any() and it < max_iter:
        it += 1
        s1 = todo & (not_good < ninf)
        s2 = todo & (not_good >= ninf) & (p_vec >= 1)
        s3 = todo & (not_good >= ninf) & (p_vec == 0)
        if s1.any():
            p_vec[s1] = p_bar
            ninf[s1] = not_good[s1]
        if s2.any():
            p_vec[s2] -= 1
        s12 = s1 | s2
        if s12.any():
            Pset[:, s12] |= nonopt[:, s12]
            Pset[:, s12] &= ~infea[:, s12]
        for col in np.flatnonzero(s3):     # backup rule: flip the last bad variable
            cand = np.flatnonzero(nonopt[:, col] | infea[:, col])
            j = cand[-1]
            Pset[j, col] = not Pset[j, col]
        cols = np.flatnonzero(todo)
        Zc = _solve_groups(C, D[:, cols], Pset[:, cols])
        Z[:, cols] = Zc
        Y[:, cols] = C @ Zc - D[:, cols]
        nonopt = (Y < -tiny) & ~Pset & allowed
        infea = (Z < -tiny) & Pset
        not_good = nonopt.sum(0) + infea.sum(0)
        todo = not_good > 0
    np.maximum(Z, 0, out=Z)
    return Z


class ANLSSolver:
    """Alternating exact NNLS (block principal pivoting) for W then H (in memory)."""

    def __init__(self, X, W0, H0, *, norm_sq, l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0,
                 W_support=None, threads):
        self.X, self.threads = X, threads
        self._W = np.array(W0, dtype=X.dtype)
        self._H = np.array(H0, dtype=X.dtype)
        self.norm_sq = float(norm_sq)
        self.l1_W, self.l1_H, self.l2_W, self.l2_H = map(float, (l1_W, l1_H, l2_W, l2_H))
        self.allowed_t = None if W_support is None else np.ascontiguousarray(np.asarray(W_support).T)

    W = property(lambda self: self._W)
    H = property(lambda self: self._H)

    def step(self):
        X, W, H = self.X, self._W, self._H
        with self.threads.products():
            XHt = X @ H.T
        C = H.astype(np.float64) @ H.T.astype(np.float64)
        C[np.diag_indices_from(C)] += self.l2_W
        D = XHt.T.astype(np.float64) - self.l1_W
        with self.threads.sweeps():
            Wt = nnls_bpp(C, D, init=W.T > 0, allowed=self.allowed_t)
        W[...] = Wt.T
        with self.threads.products():
            WtX = W.T @ X
        WtW = W.T.astype(np.float64) @ W.astype(np.float64)
        C = WtW.copy()
        C[np.diag_indices_from(C)] += self.l2_H
        with self.threads.sweeps():
            Hn = nnls_bpp(C, WtX.astype(np.float64) - self.l1_H, init=H > 0)
        H[...] = Hn
        HHt = Hn @ Hn.T
        err_sq = max(self.norm_sq - 2.0 * float(np.vdot(WtX.astype(np.float64), Hn))
                     + float(np.vdot(WtW, HHt)), 0.0)
        obj = 0.5 * err_sq + self.l1_W * float(W.sum(dtype=np.float64)) \
            + self.l1_H * float(Hn.sum()) + 0.5 * self.l2_W * float(np.trace(WtW)) \
            + 0.5 * self.l2_H * float(np.trace(HHt))
        return obj, err_sq, True
