"""The local HALS fit of :func:`caimg_nmf.stages.detect.find_cells`, tile by tile, with each cell's
footprint kept in a (2 ri + 1)^2 window around its centre (never a dense (K, H, W) array)."""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from .._process import die_with_parent

__all__ = ["fit_cells", "tents", "residual", "windows_to_dense", "squared_radius", "overlap_slices",
           "shift_window", "resolve_n_jobs"]


def resolve_n_jobs(n_jobs: int) -> int:
    """``n_jobs``, or for 0 the number of BLAS threads this process may use: all its cores, or the
    share a batch worker was given (``batch.blas_threads``), so that batch runs do not oversubscribe."""
    if n_jobs > 0:
        return int(n_jobs)
    from threadpoolctl import threadpool_info
    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min([cores] + blas))


def squared_radius(ri):
    """(w, w) int array, w = 2 ri + 1: squared distance of each window pixel from the window's centre."""
    yy, xx = np.mgrid[-ri:ri + 1, -ri:ri + 1]
    return yy ** 2 + xx ** 2


def overlap_slices(w, dy, dx):
    """Where two (w, w) windows overlap when the second's centre is (dy, dx) from the first's:
    ``(rows, cols)`` in the first and ``(rows, cols)`` in the second, or None when they do not."""
    if abs(dy) >= w or abs(dx) >= w:
        return None
    first = slice(max(dy, 0), w + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    second = slice(max(-dy, 0), w + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    return first, second


def shift_window(window, dy, dx):
    """A (w, w) window's content seen from a window centred (dy, dx) pixels from its own centre;
    what falls outside is lost."""
    out = np.zeros_like(window)
    both = overlap_slices(window.shape[0], dy, dx)
    if both is not None:
        out[both[1]] = window[both[0]]
    return out


def _hals_H(H, WtX, WtW, sweeps):
    """HALS sweeps over the rows of H (exact nonnegative coordinate updates)."""
    for _ in range(sweeps):
        for k in range(H.shape[0]):
            if WtW[k, k] <= 0:
                continue
            H[k] = np.maximum(0.0, H[k] + (WtX[k] - WtW[k] @ H) / WtW[k, k])
    return H


def upsample_traces(traces_b, b, T):
    """(K, T) float32 traces at the full rate from (K, Tb) time-binned ones (bins of ``b`` frames): each
    value repeated over its bin; frames after the last whole bin take its value."""
    out = np.repeat(np.asarray(traces_b, np.float32), b, axis=1)[:, :T]
    if out.shape[1] < T:
        last = out[:, -1:] if out.shape[1] else np.zeros((out.shape[0], 1), np.float32)
        out = np.concatenate([out, np.repeat(last, T - out.shape[1], axis=1)], axis=1)
    return np.ascontiguousarray(out)


#: bytes of full-rate tile frames (and their per-cell copies) held at a time by the trace refit
TRACE_CHUNK_BYTES = 256 * 1024**2


def _fit_tile(Xt_b, read_frames, T, W, supports, n_iter, n_trace_iter, b, trace_exclude=None):
    """Local HALS on one tile.

    Xt_b : (Tb, P) time-binned tile; read_frames(t0, t1) : the full-rate tile's frames t0..t1 as a
        (t1 - t0, P) array; T : their number. The traces at the full rate are refitted in chunks of
        frames (each frame's trace values depend only on that frame once the footprints are fixed),
        so a long recording never has its whole full-rate tile in memory.
    W : (P, K) initial footprints; the first ``len(supports)`` columns are cells, each nonzero only
        on the pixel indices ``supports[k]``; the other columns are fixed background tents.
    trace_exclude : (K,) bool or None: columns left out of the full-rate trace refit (their full-rate
        trace is 0; they took part in the binned fit).
    Returns (W, H binned, H at full rate).
    """
    ncell = len(supports)
    K = W.shape[1]
    blocks = [Xt_b[:, sup] for sup in supports]
    tents_ = np.ascontiguousarray(W[:, ncell:])
    tent_WtX = (Xt_b @ tents_).T
    tent_gram = tents_.T @ tents_

    def gram(W):
        G = np.zeros((K, K), np.float32)
        G[ncell:, ncell:] = tent_gram
        for k, sup in enumerate(supports):
            v = W[sup].T @ W[sup, k]
            G[k, :] = v
            G[:, k] = v
        return G

    def wtx(W, blocks, tent_part):
        out = np.empty((K, tent_part.shape[1]), np.float32)
        for k, (sup, blk) in enumerate(zip(supports, blocks)):
            out[k] = blk @ W[sup, k]
        out[ncell:] = tent_part
        return out

    H = np.zeros((K, Xt_b.shape[0]), np.float32)
    WtW = gram(W)
    H = _hals_H(H, wtx(W, blocks, tent_WtX), WtW, 3)
    for _ in range(n_iter):
        HHt = H @ H.T
        for k, (sup, blk) in enumerate(zip(supports, blocks)):
            if HHt[k, k] <= 0:
                continue
            col = W[sup, k] + (H[k] @ blk - W[sup] @ HHt[:, k]) / HHt[k, k]
            W[sup, k] = np.maximum(col, 0.0)
        peak = W[:, :ncell].max(axis=0) if ncell else np.zeros(0, np.float32)
        peak[peak <= 0] = 1.0
        W[:, :ncell] /= peak
        H[:ncell] *= peak[:, None]
        WtW = gram(W)
        H = _hals_H(H, wtx(W, blocks, tent_WtX), WtW, 2)
    Hf = upsample_traces(H, b, T)
    if trace_exclude is not None and trace_exclude.any():
        out = np.flatnonzero(trace_exclude)
        Hf[out] = 0.0
        WtW[out, out] = 0.0   # _hals_H skips these rows; at 0 they explain nothing (WtW is not used after)
    if n_trace_iter:
        copies = 1 + sum(len(sup) for sup in supports) / max(1, W.shape[0])   # the tile + per-cell blocks
        chunk = max(64, int(TRACE_CHUNK_BYTES / (4 * W.shape[0] * copies)))
        for t0 in range(0, T, chunk):
            Xc = read_frames(t0, min(T, t0 + chunk))
            full_blocks = [Xc[:, sup] for sup in supports]
            Hf[:, t0:t0 + chunk] = _hals_H(np.ascontiguousarray(Hf[:, t0:t0 + chunk]),
                                           wtx(W, full_blocks, (Xc @ tents_).T), WtW, n_trace_iter)
    return W, H, Hf


def tents(H, W, spacing):
    """Bilinear tent functions on a grid covering the frame: 1-D profiles py (ny, H), px (nx, W);
    tent (i, j) = py[i][:, None] * px[j][None, :]."""
    ny = max(2, int(np.ceil((H - 1) / spacing)) + 1)
    nx = max(2, int(np.ceil((W - 1) / spacing)) + 1)
    ys = np.linspace(0, H - 1, ny)
    xs = np.linspace(0, W - 1, nx)
    gy, gx = ys[1] - ys[0], xs[1] - xs[0]
    py = np.clip(1 - np.abs(np.arange(H)[None, :] - ys[:, None]) / gy, 0, None).astype(np.float32)
    px = np.clip(1 - np.abs(np.arange(W)[None, :] - xs[:, None]) / gx, 0, None).astype(np.float32)
    return py, px


def _clip_box(c, ri, n):
    """Window [c - ri, c + ri] clipped to [0, n): (frame start, frame stop, window start)."""
    a0, a1 = max(c - ri, 0), min(c + ri + 1, n)
    return a0, a1, a0 - (c - ri)


def windows_to_dense(win, centres, ri, shape, out=None):
    """(K, H, W) float32 footprints from (K, w, w) windows centred at ``centres``."""
    K = win.shape[0]
    H, W = shape
    out = np.zeros((K, H, W), np.float32) if out is None else out
    for k in range(K):
        a0, a1, wa = _clip_box(int(centres[k, 0]), ri, H)
        c0, c1, wc = _clip_box(int(centres[k, 1]), ri, W)
        out[k, a0:a1, c0:c1] = win[k, wa:wa + a1 - a0, wc:wc + c1 - c0]
    return out


def residual(Xb, win, centres, ri, traces_b, py, px, bg_b):
    """Xb minus the fitted cells and background (binned movie), as a new array."""
    Tb, H, W = Xb.shape
    R = Xb.copy()
    F = bg_b.reshape(py.shape[0], px.shape[0], Tb)
    for t0 in range(0, Tb, 32):
        R[t0:t0 + 32] -= np.einsum("iy,ijt,jx->tyx", py, F[:, :, t0:t0 + 32], px, optimize=True)
    for k in range(win.shape[0]):
        a0, a1, wa = _clip_box(int(centres[k, 0]), ri, H)
        c0, c1, wc = _clip_box(int(centres[k, 1]), ri, W)
        R[:, a0:a1, c0:c1] -= traces_b[k][:, None, None] * win[k, wa:wa + a1 - a0, wc:wc + c1 - c0][None]
    return R


def _solve_tile(X, Xb, centres, init, ri, py, px, disc, trace_exclude, origin, ts, n_iter, n_trace_iter, b,
                ring_inner):
    """Set up and fit the tile at ``origin`` (plus a margin of ri + 1 pixels): the cells whose window
    reaches into it, their neuropil rings (``ring_inner`` > 0) and the tents that are nonzero on it.
    Returns its geometry and fitted factors (columns: cells, tents, rings)."""
    T, H, W = X.shape
    Tb = Xb.shape[0]
    ty, tx = origin
    margin = ri + 1
    y0, y1 = max(0, ty - margin), min(H, ty + ts + margin)
    x0, x1 = max(0, tx - margin), min(W, tx + ts + margin)
    hh, ww = y1 - y0, x1 - x0
    if len(centres):
        idx = np.flatnonzero((centres[:, 0] >= y0 - ri) & (centres[:, 0] < y1 + ri) &
                             (centres[:, 1] >= x0 - ri) & (centres[:, 1] < x1 + ri))
    else:
        idx = np.zeros(0, int)
    iy = np.flatnonzero(py[:, y0:y1].max(axis=1) > 0)
    ix = np.flatnonzero(px[:, x0:x1].max(axis=1) > 0)
    nc, nb = len(idx), len(iy) * len(ix)
    Wt = np.zeros((hh, ww, nc + nb + (nc if ring_inner > 0 else 0)), np.float32)
    inside = np.zeros((hh, ww, nc), bool)
    parts = []
    for j, k in enumerate(idx):
        a0, a1, wa = _clip_box(int(centres[k, 0]), ri, H)
        c0, c1, wc = _clip_box(int(centres[k, 1]), ri, W)
        a0, a1, c0, c1 = max(a0, y0), min(a1, y1), max(c0, x0), min(c1, x1)
        wa, wc = a0 - (centres[k, 0] - ri), c0 - (centres[k, 1] - ri)
        in_tile = (slice(a0 - y0, a1 - y0), slice(c0 - x0, c1 - x0))
        in_win = (slice(wa, wa + a1 - a0), slice(wc, wc + c1 - c0))
        Wt[in_tile + (j,)] = init[k][in_win]
        inside[in_tile + (j,)] = disc[in_win]
        parts.append((in_tile, in_win))
    if ring_inner > 0:
        # each cell's local neuropil: a ring to the edge of its window, without the pixels of cells
        # (its own included), so that it cannot take up a neighbour. Components left out of the
        # traces (background) do not count as cells; their own rings are left out of the traces too
        cols = np.arange(nc) if trace_exclude is None else np.flatnonzero(~trace_exclude[idx])
        cells_px = (Wt[:, :, cols] >= 0.3).any(axis=2)
        r = np.sqrt(squared_radius(ri))
        ring = (r >= ring_inner * ri) & (r <= ri)
        for j, (in_tile, in_win) in enumerate(parts):
            Wt[in_tile + (nc + nb + j,)] = ring[in_win] & ~cells_px[in_tile]
    Wt = Wt.reshape(hh * ww, -1)
    inside = inside.reshape(hh * ww, -1)
    supports = [np.flatnonzero(inside[:, j]) for j in range(nc)]
    for a, i in enumerate(iy):
        for c, jx in enumerate(ix):
            Wt[:, nc + a * len(ix) + c] = np.outer(py[i, y0:y1], px[jx, x0:x1]).ravel()
    Xt_b = Xb[:, y0:y1, x0:x1].reshape(Tb, -1)
    def read_frames(t0, t1):
        return np.asarray(X[t0:t1, y0:y1, x0:x1], np.float32).reshape(t1 - t0, -1)

    excluded = None
    if trace_exclude is not None:   # the cells' columns, and their rings
        excluded = np.zeros(Wt.shape[1], bool)
        excluded[:nc] = trace_exclude[idx]
        if ring_inner > 0:
            excluded[nc + nb:] = trace_exclude[idx]
    Wt, Hb, Hf = _fit_tile(Xt_b, read_frames, T, Wt, supports, n_iter, n_trace_iter, b, excluded)
    return y0, x0, hh, ww, idx, iy, ix, Wt, Hb, Hf


_WORKER: dict = {}   # in a tile worker: the arrays of its pool's fit, inherited through fork (not copied)


def _start_tile_worker(args, settings):
    """Initializer of a forked tile worker: the fit's arrays come with the fork (initargs are not
    pickled by the fork start method), so each pool has its own even when threads fit at once; the
    worker asks Linux to end it when its parent dies (killed by the OOM killer, say)."""
    _WORKER.update(args=args, settings=settings)
    die_with_parent()


def _tile_in_worker(origin):
    with threadpool_limits(1, user_api="blas"):
        return _solve_tile(*_WORKER["args"], origin, *_WORKER["settings"])


def _use_processes(n_jobs) -> bool:
    # fork shares the movie without copying it; only on Linux (on macOS forking after system
    # libraries start threads can crash the child). A daemonic process (a dask worker, say) may not
    # start processes: it fits the tiles itself.
    return (n_jobs > 1 and sys.platform.startswith("linux")
            and not multiprocessing.current_process().daemon)


def _map_tiles(args, settings, origins, n_jobs):
    """Fitted tiles, in the order of ``origins``. Tiles are independent (each starts from the initial
    footprints), so with ``n_jobs`` > 1 they are fitted in forked worker processes that share the
    movie; the result does not depend on ``n_jobs``. Each fit uses single-threaded BLAS: on these
    small products it is faster than two BLAS threads (2.8 s vs 3.8 s for 500 cells, 2 cores)."""
    n_jobs = min(int(n_jobs), len(origins))
    if _use_processes(n_jobs):
        pool = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_tile_worker, initargs=(args, settings))
        finished = False
        try:
            yield from pool.map(_tile_in_worker, origins)
            finished = True
        finally:
            if not finished:   # interrupted or failed: stop the running tiles instead of waiting for them
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        return
    with threadpool_limits(1, user_api="blas"):
        for origin in origins:
            yield _solve_tile(*args, origin, *settings)


def fit_cells(X, Xb, centres, init, ri, py, px, *, tile_size, n_iter, n_trace_iter, b, n_jobs=1, on_tile=None,
              neuropil_ring=0.0, trace_exclude=None):
    """Fit footprints (in windows) and traces of the cells at ``centres`` with the background tents.

    init : (K, w, w) initial footprints in windows (w = 2 ri + 1), zero outside the disc of radius ri.
    n_jobs : tiles fitted at the same time (worker processes; 1: in this process).
    on_tile : callable(int), optional; called with 1 as each tile's fit is done (progress).
    neuropil_ring : > 0: each cell also gets a fixed ring footprint from ``neuropil_ring`` x ri to ri
        around its centre, minus the pixels where any cell's initial footprint is >= 0.3 of its peak
        (cells in ``trace_exclude`` do not count),
        with a free trace: the local neuropil, which otherwise makes footprints spread into a halo.
    trace_exclude : (K,) bool, optional: components (and their rings) fitted on the time-binned movie
        but left out of the full-rate trace refit (their full-rate trace is 0).
    Returns (win, traces (K, T), traces_b (K, Tb), bg (B, T), bg_b (B, Tb), neuropil (K, T) or None):
    ``neuropil`` is each ring's trace, fluorescence per ring pixel on top of the tents.
    """
    T, H, W = X.shape
    Tb = Xb.shape[0]
    K = len(centres)
    win = np.zeros_like(init)
    traces = np.zeros((K, T), np.float32)
    traces_b = np.zeros((K, Tb), np.float32)
    ny, nx = py.shape[0], px.shape[0]
    node_y = np.array([np.argmax(p) for p in py])
    node_x = np.array([np.argmax(p) for p in px])
    bg = np.zeros((ny * nx, T), np.float32)
    bg_b = np.zeros((ny * nx, Tb), np.float32)
    neuropil = np.zeros((K, T), np.float32) if neuropil_ring > 0 else None
    ts = tile_size
    disc = squared_radius(ri) <= ri * ri   # each footprint may be nonzero on this disc only
    origins = [(ty, tx) for ty in range(0, H, ts) for tx in range(0, W, ts)]

    args = (X, Xb, centres, init, ri, py, px, disc,
            None if trace_exclude is None else np.asarray(trace_exclude, bool))
    settings = (ts, n_iter, n_trace_iter, b, float(neuropil_ring))
    # the tiles' generator first: zip then runs it to its end (its pool is shut down there)
    for (y0, x0, hh, ww, idx, iy, ix, Wt, Hb, Hf), (ty, tx) in zip(_map_tiles(args, settings, origins, n_jobs), origins):
        nc, nb = len(idx), len(iy) * len(ix)
        if on_tile is not None:
            on_tile(1)
        for j, k in enumerate(idx):
            sy, sx = int(centres[k, 0]), int(centres[k, 1])
            if ty <= sy < ty + ts and tx <= sx < tx + ts:
                fp = Wt[:, j].reshape(hh, ww)
                wy0, wx0 = sy - ri, sx - ri
                a0, a1 = max(wy0, y0), min(wy0 + 2 * ri + 1, y0 + hh)
                c0, c1 = max(wx0, x0), min(wx0 + 2 * ri + 1, x0 + ww)
                win[k, a0 - wy0:a1 - wy0, c0 - wx0:c1 - wx0] = fp[a0 - y0:a1 - y0, c0 - x0:c1 - x0]
                traces[k] = Hf[j]
                traces_b[k] = Hb[j]
                if neuropil is not None:
                    neuropil[k] = Hf[nc + nb + j]
        for a, i in enumerate(iy):
            for c, jx in enumerate(ix):
                if ty <= node_y[i] < ty + ts and tx <= node_x[jx] < tx + ts:
                    bg[i * nx + jx] = Hf[nc + a * len(ix) + c]
                    bg_b[i * nx + jx] = Hb[nc + a * len(ix) + c]
    return win, traces, traces_b, bg, bg_b, neuropil
