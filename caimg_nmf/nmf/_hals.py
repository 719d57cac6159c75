"""Accelerated HALS (Gillis & Glineur 2012) with extrapolation (Ang & Gillis 2019).

State is kept with components on rows: ``Wt`` (K, P) and ``H`` (K, T), both
C-contiguous, so the W and H updates are the same row sweep (:func:`sweep`) on a
(K, n) matrix given a cross product ``B`` (K, n) and a Gram matrix ``G`` (K, K).

Per iteration, for each row block of X (one block when X is in memory):
``B = H_hat X_b^T`` (big product), several W sweeps while they pay off, extrapolate
the block's W rows, and add ``W_b^T X_b`` and ``W_b^T W_b`` to the H-update products.
Then several H sweeps, the error from the products already computed:
``||X||^2 - 2<W^T X, H> + <W^T W, H H^T>``, and accept/reject of the extrapolated
pair: a step whose objective rose is rejected (the iterate goes back to the last
accepted pair, the extrapolation weight shrinks and the next step is a plain HALS step),
so the accepted objective never increases.
"""
from __future__ import annotations

import numpy as np

from . import fit as _fit

__all__ = ["HALSSolver", "sweep", "inner_sweeps"]

_PARALLEL_MIN = 2_000_000   # P*T below which the W update runs as one chunk
_CHUNK_ROWS = 1024          # at least this many rows per chunk
_MAX_CHUNKS = 8             # chunks per row block (load balance on a busy machine)


def sweep(A, B, G, l1=0.0, mask=None):
    """One Gauss-Seidel pass over the rows of ``A`` (K, n), in place.

    Row k becomes ``max(0, A_k + (B_k - l1 - G_k A) / G_kk)``, the exact minimizer of
    the (penalized) objective in that row with the others fixed (``G`` already holds
    the l2 term on its diagonal). Returns the squared Frobenius norm of the change.
    """
    change = 0.0
    for k in range(A.shape[0]):
        gkk = G[k, k]
        if gkk <= 0:
            continue
        row = A[k]
        num = B[k] - G[k] @ A
        if l1:
            num -= l1
        num /= gkk
        num += row
        np.maximum(num, 0, out=num)
        if mask is not None:
            num *= mask[k]
        row -= num                     # row now holds -(change)
        change += float(np.dot(row, row))
        row[:] = num
    return change


def inner_sweeps(A, B, G, l1, mask, max_inner, eps=0.01):
    """Sweeps until the squared change drops below ``eps`` x the first one's."""
    first = sweep(A, B, G, l1, mask)
    n = 1
    while n < max_inner and first > 0:
        ch = sweep(A, B, G, l1, mask)
        n += 1
        if ch <= eps * first:
            break
    return n


def _f64dot(a, b):
    return float(np.dot(a.ravel().astype(np.float64, copy=False), b.ravel().astype(np.float64, copy=False)))


class HALSSolver:
    """HALS state machine driven by :func:`caimg_nmf.nmf.fit.run`.

    Parameters
    ----------
    source : RowSource
    W0 : ndarray (P, K); H0 : ndarray (K, T)
    norm_sq : float
        ``||X||_F^2``.
    l1_W, l1_H, l2_W, l2_H : float
        Penalties: objective ``0.5||X-WH||^2 + l1_W sum W + l1_H sum H
        + 0.5 l2_W ||W||^2 + 0.5 l2_H ||H||^2``.
    W_support : bool ndarray (P, K) or None
    threads : ThreadPolicy
    extrapolate : bool
        Ang & Gillis extrapolation with restart (default True).
    max_inner : int or None
        Max inner sweeps per update (default: Gillis-Glineur rule, capped at 10); an int
        fixes the cap.
    """

    def __init__(self, source, W0, H0, *, norm_sq, l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0,
                 W_support=None, threads, extrapolate=True, max_inner=None, inner_eps=0.01):
        P, T = source.shape
        K = W0.shape[1]
        dt = source.dtype
        self.src, self.threads = source, threads
        self.norm_sq = float(norm_sq)
        self.l1_W, self.l1_H, self.l2_W, self.l2_H = map(float, (l1_W, l1_H, l2_W, l2_H))
        self.mask = None if W_support is None else np.ascontiguousarray(W_support.T, dtype=dt)
        self.Wt = np.ascontiguousarray(W0.T, dtype=dt)      # working / extrapolated W
        self.Hw = np.ascontiguousarray(H0, dtype=dt)        # working / extrapolated H
        self.Wacc, self.Hacc = self.Wt.copy(), self.Hw.copy()
        self.Wraw, self.Hraw = self.Wt.copy(), self.Hw.copy()
        self.WtX = np.empty((K, T), dtype=dt)
        self.extrapolate = extrapolate
        self.beta, self.beta_bar, self.beta_ok = 0.5, 1.0, 0.5
        self.gamma, self.gamma_bar, self.eta = 1.05, 1.01, 1.5
        self.plain_next = True        # first step is a plain HALS step
        self.obj_acc = np.inf
        if max_inner is None:
            self.inner_W = int(min(10, 1 + 0.5 * (1 + T / (K + 1))))
            self.inner_H = int(min(10, 1 + 0.5 * (1 + P / (K + 1))))
        else:
            self.inner_W = self.inner_H = int(max_inner)
        self.inner_eps = inner_eps

    @property
    def W(self):
        return self.Wacc.T

    @property
    def H(self):
        return self.Hacc

    def _gram(self, A, l2):
        G = A @ A.T
        if l2:
            G[np.diag_indices_from(G)] += l2
        return G

    def _penalty(self, Wt, H, WtW, HHt):
        pen = 0.0
        if self.l1_W:
            pen += self.l1_W * float(Wt.sum(dtype=np.float64))
        if self.l1_H:
            pen += self.l1_H * float(H.sum(dtype=np.float64))
        if self.l2_W:
            pen += 0.5 * self.l2_W * float(np.trace(WtW))
        if self.l2_H:
            pen += 0.5 * self.l2_H * float(np.trace(HHt))
        return pen

    def _w_chunk(self, Xc, lo, hi, HHt, beta):
        """W update of rows ``lo:hi`` given their X rows ``Xc``: product, sweeps,
        extrapolation; returns this chunk's share of ``W^T X`` and ``W^T W``."""
        B = self._xht(Xc)                                     # (K, n)
        Wc = np.ascontiguousarray(self.Wt[:, lo:hi])        # (K, n): fits in cache
        mask = None if self.mask is None else self.mask[:, lo:hi]
        inner_sweeps(Wc, B, HHt, self.l1_W, mask, self.inner_W, self.inner_eps)
        del B
        Rc = self.Wraw[:, lo:hi]
        if beta:
            d = Wc - Rc
            Rc[...] = Wc
            d *= Wc.dtype.type(beta)
            Wc += d
            np.maximum(Wc, 0, out=Wc)
        else:
            Rc[...] = Wc
        self.Wt[:, lo:hi] = Wc
        return self._wtx(Wc, Xc), Wc @ Wc.T

    # products with X; CompressedHALS (compressed.py) replaces them by products with Q B
    def _begin(self):
        self._acc = self.WtX

    def _xht(self, Xc):
        return np.ascontiguousarray((Xc @ self.Hw.T).T)

    def _wtx(self, Wc, Xc):
        return Wc @ Xc

    def _end(self, acc):
        return acc

    def _chunks(self, a, b, Xb):
        """(X rows, first row, last row) chunks of one row block of the source; their
        number depends only on the shape (not on the workers), so the result does not."""
        n = b - a
        m = 1 if n * self.src.shape[1] < _PARALLEL_MIN else max(1, min(_MAX_CHUNKS, n // _CHUNK_ROWS))
        edges = np.linspace(0, n, m + 1).astype(int)
        return [(Xb[i:j], a + i, a + j) for i, j in zip(edges[:-1], edges[1:])]

    def step(self):
        beta = 0.0 if (self.plain_next or not self.extrapolate) else self.beta
        Wt, Hw, Wraw, Hraw = self.Wt, self.Hw, self.Wraw, self.Hraw
        bt = Wt.dtype.type(beta)
        workers = self.threads.workers
        with self.threads.sweeps():      # 1 BLAS thread; chunks run on the worker pool
            HHt = self._gram(Hw, self.l2_W)
            self._begin()
            acc = self._acc
            acc[...] = 0
            WtW = np.zeros_like(HHt)
            for a, b, Xb in self.src.blocks():      # one block in memory at a time
                jobs = [lambda c=c: self._w_chunk(*c, HHt, beta) for c in self._chunks(a, b, Xb)]
                for part, gram in _fit.run_ordered(jobs, workers):
                    acc += part          # summed in chunk order: same result for any workers
                    WtW += gram
                del jobs, Xb
            WtX = self._end(acc)
        with self.threads.sweeps():
            G = WtW.copy()
            if self.l2_H:
                G[np.diag_indices_from(G)] += self.l2_H
            inner_sweeps(Hw, WtX, G, self.l1_H, None, self.inner_H, self.inner_eps)
            HnHt = Hw @ Hw.T
            err_sq = self.norm_sq - 2.0 * _f64dot(WtX, Hw) + _f64dot(WtW, HnHt)
            err_sq = max(err_sq, 0.0)
            obj = 0.5 * err_sq + self._penalty(Wt, Hw, WtW, HnHt)
            if beta and obj > self.obj_acc:       # reject: back to the accepted pair
                Wt[...] = self.Wacc
                Wraw[...] = self.Wacc
                Hw[...] = self.Hacc
                Hraw[...] = self.Hacc
                self.beta_bar = self.beta_ok
                self.beta = beta / self.eta
                self.plain_next = True
                return self.obj_acc, self.err_acc, False
            self.Wacc[...] = Wt
            self.Hacc[...] = Hw
            self.obj_acc, self.err_acc = obj, err_sq
            if beta:
                d = Hw - Hraw
                Hraw[...] = Hw
                d *= bt
                Hw += d
                np.maximum(Hw, 0, out=Hw)
                self.beta_ok = beta
                self.beta = min(self.beta_bar, self.gamma * beta)
                self.beta_bar = min(1.0, self.gamma_bar * self.beta_bar)
            else:
                Hraw[...] = Hw
            self.plain_next = False
        return obj, err_sq, True
