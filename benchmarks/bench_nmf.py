"""Benchmark: caimg_nmf HALS vs scikit-learn NMF(solver="cd") on a calcium-like matrix.

A script, not a test. Builds X (16384 pixels x 3000 frames, K = 40, float32: sparse
planted footprints, sparse nonnegative calcium traces, a smooth background and noise),
runs scikit-learn's coordinate descent (init="nndsvda", tol=1e-4) and caimg_nmf in the
same process, and reports the time caimg_nmf needs to reach scikit-learn's final
relative error, the ratio, time per iteration against the two big products, and peak
memory (tracemalloc, numpy allocations).

Usage::

    python benchmarks/bench_nmf.py            # both
    python benchmarks/bench_nmf.py --no-sklearn --target 0.123   # caimg_nmf only
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def make_data(P_side=128, T=3000, K=40, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:P_side, :P_side]
    W = np.zeros((P_side * P_side, K))
    for k in range(K):
        cy, cx = rng.uniform(6, P_side - 6, 2)
        r = rng.uniform(3, 6)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        W[:, k] = (np.exp(-d2 / (2 * (r / 2) ** 2)) * (d2 < r * r)).ravel()
    spikes = (rng.random((K, T)) < 0.01) * rng.uniform(0.5, 2.0, (K, T))
    kernel = np.exp(-np.arange(60) / 15.0)
    H = np.array([np.convolve(s, kernel)[:T] for s in spikes])
    bg_img = 0.2 + 0.1 * np.exp(-(((yy - 64) ** 2 + (xx - 64) ** 2) / 4000.0)).ravel()
    bg_t = 1 + 0.05 * np.sin(np.arange(T) / 300.0)
    X = W @ H + np.outer(bg_img, bg_t) + 0.05 * rng.standard_normal((P_side * P_side, T))
    np.maximum(X, 0, out=X)
    return X.astype(dtype)


def machine():
    from threadpoolctl import threadpool_info
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer', '')}, "
            f"{i.get('num_threads')} threads)" for i in threadpool_info() if i.get("user_api") == "blas"]
    return (f"CPU: {cpu}; cores available: {len(os.sched_getaffinity(0))}; numpy {np.__version__}; "
            f"BLAS: {'; '.join(blas)}; python {platform.python_version()}")


def product_time(X, K, reps=5):
    rng = np.random.default_rng(1)
    W = rng.random((X.shape[0], K), dtype=np.float32)
    H = rng.random((K, X.shape[1]), dtype=np.float32)
    X @ H.T
    t = time.perf_counter()
    for _ in range(reps):
        X @ H.T
        X.T @ W
    return (time.perf_counter() - t) / reps


def run_sklearn(X, K, max_iter):
    from sklearn.decomposition import NMF as SKNMF
    nx = np.linalg.norm(X)
    tracemalloc.start()
    t = time.perf_counter()
    m = SKNMF(K, solver="cd", init="nndsvda", tol=1e-4, max_iter=max_iter, random_state=0)
    W = m.fit_transform(X)
    el = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rel = float(np.linalg.norm(X - W @ m.components_) / nx)
    return el, rel, m.n_iter_, peak


def run_caimg(X, K, target, max_iter, tol, init):
    from caimg_nmf.nmf import nmf
    hits = []

    def cb(it, W, H, rel):
        hits.append((time.perf_counter(), rel))
        return False

    tracemalloc.start()
    t0 = time.perf_counter()
    res = nmf(X, K, init=init, max_iter=max_iter, tol=tol, callback=cb, random_state=0)
    el = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t_hit = next((tt - t0 for tt, r in hits if r <= target), None) if target else None
    it_hit = next((i + 1 for i, (tt, r) in enumerate(hits) if r <= target), None) if target else None
    per_iter = np.diff([h[0] for h in hits]).mean() if len(hits) > 2 else float("nan")
    first = hits[0][0] - t0 if hits else float("nan")
    return res, el, peak, t_hit, it_hit, per_iter, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--target", type=float, default=None, help="rel_error target without sklearn")
    ap.add_argument("--sk-max-iter", type=int, default=400)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--inits", default="nndsvd,nndsvda",
                    help="caimg_nmf inits to time (comma-separated); nndsvd suits HALS best")
    a = ap.parse_args()
    K = 40
    X = make_data(K=K)
    print(machine())
    print(f"date: {time.strftime('%Y-%m-%d')}; X {X.shape} {X.dtype} ({X.nbytes / 1e6:.0f} MB), K={K}")
    tp = product_time(X, K)
    print(f"two big products X@H.T + X.T@W: {tp * 1e3:.1f} ms")
    target = a.target
    if not a.no_sklearn:
        el, rel, nit, peak = run_sklearn(X, K, a.sk_max_iter)
        print(f"scikit-learn cd: {el:.2f} s, {nit} iterations, rel_error {rel:.6f}, "
              f"peak numpy memory {peak / 1e6:.0f} MB ({peak / X.nbytes:.2f} x X)")
        target = rel
    for init in a.inits.split(","):
        res, el_c, peak, t_hit, it_hit, per_iter, first = run_caimg(X, K, target, a.max_iter,
                                                                    a.tol, init)
        print(f"caimg_nmf hals init={init}: {el_c:.2f} s total, {res.n_iter} iterations, "
              f"rel_error {res.rel_error:.6f}, init+first iteration {first:.2f} s, "
              f"{per_iter * 1e3:.1f} ms/iteration ({per_iter / tp:.2f} x the two products), "
              f"peak numpy memory beyond X {peak / 1e6:.0f} MB (limit 2(W+H) + 64 MB = "
              f"{2 * 4 * K * sum(X.shape) / 1e6 + 64:.0f} MB)")
        if target is None:
            continue
        if t_hit is None:
            print(f"  did not reach target rel_error {target:.6f}")
            continue
        print(f"  time to reach rel_error {target:.6f}: {t_hit:.2f} s (iteration {it_hit})")
        if not a.no_sklearn:
            print(f"  ratio caimg_nmf / scikit-learn: {t_hit / el:.3f} (speed-up {el / t_hit:.1f}x)")


if __name__ == "__main__":
    main()
