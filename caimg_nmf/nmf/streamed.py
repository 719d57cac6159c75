"""Row-blocked access to X, shared by the in-memory and the out-of-core HALS.

The HALS solver never touches X directly: it asks a :class:`RowSource` for blocks of
pixel rows. An in-memory array gives a single block (a view, no copy); an
``h5py.Dataset``, an ``np.memmap`` or a ``memory_budget`` smaller than X gives blocks
sized so that the block plus the factors fit in the budget. Rows of W are independent
given H, so each block updates its rows of W and adds its share of ``W^T X`` and
``W^T W`` for the H update: one pass over X per iteration.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, MemoryBudgetError

__all__ = ["RowSource", "estimate_memory", "DEFAULT_BUDGET"]

DEFAULT_BUDGET = 2 * 1024**3
_SLACK = 16 * 1024**2


def _factor_bytes(P, T, K, itemsize):
    """Bytes of the HALS state: 4 copies of W-sized arrays, 6 of H-sized, K x K stuff."""
    return itemsize * (4 * P * K + 6 * K * T + 8 * K * K)


def estimate_memory(shape, rank, dtype=np.float32, *, streamed=False, solver="hals",
                    beta_loss="frobenius"):
    """Peak bytes :func:`caimg_nmf.nmf.nmf` needs for X of ``shape`` and ``rank``.

    Parameters
    ----------
    shape : tuple (P, T)
        Shape of X (pixels x frames).
    rank : int
        Number of components K.
    dtype : dtype
        float32 or float64 (other dtypes are computed in float64).
    streamed : bool
        If True, the estimate for out-of-core X: the factors plus the minimal block (X is
        not counted); the actual peak is then bounded by ``memory_budget``.
    solver, beta_loss : str
        KL (``solver="mu"``) needs two extra X-sized arrays; ``"als"``/``"anls"`` need a
        little more than HALS.

    Returns
    -------
    int
        Estimated bytes (X itself included when ``streamed`` is False).
    """
    P, T = (int(s) for s in shape)
    K = int(rank)
    item = 4 if np.dtype(dtype) == np.float32 else 8
    fac = _factor_bytes(P, T, K, item)
    if streamed:
        return int(fac + 64 * T * item + _SLACK)
    x = P * T * item
    extra = 2 * x if beta_loss == "kullback-leibler" else 0
    if solver in ("als", "anls"):
        fac += item * (2 * P * K + 2 * K * T)
    return int(x + extra + fac + _SLACK)


class RowSource:
    """Blocks of pixel rows of X, converted to ``dtype``.

    Parameters
    ----------
    X : ndarray, np.memmap or h5py.Dataset, shape (P, T)
    dtype : numpy dtype (float32 or float64)
    rank : int
        K, used to size the blocks.
    memory_budget : int or None
        Bytes allowed; None: the whole array as one block if in memory, else
        ``DEFAULT_BUDGET``.
    """

    def __init__(self, X, dtype, rank, memory_budget=None, kind=None, checked=False):
        self.X = X
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in X.shape)
        P, T = self.shape
        item = self.dtype.itemsize
        in_memory = kind is None
        x_bytes = P * T * item
        self.streamed = (not in_memory) or (memory_budget is not None and memory_budget < x_bytes)
        if not self.streamed:
            self.block_rows = P
        else:
            budget = DEFAULT_BUDGET if memory_budget is None else int(memory_budget)
            fixed = _factor_bytes(P, T, rank, item)
            # per block row: the converted block, a read buffer and the K-wide scratch
            per_row = item * (2 * T + 4 * rank) + (np.dtype(X.dtype).itemsize * T)
            rows = (budget - fixed) // per_row
            if rows < 1:
                need = estimate_memory(self.shape, rank, self.dtype, streamed=True)
                raise MemoryBudgetError(
                    f"memory_budget={budget} bytes is too small for X of shape {self.shape} and "
                    f"rank {rank}: the factors alone need {fixed} bytes. Pass memory_budget >= "
                    f"{need} (or a smaller rank).") from None
            self.block_rows = int(min(P, rows))
        self._stats = None
        self._checked = checked

    def blocks(self):
        """Yield ``(start, stop, X_block)`` covering all rows once."""
        P = self.shape[0]
        for a in range(0, P, self.block_rows):
            b = min(P, a + self.block_rows)
            Xb = self.X[a:b]
            if not isinstance(Xb, np.ndarray) or Xb.dtype != self.dtype or isinstance(Xb, np.memmap):
                Xb = np.asarray(Xb, dtype=self.dtype)
            yield a, b, Xb

    def stats(self):
        """(sum of squares, mean) of X in float64; checks values (one pass)."""
        if self._stats is None:
            ss, tot = 0.0, 0.0
            sub = 1024
            for a, _b, Xb in self.blocks():
                if self._checked:
                    ss += float(np.einsum("ij,ij->i", Xb, Xb).sum(dtype=np.float64))
                    tot += float(Xb.sum(axis=1).sum(dtype=np.float64))
                    continue
                lo, hi = Xb.min(), Xb.max()
                if not (np.isfinite(lo) and np.isfinite(hi)):
                    raise InputError(f"X contains NaN or Inf values (in rows from {a}). Replace them "
                                     "(e.g. np.nan_to_num) before factorizing.") from None
                if lo < 0:
                    raise InputError(f"X must be nonnegative; its minimum is {lo:.6g} (rows from {a}). "
                                     "Subtract the minimum or clip negative values to 0.") from None
                for i in range(0, Xb.shape[0], sub):
                    blk = Xb[i:i + sub]
                    ss += float(np.einsum("ij,ij->i", blk, blk).sum(dtype=np.float64))
                    tot += float(blk.sum(axis=1).sum(dtype=np.float64))
            self._stats = (ss, tot / (self.shape[0] * self.shape[1]))
        return self._stats


def exact_rel_error(source, W, H, norm_sq, chunk_bytes=8 * 1024**2):
    """``||X - W H||_F / ||X||_F`` by one blocked pass (no X-sized temporary).

    The in-loop error ``||X||^2 - 2<W^T X, H> + <W^T W, H H^T>`` loses digits to
    cancellation when the fit is good (and in float32); the final figure is computed
    directly.
    """
    T = source.shape[1]
    rows = max(1, chunk_bytes // max(1, T * source.dtype.itemsize))
    ss = 0.0
    for a, b, Xb in source.blocks():
        for i in range(0, b - a, rows):
            j = min(b - a, i + rows)
            R = Xb[i:j] - W[a + i:a + j] @ H
            ss += float(np.einsum("ij,ij->i", R, R).sum(dtype=np.float64))
    return float(np.sqrt(ss / norm_sq)) if norm_sq > 0 else 0.0
