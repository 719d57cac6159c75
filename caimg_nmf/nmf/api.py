"""The :func:`nmf` entry point: validation, replicates, solver dispatch, post-processing."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import fit as _fit
from ._validation import check_cross, check_X, validate_params
from . import compressed as _compressed
from .init import HALS_NNDSVDA_FILL, initialize, range_sketch
from .postprocess import normalize_factors, order_components
from .result import NMFResult
from .streamed import RowSource, exact_rel_error
from ..errors import InputError

__all__ = ["nmf"]


def nmf(X, rank, *, solver="hals", beta_loss="frobenius", init="nndsvda", replicates=1,
        max_iter=500, tol=1e-4, random_state=None, l1_W=0.0, l1_H=0.0, l2_W=0.0, l2_H=0.0,
        W0=None, H0=None, W_support=None, normalize=None, order=None, n_jobs=1,
        backend="numpy", memory_budget=None, callback=None, verbose=False, compress=None):
    """Nonnegative matrix factorization ``X ~= W @ H``.

    Minimizes ``0.5 ||X - W H||_F^2 + l1_W sum(W) + l1_H sum(H) + 0.5 l2_W ||W||_F^2
    + 0.5 l2_H ||H||_F^2`` (or the KL divergence plus penalties) over ``W, H >= 0``.

    Parameters
    ----------
    X : array-like, np.memmap or h5py.Dataset, shape (P, T)
        Nonnegative data, pixels x frames. float32 stays float32, anything else is
        computed in float64. X is never modified. An ``h5py.Dataset`` or ``np.memmap``
        (or a ``memory_budget`` smaller than X) is streamed in blocks of rows (HALS only).
    rank : int
        Number of components K, ``1 <= K <= min(P, T)``.
    solver : {"hals", "mu", "als", "anls"}
        ``"hals"``: accelerated HALS with extrapolation (default, fastest). ``"mu"``:
        Lee-Seung multiplicative updates (the only one for KL). ``"als"``: projected
        alternating least squares (MATLAB nnmf 'als'; not monotone). ``"anls"``:
        alternating exact NNLS by block principal pivoting.
    beta_loss : {"frobenius", "kullback-leibler"}
    init : {"nndsvda", "nndsvd", "nndsvdar", "random"}
        "nndsvda" fills the zeros of NNDSVD with mean(X) for "mu", "als" and "anls"
        (as scikit-learn) and with mean(X)/100 for "hals", which keeps the sparse
        structure (17 instead of 42 iterations to scikit-learn's error in
        benchmarks/bench_nmf.py, as "nndsvd"). "nndsvd" is a poor start for "mu" (its
        zeros are lifted, see the mu solver). Ignored for the factor(s) given as
        W0/H0. With ``replicates > 1`` and a
        deterministic init ("nndsvd", "nndsvda"), replicate 0 uses it and the others
        start from "random" (as MATLAB's nnmf does); "random" and "nndsvdar" replicates
        each use their own seed.
    replicates : int
        Number of starts; the one with the lowest ``rel_error`` is returned.
    max_iter : int
        Iterations per replicate.
    tol : float
        Stop when the relative decrease of the objective over one iteration is below tol.
    random_state : int, numpy.random.SeedSequence or None
        Replicate seeds are ``SeedSequence(random_state).spawn(replicates)``, so the
        result does not depend on ``n_jobs``.
    l1_W, l1_H, l2_W, l2_H : float
        Penalties (>= 0), all solvers.
    W0 : array (P, K), optional; H0 : array (K, T), optional
        Starting factors for replicate 0 (the other factor, if missing, is the
        nonnegative least-squares fit to the given one).
    W_support : bool array (P, K), optional
        W entries outside the mask are held at 0 (local NMF).
    normalize : {None, "footprints_max", "H_max", "unit_norm"}
        Rescaling applied to the result, see :func:`normalize_factors`.
    order : {None, "energy"}
        Ordering applied after normalization, see :func:`order_components`.
    n_jobs : int
        Threads running replicates in parallel (-1: one per core); BLAS threads per
        worker are limited so that workers x threads <= cores.
    backend : {"numpy", "torch", "cupy"}
        "torch"/"cupy" run HALS on the GPU if present (needs the package installed).
    memory_budget : int, optional
        Bytes allowed for the fit; if X is larger, X is streamed in row blocks.
        Default for out-of-core X: 2 GiB.
    callback : callable(iteration, W, H, rel_error) -> bool, optional
        Called after every iteration of every replicate (from worker threads if
        ``n_jobs > 1``); return True to stop that replicate.
    verbose : bool
    compress : None, "auto" or int
        HALS only (numpy backend). An int ``o >= 1`` first runs HALS on a randomized
        compression ``Q Q^T X`` of X (range ``K + o``, 2 power iterations; Erichson et al.
        2018), whose iterations do not touch X, then full-data HALS until ``tol``, so the
        result is a full-data HALS solution. The same sketch gives the NNDSVD start.
        ``"auto"``: ``o = max(20, K)`` when ``min(P, T) >= 8 (K + o)``, else off.
        None (default): off. ``loss_history`` and the callback's error during the
        compressed iterations are estimates (see ``caimg_nmf.nmf.compressed``).
        About 3x faster to scikit-learn's error in benchmarks/bench_nmf.py.

    Returns
    -------
    NMFResult
        ``W`` (P, K), ``H`` (K, T), ``rel_error``, ``n_iter``, ``converged``,
        ``loss_history``, ``elapsed``, ``replicate_errors``, ``replicate_seeds``,
        ``best_replicate``, ``solver``, ``init``.

    Raises
    ------
    InputError
        Invalid X or argument (the message names the argument).
    MemoryBudgetError
        ``memory_budget`` cannot hold even the factors.

    Warns
    -----
    ConvergenceWarning
        The kept replicate hit ``max_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> from caimg_nmf.nmf import nmf
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((100, 4)) @ rng.random((4, 200))
    >>> res = nmf(X, 4, random_state=0, tol=1e-6, max_iter=2000)
    >>> res.W.shape, res.H.shape
    ((100, 4), (4, 200))
    >>> bool(res.rel_error < 1e-2)
    True
    """
    return _nmf(X, rank, solver=solver, beta_loss=beta_loss, init=init, replicates=replicates,
                max_iter=max_iter, tol=tol, random_state=random_state, l1_W=l1_W, l1_H=l1_H,
                l2_W=l2_W, l2_H=l2_H, W0=W0, H0=H0, W_support=W_support, normalize=normalize,
                order=order, n_jobs=n_jobs, backend=backend, memory_budget=memory_budget,
                callback=callback, verbose=verbose, compress=compress)


def _make_solver(name, source, W, H, norm_sq, pen, support, threads, beta_loss, options):
    if name == "hals":
        from ._hals import HALSSolver
        return HALSSolver(source, W, H, norm_sq=norm_sq, W_support=support, threads=threads,
                          **pen, **options)
    X = source.X
    if name == "mu":
        from ._mu import MUSolver
        return MUSolver(X, W, H, norm_sq=norm_sq, beta_loss=beta_loss, W_support=support,
                        threads=threads, **pen)
    if name == "als":
        from ._als import ALSSolver
        return ALSSolver(X, W, H, norm_sq=norm_sq, W_support=support, threads=threads, **pen)
    from ._anls import ANLSSolver
    return ANLSSolver(X, W, H, norm_sq=norm_sq, W_support=support, threads=threads, **pen)


def _nmf(X, rank, *, solver, beta_loss, init, replicates, max_iter, tol, random_state, l1_W,
         l1_H, l2_W, l2_H, W0, H0, W_support, normalize, order, n_jobs, backend, memory_budget,
         callback, verbose, compress=None, solver_options=None, stacklevel=4):
    t0 = time.perf_counter()
    validate_params(dict(rank=rank, solver=solver, beta_loss=beta_loss, init=init,
                         replicates=replicates, max_iter=max_iter, tol=tol,
                         random_state=random_state, l1_W=l1_W, l1_H=l1_H, l2_W=l2_W, l2_H=l2_H,
                         normalize=normalize, order=order, n_jobs=n_jobs, backend=backend,
                         memory_budget=memory_budget, callback=callback, verbose=verbose,
                         compress=compress))
    X, dtype, kind = check_X(X)
    rank = int(rank)
    source = RowSource(X, dtype, rank, memory_budget, kind, checked=kind is None)
    check_cross(shape=source.shape, rank=rank, solver=solver, beta_loss=beta_loss, W0=W0, H0=H0,
                W_support=W_support, backend=backend, streamed=source.streamed)
    if compress is not None and (solver != "hals" or backend != "numpy"):
        if compress != "auto":
            raise InputError(f"compress needs solver='hals' and backend='numpy'; got "
                             f"solver={solver!r}, backend={backend!r}. Pass compress=None.") from None
        compress = None
    over = _compressed.oversampling(compress, source.shape, rank)
    support = None if W_support is None else np.asarray(W_support, dtype=bool)
    norm_sq, _mean = source.stats()
    if norm_sq == 0:
        raise InputError("X is all zeros: there is nothing to factorize. Check the input "
                         "(e.g. the movie was read correctly).") from None
    ss = random_state if isinstance(random_state, np.random.SeedSequence) \
        else np.random.SeedSequence(random_state)
    seeds = np.array([c.generate_state(1)[0] for c in ss.spawn(replicates)], dtype=np.uint32)
    pen = dict(l1_W=l1_W, l1_H=l1_H, l2_W=l2_W, l2_H=l2_H)
    options = dict(solver_options or {})
    cores = _fit.n_cores()
    n_jobs = cores if n_jobs in (None, -1) else int(n_jobs)
    n_jobs = max(1, min(n_jobs, replicates))

    if backend != "numpy":
        from .backends import fit_backend
        fit_one = fit_backend(backend)
    else:
        fit_one = None

    fill = HALS_NNDSVDA_FILL if solver == "hals" else 1.0

    def one(i, threads):
        rng = np.random.default_rng(int(seeds[i]))
        custom = i == 0 and (W0 is not None or H0 is not None)
        method = init if (i == 0 or init in ("random", "nndsvdar")) else "random"
        sketch = None if over is None else range_sketch(source, rank + over, seed=int(seeds[i]),
                                                        threads=threads)
        W, H = initialize(source, rank, method, rng, W0=W0 if custom else None,
                          H0=H0 if custom else None, W_support=support,
                          threads=threads, nndsvda_fill=fill, sketch=sketch)
        used = "custom" if custom else method
        if over is not None:
            kw = dict(W_support=support, threads=threads, **pen, **options)
            out = _compressed.fit(source, *sketch, W, H, norm_sq=norm_sq, max_iter=max_iter,
                                  tol=tol, callback=callback, verbose=verbose, solver_kw=kw)
        elif fit_one is not None:
            out = fit_one(source, W, H, norm_sq=norm_sq, max_iter=max_iter, tol=tol,
                          callback=callback, verbose=verbose, support=support, **pen)
        else:
            slv = _make_solver(solver, source, W, H, norm_sq, pen, support, threads,
                               beta_loss, options)
            out = _fit.run(slv, norm_X=np.sqrt(norm_sq), max_iter=max_iter, tol=tol,
                           callback=callback, verbose=verbose, warn=False)
        W = np.ascontiguousarray(out.W)
        return out, W, np.array(out.H, copy=True), used

    if n_jobs == 1:
        threads = _fit.ThreadPolicy()
        outs = [one(i, threads) for i in range(replicates)]
    else:
        threads = _fit.ThreadPolicy(fixed=True)
        with _fit.blas_limit(max(1, cores // n_jobs)), ThreadPoolExecutor(n_jobs) as pool:
            outs = list(pool.map(lambda i: one(i, threads), range(replicates)))
    errs = np.array([o[0].rel_error for o in outs])
    best = int(np.argmin(errs))
    out, W, H, used = outs[best]
    with _fit.ThreadPolicy().products():
        out.rel_error = exact_rel_error(source, W, H, norm_sq)
    if not out.converged and not out.stopped_by_callback:
        _fit.warn_not_converged(max_iter, tol, out.rel_error, stacklevel=stacklevel)
    if normalize is not None:
        W, H = normalize_factors(W, H, normalize)
    if order is not None:
        W, H, _ = order_components(W, H, order)
    return NMFResult(W=W, H=H, rel_error=float(out.rel_error), n_iter=int(out.n_iter),
                     converged=bool(out.converged), loss_history=out.loss_history,
                     elapsed=time.perf_counter() - t0, replicate_errors=errs,
                     replicate_seeds=seeds, best_replicate=best, solver=solver, init=used)
