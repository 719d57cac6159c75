"""Initializations for NMF: random, NNDSVD variants, and user W0/H0.

NNDSVD (Boutsidis & Gallopoulos 2008) starts from the leading K singular triplets of
X. For large X the triplets come from a randomized SVD (Halko et al. 2011) computed
with passes over row blocks of X, so it also works out of core.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["initialize", "random_init", "nndsvd_init", "top_svd", "range_sketch"]

_EXACT_SVD_MAX = 1200   # min(P, T) up to which the exact LAPACK SVD is used in memory


def random_init(shape, rank, mean, rng, dtype):
    """W, H with entries ``|N(0, 1)| * sqrt(mean(X) / K)``."""
    P, T = shape
    avg = np.sqrt(max(mean, 0.0) / rank) or 1.0
    W = np.abs(rng.standard_normal((P, rank), dtype=np.float64)).astype(dtype) * dtype.type(avg)
    H = np.abs(rng.standard_normal((rank, T), dtype=np.float64)).astype(dtype) * dtype.type(avg)
    return W, H


def range_sketch(source, ell, *, n_power_iter=2, seed=0, threads=None):
    """Randomized range finder (Halko et al. 2011) by passes over row blocks of X.

    Returns ``Q`` (P, ell) with orthonormal columns spanning (about) the leading
    ``ell``-dimensional column space of X, and ``B = Q^T X`` (ell, T): ``X ~= Q B``.
    Costs ``2 + 2 n_power_iter`` passes over X.
    """
    from .fit import ThreadPolicy
    threads = threads or ThreadPolicy()
    P, T = source.shape
    dtype = source.dtype
    ell = min(int(ell), min(P, T))
    rng = np.random.default_rng(seed)
    Omega = rng.standard_normal((T, ell)).astype(dtype)

    def times(M):   # X @ M, (P, ell)
        Y = np.empty((P, M.shape[1]), dtype=dtype)
        for a, b, Xb in source.blocks():
            np.matmul(Xb, M, out=Y[a:b])
        return Y

    def t_times(Q):  # X^T @ Q, (T, ell)
        Z = np.zeros((T, Q.shape[1]), dtype=dtype)
        for a, b, Xb in source.blocks():
            Z += Xb.T @ Q[a:b]
        return Z

    def qr(M):   # tall-skinny QR: single-threaded LAPACK is ~20x faster on few cores
        with threads.sweeps():
            return sla.qr(M, mode="economic", check_finite=False)[0]

    with threads.products():
        Y = times(Omega)
    Q = qr(Y)
    for _ in range(n_power_iter):
        with threads.products():
            Z = t_times(Q)
        Z = qr(Z)
        with threads.products():
            Y = times(Z)
        Q = qr(Y)
    with threads.products():
        B = np.ascontiguousarray(t_times(Q).T)   # (ell, T) = Q^T X
    return Q, B


def top_svd(source, k, *, n_oversamples=10, n_power_iter=2, seed=0, threads=None, sketch=None):
    """Leading ``k`` singular triplets of X (exact if small and in memory, else randomized).

    Parameters
    ----------
    source : RowSource
    k : int
    sketch : (Q, B) from :func:`range_sketch`, optional
        Use this sketch (``X ~= Q B``) instead of computing one.

    Returns
    -------
    U : ndarray (P, k), s : ndarray (k,), Vt : ndarray (k, T)
    """
    from .fit import ThreadPolicy
    threads = threads or ThreadPolicy()
    P, T = source.shape
    if sketch is None and not source.streamed and min(P, T) <= _EXACT_SVD_MAX:
        U, s, Vt = sla.svd(source.X, full_matrices=False, check_finite=False)
        return U[:, :k], s[:k], Vt[:k]
    if sketch is None:
        sketch = range_sketch(source, k + n_oversamples, n_power_iter=n_power_iter, seed=seed,
                              threads=threads)
    Q, B = sketch
    with threads.sweeps():
        Ub, s, Vt = sla.svd(B, full_matrices=False, check_finite=False)
        U = Q @ Ub[:, :k]
    return U, s[:k], Vt[:k]


def nndsvd_init(source, rank, variant, mean, rng, threads=None, fill=1.0, sketch=None):
    """NNDSVD initialization; ``variant`` in {"nndsvd", "nndsvda", "nndsvdar"}.

    "nndsvd" leaves zeros (good for sparse results, bad for multiplicative updates),
    "nndsvda" fills zeros with ``fill * mean(X)`` (``fill=1``: scikit-learn's choice),
    "nndsvdar" with small random values (``mean(X)/100 * |N(0,1)|``).
    """
    dtype = source.dtype
    U, s, Vt = top_svd(source, rank, threads=threads, sketch=sketch)
    P, T = source.shape
    W = np.zeros((P, rank), dtype=dtype)
    H = np.zeros((rank, T), dtype=dtype)
    W[:, 0] = np.sqrt(s[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(s[0]) * np.abs(Vt[0])
    for j in range(1, rank):
        x, y = U[:, j], Vt[j]
        xp, yp = np.maximum(x, 0), np.maximum(y, 0)
        xn, yn = np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0))
        xpn, ypn = np.linalg.norm(xp), np.linalg.norm(yp)
        xnn, ynn = np.linalg.norm(xn), np.linalg.norm(yn)
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / max(xpn, 1e-30), yp / max(ypn, 1e-30), mp
        else:
            u, v, sigma = xn / max(xnn, 1e-30), yn / max(ynn, 1e-30), mn
        lbd = np.sqrt(s[j] * sigma)
        W[:, j] = lbd * u
        H[j] = lbd * v
    eps = 1e-6 * max(float(W.max(initial=0)), float(H.max(initial=0)), 1e-30)
    W[W < eps] = 0
    H[H < eps] = 0
    if variant == "nndsvda":
        W[W == 0] = fill * mean
        H[H == 0] = fill * mean
    elif variant == "nndsvdar":
        zw, zh = W == 0, H == 0
        W[zw] = np.abs(mean / 100 * rng.standard_normal(int(zw.sum())))
        H[zh] = np.abs(mean / 100 * rng.standard_normal(int(zh.sum())))
    return W, H


#: NNDSVDa fill (times mean(X)) for HALS. HALS moves zero entries, so the fill only
#: needs to be nonzero; mean(X) (scikit-learn's value, kept for the other solvers)
#: blurs the sparse NNDSVD factors. On benchmarks/bench_nmf.py, fill=1 needs 42
#: iterations to reach scikit-learn's error, fill=0.01 needs 17 (as plain NNDSVD).
HALS_NNDSVDA_FILL = 0.01


def initialize(source, rank, method, rng, *, W0=None, H0=None, W_support=None, threads=None,
               nndsvda_fill=1.0, sketch=None):
    """Starting W (P, K) and H (K, T) for one replicate.

    With only one of W0/H0 given, the other factor is the nonnegative least-squares
    solution for the given one (block principal pivoting), so the first update does not
    undo the user's factor.
    """
    from ._anls import nnls_bpp   # local import: _anls imports fit helpers

    dtype = source.dtype
    _ss, mean = source.stats()
    if W0 is not None or H0 is not None:
        W = None if W0 is None else np.array(W0, dtype=dtype, copy=True)
        H = None if H0 is None else np.array(H0, dtype=dtype, copy=True)
        if W is not None and W_support is not None:
            W *= W_support
        if H is None:
            WtX = np.zeros((rank, source.shape[1]), dtype=np.float64)
            for a, b, Xb in source.blocks():
                WtX += W[a:b].T @ Xb
            H = nnls_bpp(W.T.astype(np.float64) @ W, WtX).astype(dtype)
        elif W is None:
            XHt = np.empty((source.shape[0], rank), dtype=np.float64)
            for a, b, Xb in source.blocks():
                XHt[a:b] = Xb @ H.T
            allowed = None if W_support is None else np.asarray(W_support).T
            W = nnls_bpp(H.astype(np.float64) @ H.T, XHt.T, allowed=allowed).T.astype(dtype)
        return np.ascontiguousarray(W), np.ascontiguousarray(H)
    if method == "random":
        W, H = random_init(source.shape, rank, mean, rng, dtype)
    else:
        W, H = nndsvd_init(source, rank, method, mean, rng, threads, fill=nndsvda_fill,
                           sketch=sketch)
    if W_support is not None:
        W *= W_support
    return W, H
