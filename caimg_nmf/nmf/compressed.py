"""Compressed HALS (Erichson et al. 2018, "Randomized nonnegative matrix factorization").

A randomized range finder gives ``X ~= Q B`` with ``Q`` (P, l) orthonormal and
``B = Q^T X`` (l, T), ``l = K + oversampling``. HALS on ``X_hat = Q B`` only needs
``X_hat H^T = Q (B H^T)`` and ``W^T X_hat = (W^T Q) B``: O((P + T) l K) per iteration
instead of O(P T K), and no pass over X. The W and H updates are the ordinary HALS
sweeps on the full-size factors (so W >= 0, W_support and the penalties hold as usual).

The optimum for ``X_hat`` is not the optimum for X, so :func:`fit` finishes with
full-data HALS until the usual stopping rule: the result is a full-data HALS fixed
point. The same sketch gives the NNDSVD start (no extra passes over X).

During the compressed phase the reported error (loss history, callback) is the estimate
``sqrt(||X_hat - W H||^2 + ||X - X_hat||^2) / ||X||`` (exact when the residual lies in
the range of Q); the full-data phase reports the usual error.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

from . import fit as _fit
from ._hals import HALSSolver

__all__ = ["CompressedHALS", "fit", "oversampling"]

#: cap on compressed iterations (they are cheap; the full-data phase follows)
COMPRESSED_MAX_ITER = 200
#: the compressed phase stops at a relative decrease of max(tol, COMPRESSED_TOL)
COMPRESSED_TOL = 1e-4


def oversampling(compress, shape, rank):
    """Oversampling ``l - K`` for ``compress`` (None: off -> None).

    ``"auto"``: ``max(20, K)``, on when ``min(P, T) >= 8 (K + oversampling)`` (the
    sketch is then much smaller than X), else off.
    """
    if compress is None:
        return None
    if compress == "auto":
        over = max(20, int(rank))
        return over if min(shape) >= 8 * (rank + over) else None
    if int(compress) + rank > min(shape):  # a sketch wider than X compresses nothing (and may not fit)
        raise InputError(f"compress={compress}: the sketch would have rank + compress = {int(compress) + rank} "
                         f"columns, more than min(P, T) = {min(shape)} of X; pass a smaller oversampling, "
                         "'auto' or None.") from None
    return int(compress)


class _SketchSource:
    """Quacks like a RowSource for HALSSolver: the "rows" it yields are rows of Q."""

    def __init__(self, Q, B):
        self.Q, self.B = Q, B
        self.shape = (Q.shape[0], B.shape[1])
        self.dtype = Q.dtype
        self.streamed = False

    def blocks(self):
        yield 0, self.shape[0], self.Q


class CompressedHALS(HALSSolver):
    """HALS on ``X_hat = Q B``; same options as :class:`HALSSolver`."""

    def __init__(self, Q, B, W0, H0, *, norm_sq, **kw):
        Bd = B.astype(np.float64)
        hat_sq = float(np.einsum("ij,ij->", Bd, Bd))
        super().__init__(_SketchSource(Q, B), W0, H0, norm_sq=hat_sq, **kw)
        self.B = B
        self.resid_sq = max(float(norm_sq) - hat_sq, 0.0)    # ||X - Q Q^T X||^2
        self._acc_l = np.empty((W0.shape[1], Q.shape[1]), dtype=Q.dtype)

    def _begin(self):
        self._BHt = self.B @ self.Hw.T                        # (l, K), once per step
        self._acc = self._acc_l

    def _xht(self, Qc):
        return np.ascontiguousarray((Qc @ self._BHt).T)

    def _wtx(self, Wc, Qc):
        return Wc @ Qc                                         # (K, l)

    def _end(self, acc):
        np.matmul(acc, self.B, out=self.WtX)
        return self.WtX

    def step(self):
        obj, err_sq, accepted = super().step()
        return obj + 0.5 * self.resid_sq, err_sq + self.resid_sq, accepted


def fit(source, Q, B, W, H, *, norm_sq, max_iter, tol, callback=None, verbose=False,
        solver_kw):
    """Compressed HALS from (W, H), then full-data HALS; one :class:`FitOutcome`."""
    norm_X = np.sqrt(norm_sq)
    n_c = min(max_iter - 1, COMPRESSED_MAX_ITER)
    if n_c < 1:
        first = None
    else:
        cs = CompressedHALS(Q, B, W, H, norm_sq=norm_sq, **solver_kw)
        first = _fit.run(cs, norm_X=norm_X, max_iter=n_c, tol=max(tol, COMPRESSED_TOL),
                         callback=callback, verbose=verbose, warn=False)
        if first.stopped_by_callback:
            first.converged = False
            return first
        W, H = first.W, first.H
        del cs
    done = 0 if first is None else first.n_iter
    cb = callback if (callback is None or not done) else \
        (lambda it, W_, H_, rel: callback(it + done, W_, H_, rel))
    full = HALSSolver(source, W, H, norm_sq=norm_sq, **solver_kw)
    out = _fit.run(full, norm_X=norm_X, max_iter=max_iter - done, tol=tol, callback=cb,
                   verbose=verbose, warn=False)
    if first is not None:
        out.n_iter += done
        out.loss_history = np.concatenate([first.loss_history, out.loss_history])
        out.times = np.concatenate([first.times, out.times + first.elapsed])
        out.elapsed += first.elapsed
    return out
