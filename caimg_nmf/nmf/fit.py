"""The one convergence loop shared by every solver, and BLAS thread policy.

A solver object exposes ``step() -> (objective, err_sq, accepted)`` and the current
iterate as properties ``W`` (P, K) and ``H`` (K, T). :func:`run` owns the iteration
count, the loss history, the timing, the stopping rule (relative decrease of the
objective over one iteration below ``tol``), the user callback and the
:class:`ConvergenceWarning`.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .result import ConvergenceWarning

__all__ = ["run", "FitOutcome", "ThreadPolicy", "warn_not_converged", "n_cores", "run_ordered"]


def n_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


class ThreadPolicy:
    """Contexts that set BLAS threads: ``products()`` (all allowed cores) for the big
    X-sized products, ``sweeps()`` (one thread) for the small per-row updates, where
    multithreaded BLAS is 10-50x slower on few cores. ``fixed=True`` (parallel
    replicates) makes both no-ops: the caller has set the limit for the whole pool."""

    def __init__(self, fixed=False, product_threads=None):
        self.fixed = fixed
        self.product_threads = product_threads or n_cores()
        #: Python threads for chunked work (HALS W update); 1 when the caller parallelizes
        self.workers = 1 if fixed else self.product_threads

    def products(self):
        if self.fixed:
            return contextlib.nullcontext()
        return _controller().limit(limits=self.product_threads, user_api="blas")

    def sweeps(self):
        if self.fixed:
            return contextlib.nullcontext()
        return _controller().limit(limits=1, user_api="blas")


_POOL = None
_POOL_LOCK = threading.Lock()


def run_ordered(jobs, workers):
    """Results of the callables ``jobs``, in order, computed by up to ``workers`` threads.

    Each job should run single-threaded BLAS (the caller sets the limit): on a shared
    machine a pool pulling chunks keeps both cores busy when one is preempted, where one
    multithreaded BLAS call waits for its slowest thread. ``workers <= 1`` or a single
    job: run inline.
    """
    global _POOL
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield job()
        return
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(workers, thread_name_prefix="caimg_nmf")
        pool = _POOL
    futures = [pool.submit(job) for job in jobs]
    try:
        for fut in futures:
            yield fut.result()
    finally:
        for fut in futures:
            fut.cancel()


def blas_limit(n):
    """Context limiting BLAS to ``n`` threads (for a pool of parallel replicates)."""
    return _controller().limit(limits=max(1, int(n)), user_api="blas")


@dataclass
class FitOutcome:
    W: np.ndarray
    H: np.ndarray
    objective: float
    rel_error: float
    n_iter: int
    converged: bool
    stopped_by_callback: bool
    loss_history: np.ndarray
    times: np.ndarray
    elapsed: float


def warn_not_converged(max_iter, tol, rel_error, stacklevel=3):
    warnings.warn(
        f"NMF stopped at max_iter={max_iter} before the relative decrease of the objective fell "
        f"below tol={tol:g} (rel_error={rel_error:.4g}). Increase max_iter or tol, or try "
        "another init.", ConvergenceWarning, stacklevel=stacklevel)


def run(solver, *, norm_X, max_iter, tol, callback=None, verbose=False, warn=True):
    """Iterate ``solver`` until convergence, ``max_iter`` or the callback says stop.

    Parameters
    ----------
    solver : object with ``step()``, ``W``, ``H``
    norm_X : float
        ``||X||_F`` (for ``rel_error = sqrt(err_sq) / norm_X``).
    max_iter : int
    tol : float
        Stop when ``(obj_prev - obj) <= tol * obj_prev`` after an accepted step.
    callback : callable(iteration, W, H, rel_error) -> bool, optional
        Called after every iteration; returning True stops the fit.
    warn : bool
        Emit :class:`ConvergenceWarning` when ``max_iter`` ends the fit.
    """
    t0 = time.perf_counter()
    hist = np.empty(max_iter)
    times = np.empty(max_iter)
    denom = max(float(norm_X), np.finfo(float).tiny)
    prev = np.inf
    converged = by_cb = False
    obj = rel = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        obj, err_sq, accepted = solver.step()
        rel = np.sqrt(max(float(err_sq), 0.0)) / denom
        hist[it - 1] = rel
        times[it - 1] = time.perf_counter() - t0
        if verbose and (it == 1 or it % 10 == 0):
            print(f"[nmf] iter {it:5d}  rel_error {rel:.6g}  objective {obj:.6g}"
                  + ("" if accepted else "  (extrapolation rejected)"))
        if callback is not None and callback(it, solver.W, solver.H, rel):
            by_cb = True
            break
        if accepted:
            if obj <= 0 or (np.isfinite(prev) and (prev - obj) <= tol * prev):
                converged = True
                break
            prev = obj
    elapsed = time.perf_counter() - t0
    if not converged and not by_cb and warn:
        warn_not_converged(max_iter, tol, rel)
    return FitOutcome(solver.W, solver.H, float(obj), float(rel), it, converged, by_cb,
                      hist[:it].copy(), times[:it].copy(), elapsed)
