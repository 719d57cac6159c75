"""Find cells: seeds from summary images, then a local NMF with windowed footprints.

Model (raw fluorescence, no baseline subtracted)::

    X(p, t) ~= sum_k a_k(p) c_k(t)  +  sum_j b_j(p) f_j(t)

* ``a_k``: the footprint of cell k, nonnegative, nonzero only within ``window_radius`` cell
  diameters of its seed, scaled so that its peak is 1; ``c_k`` is then the cell's fluorescence at
  its peak pixel in movie units (resting level included, neuropil excluded).
* ``b_j``: fixed, smooth bilinear "tent" functions on a grid (spacing ``background_spacing``
  diameters; together they sum to 1 everywhere) with free nonnegative traces ``f_j``. They carry
  the neuropil, the diffuse background and bleaching. Being smooth, they cannot take over a
  cell-sized blob, which is what keeps the factorization from finding background instead of cells.

Steps: (1) average frames to about ``summary_rate`` Hz; (2) high-pass each frame (minus a wide box
blur), compute the local correlation image and the peak-to-noise image; (3) seeds = local maxima
of corr x PNR, at least ``seed_separation`` diameters apart, above ``min_corr`` and ``min_pnr``;
(4) fit the model by HALS (alternating exact coordinate updates) tile by tile on the binned movie;
(5) refit the traces at the full frame rate. Each tile is small and dense, so the HALS runs on
plain BLAS products; the general solver in :mod:`caimg_nmf.nmf` would need dense (pixels x
components) footprints over the whole frame, which for 512 x 512 pixels and ~800 components is
1.6 GB and 20x the work, hence this local specialised update.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError

__all__ = ["Detection", "find_cells", "estimate_cell_diameter", "summary_images", "bin_time"]


@dataclass
class Detection:
    """Result of :func:`find_cells` (and of :func:`caimg_nmf.stages.curate.curate`)."""
    footprints: np.ndarray            # (K, H, W) float32, each with max 1
    traces: np.ndarray                # (K, T) float32, movie units (fluorescence at the footprint peak)
    background_footprints: np.ndarray  # (B, H, W) float32
    background_traces: np.ndarray     # (B, T) float32
    baseline: np.ndarray              # (H, W) float32 static per-pixel offset (zeros: not modelled)
    neuropil_traces: Optional[np.ndarray]
    correlation_image: np.ndarray     # (H, W)
    pnr_image: Optional[np.ndarray]   # (H, W)
    rejected_footprints: np.ndarray   # (R, H, W)
    rejected_traces: np.ndarray       # (R, T)
    rejected_reasons: list = field(default_factory=list)
    cell_diameter: float = 0.0
    seeds: Optional[np.ndarray] = None  # (K, 2) row, col of each cell's seed
    info: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.footprints.shape[0])


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------

def _check_movie(movie) -> np.ndarray:
    arr = np.asarray(movie)
    if arr.ndim != 3:
        raise InputError(f"find_cells needs a movie of shape (frames, height, width); got shape "
                         f"{arr.shape}.") from None
    T, H, W = arr.shape
    if T < 10 or H < 8 or W < 8:
        raise InputError(f"movie of shape {arr.shape} is too small to find cells: need at least 10 "
                         "frames and 8 x 8 pixels.") from None
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr[:: max(1, T // 50)]).all():
        raise InputError("the movie contains NaN or infinite values; fill or crop them before "
                         "finding cells.") from None
    return arr


def bin_time(X: np.ndarray, b: int) -> np.ndarray:
    """Average groups of ``b`` consecutive frames (the last incomplete group is dropped)."""
    if b <= 1:
        return X.astype(np.float32, copy=True)
    Tb = X.shape[0] // b
    out = np.zeros((Tb,) + X.shape[1:], np.float32)
    for i in range(b):
        out += X[i: Tb * b: b]
    out /= b
    return out


def _box_blur(Y: np.ndarray, size: int) -> np.ndarray:
    """Two passes of a box filter over the last two axes (close to a Gaussian, cost independent of size)."""
    out = Y
    for ax in (-2, -1):
        out = ndi.uniform_filter1d(out, size, axis=ax, mode="reflect")
        out = ndi.uniform_filter1d(out, size, axis=ax, mode="reflect")
    return out


def _noise_std(Y: np.ndarray) -> np.ndarray:
    """Per-pixel noise from successive differences (robust: median absolute deviation)."""
    d = np.abs(np.diff(Y, axis=0))
    return (np.median(d, axis=0) / (0.6745 * np.sqrt(2))).astype(np.float32) + 1e-6


def _local_corr(Z: np.ndarray) -> np.ndarray:
    """Mean correlation of each pixel's trace with its 8 neighbours. Z is modified (standardised)."""
    T, H, W = Z.shape
    Z -= Z.mean(axis=0)
    Z /= np.sqrt((Z ** 2).mean(axis=0)) + 1e-9
    acc = np.zeros((H, W), np.float32)
    cnt = np.zeros((H, W), np.float32)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ya, yb = slice(0, H - dy), slice(dy, H)
        xa, xb = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
        c = np.einsum("tij,tij->ij", Z[:, ya, xa], Z[:, yb, xb]) / T
        acc[ya, xa] += c
        cnt[ya, xa] += 1
        acc[yb, xb] += c
        cnt[yb, xb] += 1
    return acc / np.maximum(cnt, 1)


def summary_images(Xb: np.ndarray, diameter: float, baseline_percentile: float = 10.0):
    """Correlation and peak-to-noise images of a time-binned raw movie.

    Each pixel's resting level (a low percentile over time) is subtracted; each frame is high-passed
    (minus a wide box blur, about 2.5 diameters) so that neuropil and diffuse background do not make
    every pixel correlated, then smoothed over about half a diameter (cells are blobs; noise is not).
    Returns ``(corr, pnr, valid)``; ``valid`` is False where the mean image is dark padding (e.g.
    left by motion correction) and near it.
    """
    T = Xb.shape[0]
    step = max(1, T // 150)
    f0 = np.percentile(Xb[::step], baseline_percentile, axis=0).astype(np.float32)
    mean_image = Xb.mean(axis=0)
    Y = Xb - f0
    Y -= _box_blur(Y, max(3, int(round(2.5 * diameter)) | 1))
    sm = max(1, int(round(diameter / 2)) | 1)
    if sm > 1:
        Y = _box_blur(Y, sm)
    Ys = ndi.uniform_filter1d(Y, 2, axis=0)
    pnr = (Ys.max(axis=0) - np.median(Ys, axis=0)) / _noise_std(Ys)
    del Ys
    corr = _local_corr(Y)
    bright = mean_image > 0.2 * np.median(mean_image)
    valid = ndi.binary_erosion(bright, iterations=max(1, int(round(diameter / 2))), border_value=1)
    return corr.astype(np.float32), pnr.astype(np.float32), valid


def estimate_cell_diameter(image: np.ndarray, lo: float = 4.0, hi: float = 30.0) -> float:
    """Cell diameter (pixels) from the blob scale of an activity image (e.g. corr x PNR).

    Scale-normalised Laplacian of Gaussian: the sigma whose strongest 30 blob responses are
    largest on average; a disc of diameter d matches sigma = d / (2 sqrt 2).
    """
    img = image.astype(np.float32)
    img = img - np.median(img)
    best, best_d = -np.inf, (lo + hi) / 2
    for d in np.arange(lo, hi + 0.01, 1.0):
        s = d / (2 * np.sqrt(2))
        L = -s * s * ndi.gaussian_laplace(img, s)
        mx = ndi.maximum_filter(L, size=max(3, int(d)))
        peaks = L[(L == mx) & (L > 0)]
        if peaks.size == 0:
            continue
        score = np.sort(peaks)[-30:].mean()
        if score > best:
            best, best_d = score, d
    return float(best_d)


def find_seeds(corr, pnr, diameter, *, min_corr, min_pnr, separation, max_cells=0, valid=None):
    """Local maxima of the correlation image, best first, at least ``separation`` diameters apart,
    with corr >= min_corr and PNR >= min_pnr."""
    from skimage.feature import peak_local_max
    score = corr.copy()
    if valid is not None:
        score[~valid] = -1.0
    md = max(1, int(round(separation * diameter)))
    border = max(1, int(round(diameter / 4)))
    pk = peak_local_max(score, min_distance=md, exclude_border=border)
    if pk.size == 0:
        return np.zeros((0, 2), int)
    ok = (corr[pk[:, 0], pk[:, 1]] >= min_corr) & (pnr[pk[:, 0], pk[:, 1]] >= min_pnr)
    pk = pk[ok]
    pk = pk[np.argsort(-score[pk[:, 0], pk[:, 1]], kind="stable")]
    if max_cells:
        pk = pk[:max_cells]
    return pk


# ----------------------------------------------------------------------------------------------
# Local HALS on one tile
# ----------------------------------------------------------------------------------------------

def _hals_H(H, WtX, WtW, sweeps):
    """HALS sweeps over the rows of H (exact nonnegative coordinate updates)."""
    for _ in range(sweeps):
        for k in range(H.shape[0]):
            if WtW[k, k] <= 0:
                continue
            H[k] = np.maximum(0.0, H[k] + (WtX[k] - WtW[k] @ H) / WtW[k, k])
    return H


def _fit_tile(Xt_b, Xt, W, supports, n_iter, n_trace_iter, b):
    """Local HALS on one tile.

    Xt_b : (Tb, P) time-binned tile; Xt : (T, P) full-rate tile.
    W : (P, K) initial footprints; the first ``len(supports)`` columns are cells, each nonzero only
        on the pixel indices ``supports[k]``; the other columns are fixed background tents.
    Each cell's data block ``Xt_b[:, support]`` is gathered once, so an iteration costs about
    (pixels in the windows) x frames, not (tile pixels) x frames x components.
    Returns (W, H at full rate).
    """
    ncell = len(supports)
    K = W.shape[1]
    blocks = [Xt_b[:, sup] for sup in supports]
    tents = np.ascontiguousarray(W[:, ncell:])
    tent_WtX = (Xt_b @ tents).T
    tent_gram = tents.T @ tents

    def gram(W):
        """W.T @ W using the window supports (the dense product would dominate the cost)."""
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
    # traces at the full frame rate, started from the binned ones
    T = Xt.shape[0]
    Hf = np.repeat(H, b, axis=1)[:, :T]
    if Hf.shape[1] < T:
        Hf = np.concatenate([Hf, np.repeat(Hf[:, -1:], T - Hf.shape[1], axis=1)], axis=1)
    Hf = np.ascontiguousarray(Hf, dtype=np.float32)
    if n_trace_iter:
        full_blocks = [Xt[:, sup] for sup in supports]
        tent_full = (Xt @ tents).T
        Hf = _hals_H(Hf, wtx(W, full_blocks, tent_full), WtW, n_trace_iter)
    return W, Hf


def _tents(H, W, spacing):
    """Bilinear tent functions on a grid covering the frame: list of (row, col) nodes and the 1-D profiles."""
    ny = max(2, int(np.ceil((H - 1) / spacing)) + 1)
    nx = max(2, int(np.ceil((W - 1) / spacing)) + 1)
    ys = np.linspace(0, H - 1, ny)
    xs = np.linspace(0, W - 1, nx)
    gy, gx = ys[1] - ys[0], xs[1] - xs[0]
    py = np.clip(1 - np.abs(np.arange(H)[None, :] - ys[:, None]) / gy, 0, None).astype(np.float32)
    px = np.clip(1 - np.abs(np.arange(W)[None, :] - xs[:, None]) / gx, 0, None).astype(np.float32)
    return py, px  # tent (i, j) = py[i][:, None] * px[j][None, :]


# ----------------------------------------------------------------------------------------------
# Main entry
# ----------------------------------------------------------------------------------------------

def find_cells(movie, cfg, *, cell_diameter=None, frame_rate, progress: Callable[[str], None] | None = None
               ) -> Detection:
    """Find cells in a motion-corrected movie of RAW fluorescence.

    Parameters
    ----------
    movie : array (T, H, W)
        Raw fluorescence (not baseline-subtracted); not modified.
    cfg : DetectConfig
    cell_diameter : float, optional
        Typical cell diameter in pixels (``input.cell_diameter``); estimated when None.
    frame_rate : float
        Frames per second.
    progress : callable(str), optional
        Called with a short message at each step.
    """
    say = progress or (lambda msg: None)
    timings = {}
    t0 = time.perf_counter()
    X = _check_movie(movie)
    T, H, W = X.shape
    if not (frame_rate and frame_rate > 0):
        raise InputError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}.") from None
    b = max(1, int(round(frame_rate / cfg.summary_rate)))
    b = min(b, max(1, T // 10))
    Xb = bin_time(X, b)
    timings["bin"] = time.perf_counter() - t0

    # -- summary images and cell size ---------------------------------------------------------
    t1 = time.perf_counter()
    d_given = cell_diameter is not None
    d = float(cell_diameter) if d_given else 10.0
    say("summary images")
    corr, pnr, valid = summary_images(Xb, d, cfg.baseline_percentile)
    if not d_given:
        d = estimate_cell_diameter(np.where(valid, np.clip(corr, 0, None), 0))
        corr, pnr, valid = summary_images(Xb, d, cfg.baseline_percentile)
    timings["summary"] = time.perf_counter() - t1

    # -- seeds -------------------------------------------------------------------------------------
    seeds = find_seeds(corr, pnr, d, min_corr=cfg.min_corr, min_pnr=cfg.min_pnr,
                       separation=cfg.seed_separation, max_cells=cfg.max_cells, valid=valid)
    say(f"{len(seeds)} seeds")

    # -- tile-wise local NMF -------------------------------------------------------------------------
    t2 = time.perf_counter()
    r = max(2.0, cfg.window_radius * d)
    ri = int(np.ceil(r))
    sig0 = max(1.0, d / 4)
    py, px = _tents(H, W, cfg.background_spacing * d)
    ny, nx = py.shape[0], px.shape[0]
    node_y = np.array([np.argmax(p) for p in py])
    node_x = np.array([np.argmax(p) for p in px])
    K = len(seeds)
    win = 2 * ri + 1
    foot_win = np.zeros((K, win, win), np.float32)   # footprints in (win x win) windows at seeds
    traces = np.zeros((K, T), np.float32)
    bg_traces = np.zeros((ny * nx, T), np.float32)
    ts = cfg.tile_size
    margin = ri + 1
    for ty in range(0, H, ts):
        for tx in range(0, W, ts):
            y0, y1 = max(0, ty - margin), min(H, ty + ts + margin)
            x0, x1 = max(0, tx - margin), min(W, tx + ts + margin)
            hh, ww = y1 - y0, x1 - x0
            # cells whose window meets the extended tile
            inside = ((seeds[:, 0] >= y0 - ri) & (seeds[:, 0] < y1 + ri) &
                      (seeds[:, 1] >= x0 - ri) & (seeds[:, 1] < x1 + ri)) if K else np.zeros(0, bool)
            idx = np.flatnonzero(inside)
            # background tents meeting the extended tile
            iy = np.flatnonzero(py[:, y0:y1].max(axis=1) > 0)
            ix = np.flatnonzero(px[:, x0:x1].max(axis=1) > 0)
            nc, nb = len(idx), len(iy) * len(ix)
            Wt = np.zeros((hh * ww, nc + nb), np.float32)
            supports = []
            yy, xx = np.mgrid[y0:y1, x0:x1]
            for j, k in enumerate(idx):
                sy, sx = seeds[k]
                r2 = ((yy - sy) ** 2 + (xx - sx) ** 2).ravel()
                sup = np.flatnonzero(r2 <= r * r)
                supports.append(sup)
                Wt[sup, j] = np.exp(-r2[sup] / (2 * sig0 ** 2))
            for a, i in enumerate(iy):
                for c, jx in enumerate(ix):
                    Wt[:, nc + a * len(ix) + c] = np.outer(py[i, y0:y1], px[jx, x0:x1]).ravel()
            Xt_b = Xb[:, y0:y1, x0:x1].reshape(Xb.shape[0], -1)
            Xt = X[:, y0:y1, x0:x1].reshape(T, -1)
            Wt, Hf = _fit_tile(Xt_b, Xt, Wt, supports, cfg.n_iter, cfg.n_trace_iter, b)
            # keep the cells whose seed lies in this tile's core
            for j, k in enumerate(idx):
                sy, sx = seeds[k]
                if ty <= sy < ty + ts and tx <= sx < tx + ts:
                    fp = Wt[:, j].reshape(hh, ww)
                    wy0, wx0 = sy - ri, sx - ri
                    a0, a1 = max(wy0, y0), min(wy0 + win, y1)
                    c0, c1 = max(wx0, x0), min(wx0 + win, x1)
                    foot_win[k, a0 - wy0:a1 - wy0, c0 - wx0:c1 - wx0] = fp[a0 - y0:a1 - y0, c0 - x0:c1 - x0]
                    traces[k] = Hf[j]
            for a, i in enumerate(iy):
                for c, jx in enumerate(ix):
                    if ty <= node_y[i] < ty + ts and tx <= node_x[jx] < tx + ts:
                        bg_traces[i * nx + jx] = Hf[nc + a * len(ix) + c]
    timings["fit"] = time.perf_counter() - t2
    say("fit done")

    footprints = np.zeros((K, H, W), np.float32)
    for k in range(K):
        sy, sx = seeds[k]
        a0, a1 = max(sy - ri, 0), min(sy + ri + 1, H)
        c0, c1 = max(sx - ri, 0), min(sx + ri + 1, W)
        footprints[k, a0:a1, c0:c1] = foot_win[k, a0 - sy + ri:a1 - sy + ri, c0 - sx + ri:c1 - sx + ri]
    bg_fp = np.einsum("iy,jx->ijyx", py, px).reshape(ny * nx, H, W).astype(np.float32)
    timings["total"] = time.perf_counter() - t0
    return Detection(
        footprints=footprints, traces=traces, background_footprints=bg_fp, background_traces=bg_traces,
        baseline=np.zeros((H, W), np.float32), neuropil_traces=None, correlation_image=corr,
        pnr_image=pnr, rejected_footprints=np.zeros((0, H, W), np.float32),
        rejected_traces=np.zeros((0, T), np.float32), rejected_reasons=[], cell_diameter=d,
        seeds=np.asarray(seeds, int).reshape(-1, 2),
        info={"n_seeds": int(K), "n_background": int(ny * nx), "time_bin": int(b),
              "cell_diameter_estimated": not d_given, "timings_s": timings},
    )
