"""Alternating least squares with projection onto >= 0 (as MATLAB ``nnmf`` 'als').

``H <- max(0, W \\ X)`` then ``W <- max(0, X / H)`` (solved through the K x K normal
equations, least-squares for rank-deficient Grams). Fast per iteration, but the
projection makes it a heuristic: unlike HALS, MU and ANLS, the objective is not
guaranteed to decrease every iteration.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ALSSolver"]


def _solve(G, B, l2):
    G = G.astype(np.float64)
    if l2:
        G[np.diag_indices_from(G)] += l2
    return np.linalg.lstsq(G, B.astype(np.float64), rcond=None)[0]


class ALSSolver:
    """Projected ALS; H first, then W (MATLAB order)."""

    def __init__(self, X, W0, H0, *, norm_sq, l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0,
                 W_support=None, threads):
        self.X, self.threads = X, threads
        self._W = np.array(W0, dtype=X.dtype)
        self._H = np.array(H0, dtype=X.dtype)
        self.mask = None if W_support is None else np.asarray(W_support, dtype=bool)
        self.norm_sq = float(norm_sq)
        self.l1_W, self.l1_H, self.l2_W, self.l2_H = map(float, (l1_W, l1_H, l2_W, l2_H))

    W = property(lambda self: self._W)
    H = property(lambda self: self._H)

    def step(self):
        X, W, H = self.X, self._W, self._H
        with self.threads.products():
            WtX = W.T @ X
        H[...] = np.maximum(_solve(W.T @ W, WtX - self.l1_H, self.l2_H), 0)
        with self.threads.products():
            XHt = X @ H.T
        HHt = H.astype(np.float64) @ H.T.astype(np.float64)
        W[...] = np.maximum(_solve(HHt, XHt.T - self.l1_W, self.l2_W), 0).T
        if self.mask is not None:
            W *= self.mask
        W64 = W.astype(np.float64)
        WtW = W64.T @ W64
        err_sq = max(self.norm_sq - 2.0 * float(np.vdot(XHt.astype(np.float64), W64))
                     + float(np.vdot(WtW, HHt)), 0.0)
        obj = 0.5 * err_sq + self.l1_W * float(W64.sum()) + self.l1_H * float(H.sum(dtype=np.float64)) \
            + 0.5 * self.l2_W * float(np.trace(WtW)) + 0.5 * self.l2_H * float(np.trace(HHt))
        return obj, err_sq, True
