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

Steps: (1) average frames to about ``summary_rate`` Hz (at most ``max_binned_frames`` of them); (2) high-pass each frame (minus a wide box
blur), compute the local correlation image and the peak-to-noise image; (3) seeds = local maxima
of the correlation image, at least ``seed_separation`` diameters apart, above ``min_corr`` and
``min_pnr``;
(4) fit the model by HALS (alternating exact coordinate updates) tile by tile on the binned movie,
re-seed in the residual and split a footprint that covers separate cell-sized blobs, refitting
after each, and merge pieces of one cell once; (5) the last fit, which refits the merged cells, then
the traces at the full frame rate.
Components spread to the rim of their window are local background: they stay in the model (their
signal must not be pushed onto the cells next to them) and are reported as rejected. Each tile is small and dense, so the HALS runs on
plain BLAS products; the general solver in :mod:`caimg_nmf.nmf` would need dense (pixels x
components) footprints over the whole frame, which for 512 x 512 pixels and ~800 components is
1.6 GB and 20x the work, hence this local specialised update.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ._local_fit import (fit_cells, residual, resolve_n_jobs, squared_radius, tents, upsample_traces,
                         windows_to_dense)
from ._merge import merge_groups, merged_windows, rim_fraction
from ._split import split_blobs
from ._summary import find_seeds, summary_images

__all__ = ["Detection", "find_cells", "estimate_cell_diameter", "summary_images", "bin_time", "time_bin"]


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
    windows: Optional[np.ndarray] = None  # (K, w, w) footprints in windows at ``seeds`` (dense=False)
    window_radius: int = 0               # w = 2 window_radius + 1
    info: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.traces.shape[0])


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


def time_bin(n_frames: int, frame_rate: float, summary_rate: float, max_binned_frames: int = 0) -> int:
    """Frames averaged into one for the summary images and the footprint fit: to about
    ``summary_rate`` Hz, more when that would give over ``max_binned_frames`` binned frames (0: no
    limit; the binned movie is held in memory), but never fewer than 10 binned frames.

    Short recordings are binned like long ones: with a slow indicator, averaging frames lowers the
    noise of the correlation and peak-to-noise images more than it loses samples. Measured on 100
    frames (defaults otherwise, F1 of the whole run): Neurofinder 00.00's first 100 frames at 7 Hz,
    0.030 at the full rate, 0.072 / 0.105 / 0.062 / 0.110 binned by 2 / 3 / 4 / 6 (50 to 16 binned
    frames); Neurofinder 01.01 (101 frames at 7.5 Hz), 0.077 at the full rate, 0.076 / 0.088 / 0.101 /
    0.101 binned by 2 / 3 / 4 / 6; a 100-frame synthetic movie (30 cells, 7.5 Hz), F1 0.83 / 0.87 at
    the full rate, 0.90 / 0.87 binned by 2. The full rate is ``summary_rate`` = the frame rate."""
    b = max(1, int(round(frame_rate / summary_rate)))
    if max_binned_frames:
        b = max(b, -(-int(n_frames) // int(max_binned_frames)))
    return min(b, max(1, int(n_frames) // 10))


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


def estimate_cell_diameter(movie, cfg, *, frame_rate, guess: float = 10.0) -> float:
    """Typical cell diameter (pixels) of a RAW-fluorescence movie (T, H, W): seeds are found with a
    guessed diameter and fitted briefly; the diameter is the median equivalent diameter of their masks
    (footprint >= 0.3 x peak, after a 0.7 px smoothing), and the estimate is refined once from itself.
    On synthetic movies it lands within ~20 % of the planted diameter; on the Neurofinder recording
    it gives 9.2 px inside the pipeline (after motion correction) and 7.7 px on the raw movie
    (annotated somata ~9 px)."""
    X = _check_movie(movie)
    b = time_bin(X.shape[0], frame_rate, cfg.summary_rate, cfg.max_binned_frames)
    return _estimate_diameter(X, bin_time(X, b), cfg, b, float(guess))


def _estimate_diameter(X, Xb, cfg, b, d, summaries=None):
    for _ in range(2):   # from the guess, then from the first estimate
        corr, pnr, valid = summaries or summary_images(Xb, d, cfg.baseline_percentile, resolve_n_jobs(cfg.n_jobs))
        summaries = None
        d_new = _diameter_from_fit(X, Xb, corr, pnr, valid, d, cfg, b)
        converged = abs(d_new - d) <= 0.15 * d
        d = d_new
        if converged:
            break
    return d


def _diameter_from_fit(X, Xb, corr, pnr, valid, d, cfg, b, n=60):
    """Cell diameter from a quick local fit of the ``n`` best seeds found with a guess ``d``: the median
    of 2 sqrt(area / pi) of their masks (footprint >= 0.3 x peak), over those not cut by their window.
    The window (radius 1.5 d) leaves room for cells up to three times the guess."""
    seeds = find_seeds(corr, pnr, d, min_corr=cfg.min_corr, min_pnr=cfg.min_pnr,
                       separation=cfg.seed_separation, max_cells=n, valid=valid)
    if len(seeds) < 3:
        return d
    ri = int(np.ceil(1.5 * d))
    py, px = tents(X.shape[1], X.shape[2], max(cfg.background_spacing, 3.0) * d)
    win = fit_cells(X[:b], Xb, seeds, _gauss_windows(len(seeds), ri, d), ri, py, px,
                    tile_size=cfg.tile_size, n_iter=10, n_trace_iter=0, b=b, n_jobs=resolve_n_jobs(cfg.n_jobs),
                    neuropil_ring=cfg.neuropil_ring)[0]
    ok = rim_fraction(win, ri) <= cfg.max_rim
    if ok.sum() < 3:
        return d
    return float(np.clip(np.median(footprint_diameters(win[ok])), 3.0, 60.0))


def footprint_diameters(windows) -> np.ndarray:
    """Equivalent diameter 2 sqrt(area / pi) (pixels) of each footprint's mask (footprint >= 0.3 x
    peak, after a 0.7 px smoothing: on noisy data the peak pixel of a raw footprint is partly noise,
    which shrinks its mask)."""
    from .rois import masks_from_footprints
    if not len(windows):
        return np.zeros(0)
    sm = np.stack([ndi.gaussian_filter(np.asarray(w, np.float32), 0.7) for w in windows])
    return 2 * np.sqrt(masks_from_footprints(sm, 0.3).areas / np.pi)


def diameter_spread(diameters) -> float:
    """Spread of cell diameters (pixels): the interquartile range over 1.349 (the standard deviation
    of a normal distribution, robust to the odd merged or partial footprint); 0 for fewer than 3."""
    if len(diameters) < 3:
        return 0.0
    q25, q75 = np.percentile(diameters, [25, 75])
    return float((q75 - q25) / 1.349)


def _gauss_windows(n, ri, d):
    """``n`` initial footprints: Gaussians of sigma d/4 in (2 ri + 1)^2 windows, zero beyond ri."""
    r2 = squared_radius(ri)
    g = np.where(r2 <= ri * ri, np.exp(-r2 / (2 * max(1.0, d / 4) ** 2)), 0).astype(np.float32)
    return np.repeat(g[None], n, axis=0)


def _reseed(Xb, seeds, win, traces_b, bg_b, ri, py, px, d, valid, cfg, n_jobs):
    """Seeds found in the residual (binned movie minus the fitted cells and background), away from
    the existing ones."""
    R = residual(Xb, win, seeds, ri, traces_b, py, px, bg_b)
    rcorr, rpnr, _ = summary_images(R, d, cfg.baseline_percentile, n_jobs, overwrite=True)
    del R
    new = find_seeds(rcorr, rpnr, d, min_corr=cfg.min_corr, min_pnr=cfg.min_pnr,
                     separation=cfg.seed_separation, max_cells=cfg.max_cells, valid=valid)
    if len(seeds) and len(new):
        dist = np.hypot(*(new[:, None, :] - seeds[None, :, :]).transpose(2, 0, 1)).min(axis=1)
        new = new[dist >= cfg.reseed_separation * d]
    if cfg.max_cells:
        new = new[:max(0, cfg.max_cells - len(seeds))]
    return new


@contextlib.contextmanager
def _no_task(description, total=None, unit=""):
    """A progress task that shows nothing (the default of find_cells' ``task``)."""
    yield lambda n=1: None


def _fit_and_refine(X, Xb, seeds, d, valid, cfg, *, frame_rate, b, n_jobs, say, task):
    """The local NMF from ``seeds`` and its refinement: re-seed in the residual; split footprints that
    cover separate blobs; merge pieces of one cell; then the last fit, with the traces at the full
    frame rate. Returns (seeds, windows, traces, background traces, neuropil traces or None, which
    components are spread over their window, the rim fraction of each, ri, (py, px), counts)."""
    H, W = X.shape[1:]
    ri = int(np.ceil(max(2.0, cfg.window_radius * d)))
    py, px = tents(H, W, cfg.background_spacing * d)
    # intermediate fits: half the iterations and no full-rate traces; the last fit does it all
    fit = dict(tile_size=cfg.tile_size, n_iter=max(1, cfg.n_iter // 2), n_trace_iter=0, b=b, n_jobs=n_jobs)

    n_tiles = len(range(0, H, cfg.tile_size)) * len(range(0, W, cfg.tile_size))
    passes = iter(range(1, 1000))

    def refit(seeds, init, **last):   # (windows, traces, binned traces, bg, binned bg, neuropil)
        with task(f"fit {next(passes)}: {len(seeds)} components", n_tiles, "tiles") as advance:
            return fit_cells(X, Xb, seeds, init, ri, py, px, neuropil_ring=cfg.neuropil_ring, on_tile=advance,
                             **{**fit, **last})

    counts = dict(n_reseeded=0, n_split=0, n_loose=0, n_merged=0)
    win, traces, traces_b, bg, bg_b, _ = refit(seeds, _gauss_windows(len(seeds), ri, d))
    for _ in range(cfg.reseed_passes):
        new = _reseed(Xb, seeds, win, traces_b, bg_b, ri, py, px, d, valid, cfg, n_jobs)
        if not len(new):
            break
        say(f"{len(new)} more seeds from the residual")
        counts["n_reseeded"] += len(new)
        seeds = np.concatenate([seeds, new])
        win, traces, traces_b, bg, bg_b, _ = refit(seeds, np.concatenate([win, _gauss_windows(len(new), ri, d)]))
    # a footprint over two separate cell-sized blobs is two cells (which would often reach the rim of
    # their window, below, and be taken for background): each blob is refitted with its own trace
    if cfg.split_blobs:
        seeds, win, counts["n_split"] = split_blobs(win, seeds, ri, min_area=0.5 * np.pi * d * d / 4)
        if counts["n_split"]:
            say(f"splitting {counts['n_split']} components that cover separate blobs")
            win, traces, traces_b, bg, bg_b, _ = refit(seeds, win)
    # components spread to the rim of their window are local background (neuropil that follows nearby
    # cells, out-of-focus cells, bright structure finer than the tents), not cells. They stay in the
    # model: dropping them pushed their light onto the cells next to them, which spread in turn and
    # were dropped at the next refit (on the real recording 157, then 54, then 17 components, and 22
    # of the 49 active annotated cells that had been found by then)
    rim_before = rim_fraction(win, ri)
    loose = rim_before > cfg.max_rim
    # pieces of one cell (touching, correlated traces; chains joined) are merged once: the last fit
    # refits them. (Merging, refitting and merging again took 50 % more fit time, 26 vs 17 s, for
    # F1 0.311 instead of 0.319 on the real recording)
    groups = []
    if cfg.merge_corr < 1:
        groups = merge_groups(win[~loose], seeds[~loose], traces_b[~loose], threshold=0.3,
                              min_corr=cfg.merge_corr, window=max(3, 10 * frame_rate / b))
    if groups:
        counts["n_merged"] = sum(len(g) for g in groups)
        say(f"merging {counts['n_merged']} components into {len(groups)}")
        cell_seeds, cell_win = merged_windows(win[~loose], seeds[~loose], traces_b[~loose], groups, ri, (H, W))
        seeds, win = np.concatenate([cell_seeds, seeds[loose]]), np.concatenate([cell_win, win[loose]])
        rim_before = np.concatenate([np.zeros(len(cell_seeds)), rim_before[loose]])
        loose = rim_before > cfg.max_rim
        if cfg.neuropil_ring > 0:
            # the rings' holes are cut from the footprints entering the fit: a merged one (the sum
            # of its pieces) is broad until refitted, and its ring would miss the neuropil near it
            win = refit(seeds, win, trace_exclude=loose)[0]
    # in the last fit the background components take part in the binned fit but not in the full-rate
    # traces: there they took part of the cells' light (trace correlation with the planted cells
    # 0.978 -> 0.969, median, realistic synthetic scenario). Components that spread in the last fit
    # are local background as well
    win, traces, traces_b, bg, _, neuropil = refit(seeds, win, n_iter=cfg.n_iter, n_trace_iter=cfg.n_trace_iter,
                                                   trace_exclude=loose)
    # the rim fraction that made each background component one (before the last fit, or in it)
    rim = np.where(loose, rim_before, rim_fraction(win, ri))
    loose |= rim > cfg.max_rim
    # the loose components' traces: from the time-binned fit
    traces[loose] = upsample_traces(traces_b[loose], b, traces.shape[1])
    counts["n_loose"] = int(loose.sum())
    return seeds, win, traces, bg, neuropil, loose, rim, ri, (py, px), counts


# ----------------------------------------------------------------------------------------------
# Main entry
# ----------------------------------------------------------------------------------------------

def find_cells(movie, cfg, *, cell_diameter=None, frame_rate, progress: Callable[[str], None] | None = None,
               task=None,
               dense: bool = True) -> Detection:
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
    task : callable(description, total, unit) -> context manager yielding advance(n), optional
        Progress of each fit pass, ``total`` tiles (:meth:`caimg_nmf.progress.Reporter.task`: a bar
        on a terminal, log lines otherwise).
    dense : bool
        Return footprints as a dense (K, H, W) array; False: only in windows (``Detection.windows``,
        centred at ``seeds``; ``footprints`` is then empty), for :func:`curate` on big fields.
    """
    say = progress or (lambda msg: None)
    task = task or _no_task
    timings = {}
    t0 = time.perf_counter()
    X = _check_movie(movie)
    T, H, W = X.shape
    if not (frame_rate and frame_rate > 0):
        raise InputError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}.") from None
    b = time_bin(T, frame_rate, cfg.summary_rate, cfg.max_binned_frames)
    Xb = bin_time(X, b)
    timings["bin"] = time.perf_counter() - t0

    # -- summary images and cell size ---------------------------------------------------------
    t1 = time.perf_counter()
    d_given = cell_diameter is not None
    d = float(cell_diameter) if d_given else 10.0
    say("summary images")
    n_jobs = resolve_n_jobs(cfg.n_jobs)
    corr, pnr, valid = summary_images(Xb, d, cfg.baseline_percentile, n_jobs)
    if not d_given:
        d = _estimate_diameter(X, Xb, cfg, b, d, (corr, pnr, valid))
        corr, pnr, valid = summary_images(Xb, d, cfg.baseline_percentile, n_jobs)
    timings["summary"] = time.perf_counter() - t1

    # -- seeds -------------------------------------------------------------------------------------
    seeds = find_seeds(corr, pnr, d, min_corr=cfg.min_corr, min_pnr=cfg.min_pnr,
                       separation=cfg.seed_separation, max_cells=cfg.max_cells, valid=valid)
    say(f"{len(seeds)} seeds")

    # -- tile-wise local NMF, re-seeding in the residual, splitting, merging pieces of one cell ------
    t2 = time.perf_counter()
    seeds, win, traces, bg, neuropil, loose, rim, ri, (py, px), counts = _fit_and_refine(
        X, Xb, np.asarray(seeds, int).reshape(-1, 2), d, valid, cfg, frame_rate=frame_rate, b=b, n_jobs=n_jobs,
        say=say, task=task)
    timings["fit"] = time.perf_counter() - t2
    say(f"fit done; {counts['n_loose']} components spread over their window are background, not cells")
    ny, nx = py.shape[0], px.shape[0]
    del Xb   # before the dense (K, H, W) footprints are allocated
    # the components spread over their window are reported as rejected, in float16 for a detection in
    # windows (big fields: they are only shown)
    rej_fp = windows_to_dense(win[loose], seeds[loose], ri, (H, W),
                              out=np.zeros((int(loose.sum()), H, W), np.float32 if dense else np.float16))
    rej_reasons = [f"spread over its window: {r:.3f} of the window's rim in its mask > max_rim {cfg.max_rim} "
                   "(background or neuropil, not a cell)" for r in rim[loose]]
    rej_traces = traces[loose]
    seeds, win, traces = seeds[~loose], win[~loose], traces[~loose]
    if neuropil is not None:
        neuropil = neuropil[~loose]
    K = len(seeds)
    # the size of the cells found, whether the diameter was given or estimated: a wide spread says
    # that one diameter does not fit them all
    diameters = footprint_diameters(win)
    footprints = windows_to_dense(win, seeds, ri, (H, W)) if dense else np.zeros((0, H, W), np.float32)
    bg_fp = np.einsum("iy,jx->ijyx", py, px).reshape(ny * nx, H, W).astype(np.float32)
    bg_traces = bg
    timings["total"] = time.perf_counter() - t0
    return Detection(
        footprints=footprints, traces=traces, background_footprints=bg_fp, background_traces=bg_traces,
        baseline=np.zeros((H, W), np.float32), neuropil_traces=neuropil, correlation_image=corr,
        pnr_image=pnr, rejected_footprints=rej_fp, rejected_traces=rej_traces, rejected_reasons=rej_reasons,
        cell_diameter=d,
        seeds=np.asarray(seeds, int).reshape(-1, 2), windows=None if dense else win, window_radius=int(ri),
        info={"n_seeds": int(K), **counts, "window_radius_px": int(ri), "n_background": int(ny * nx), "time_bin": int(b),
              "cell_diameter_estimated": not d_given, "timings_s": timings,
              "cell_diameter_median_found_px": float(np.median(diameters)) if len(diameters) else 0.0,
              "cell_diameter_spread_px": diameter_spread(diameters)},
    )
