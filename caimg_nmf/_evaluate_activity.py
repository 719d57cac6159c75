"""Which annotated cells are visibly active in a recording (private; re-exported by
:mod:`caimg_nmf.evaluate`).

Annotations of real data sets (e.g. Neurofinder) were often drawn on a longer recording
or from anatomy, so some annotated cells never fire in the movie at hand and no method
could find them from activity. :func:`active_cells` flags the ones that do, so that
recall can also be reported on visibly active cells.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse

from .errors import InputError


def _mean_operator(masks):
    """Sparse (K, P) matrix whose product with a (P,) frame gives each mask's mean."""
    K = masks.shape[0]
    flat = masks.reshape(K, -1)
    rows, cols = np.nonzero(flat)
    area = np.bincount(rows, minlength=K).astype(np.float64)
    w = 1.0 / np.maximum(area, 1)[rows]
    return sparse.csr_matrix((w, (rows, cols)), shape=flat.shape)


def _apply(movie, A, chunk):
    T = movie.shape[0]
    out = np.empty((A.shape[0], T))
    for t0 in range(0, T, chunk):
        block = np.asarray(movie[t0:t0 + chunk], dtype=np.float64).reshape(-1, A.shape[1])
        out[:, t0:t0 + chunk] = A @ block.T
    return out


def ring_masks(masks, inner=2.0, width=None):
    """Neuropil rings around each mask, excluding every mask's pixels.

    Parameters
    ----------
    masks : ndarray (K, H, W) bool
    inner : float
        Gap in pixels between a mask and its ring.
    width : float or None
        Ring width in pixels; None means ``max(4, equivalent diameter of the mask)``.

    Returns
    -------
    rings : ndarray (K, H, W) bool
    """
    K, H, W = masks.shape
    union = masks.any(axis=0)
    rings = np.zeros_like(masks)
    for k in range(K):
        if not masks[k].any():
            continue
        w = width if width is not None else max(4.0, 2 * np.sqrt(masks[k].sum() / np.pi))
        pad = int(np.ceil(inner + w)) + 1
        rr, cc = np.nonzero(masks[k])
        r0, r1 = max(rr.min() - pad, 0), min(rr.max() + pad + 1, H)
        c0, c1 = max(cc.min() - pad, 0), min(cc.max() + pad + 1, W)
        d = ndimage.distance_transform_edt(~masks[k, r0:r1, c0:c1])
        rings[k, r0:r1, c0:c1] = (d > inner) & (d <= inner + w) & ~union[r0:r1, c0:c1]
    return rings


def mask_traces(movie, masks, chunk=500, neuropil_coef=0.0):
    """Mean fluorescence inside each mask, frame by frame.

    Parameters
    ----------
    movie : array_like (T, H, W)
        May be a memory map; read ``chunk`` frames at a time.
    masks : array_like (K, H, W)
        Nonzero = inside.
    neuropil_coef : float
        If > 0, subtract ``neuropil_coef`` times the mean of a surrounding ring
        (:func:`ring_masks`), the usual neuropil correction (0.7 is common).

    Returns
    -------
    traces : ndarray (K, T) float64
        0 for an empty mask.
    """
    m = np.asarray(masks) != 0
    if movie.ndim != 3 or m.ndim != 3 or tuple(movie.shape[1:]) != tuple(m.shape[1:]):
        raise InputError(f"mask_traces: movie {tuple(movie.shape)} and masks "
                         f"{tuple(m.shape)} must be (T, H, W) and (K, H, W) with the same "
                         f"(H, W).") from None
    A = _mean_operator(m)
    if neuropil_coef:
        R = _mean_operator(ring_masks(m))
        A = A - neuropil_coef * R
    return _apply(movie, A.tocsr(), chunk)


def running_percentile(traces, window, q=8.0):
    """Slow baseline: the ``q``-th percentile in windows of ``window`` frames.

    Computed on half-overlapping blocks (stride ``window // 2``) and linearly
    interpolated between block centres, so it costs O(K T) whatever the window.

    Parameters
    ----------
    traces : ndarray (K, T)
    window : int
    q : float

    Returns
    -------
    baseline : ndarray (K, T)
    """
    K, T = traces.shape
    window = int(max(3, min(window, T)))
    step = max(1, window // 2)
    starts = np.unique(np.r_[np.arange(0, max(T - window, 0) + 1, step), max(T - window, 0)])
    idx = starts[:, None] + np.arange(window)[None, :]
    vals = np.percentile(traces[:, idx], q, axis=2)  # (K, n_blocks)
    centres = starts + (window - 1) / 2.0
    t = np.arange(T)
    if len(centres) == 1:
        return np.repeat(vals, T, axis=1)
    return np.stack([np.interp(t, centres, v) for v in vals])


def active_cells(movie_or_dff, true_masks=None, *, frame_rate=None, window_s=30.0,
                 percentile=8.0, smooth=3, z_thresh=4.0, dff_thresh=None, is_dff=False,
                 neuropil_coef=0.7, return_stats=False):
    """Flag annotated cells that are visibly active in the recording.

    Rule: take each cell's mean trace ``F`` inside its mask, minus ``neuropil_coef`` times
    the mean of a surrounding ring that avoids all masks (neuropil correction); subtract a slow baseline
    ``F0`` (the ``percentile``-th percentile in running windows of ``window_s`` seconds);
    smooth the residual ``r = F - F0`` with a ``smooth``-frame moving average; estimate
    its noise robustly as ``sigma = 1.4826 * MAD(r)``. A cell is **active** if
    ``max(r) / sigma >= z_thresh`` (default 4) and, when ``dff_thresh`` is given, also
    ``max(r / F0) >= dff_thresh`` (peak dF/F; not used for dF/F input).

    Parameters
    ----------
    movie_or_dff : array_like (T, H, W) or (K, T)
        A movie (raw or dF/F), or already extracted traces (then ``true_masks=None``).
    true_masks : array_like (K, H, W) or None
    frame_rate : float, optional
        Hz; without it the window is 300 frames (30 s at 10 Hz).
    window_s : float
        Baseline window in seconds (at least 3 frames, at most the recording).
    percentile : float
    smooth : int
        Moving-average length in frames before thresholding (1 = none).
    z_thresh : float
    dff_thresh : float or None
    is_dff : bool
        The input is already dF/F (or baseline-free): no division by ``F0``.
    neuropil_coef : float
        Neuropil-ring weight (movie input only); 0 disables the correction. The dF/F
        is computed on the uncorrected trace's baseline.
    return_stats : bool
        Also return a dict with ``peak_z`` (K,) and ``peak_dff`` (K,; NaN for dF/F input).

    Returns
    -------
    active : ndarray (K,) bool
    stats : dict, only if ``return_stats``
    """
    if true_masks is None:
        F = np.asarray(movie_or_dff, dtype=np.float64)
        if F.ndim != 2:
            raise InputError(f"active_cells: without true_masks the input must be traces "
                             f"(K, T), got shape {F.shape}; pass the (K, H, W) masks to use "
                             f"a movie.") from None
        Fraw = F
    else:
        Fraw = mask_traces(movie_or_dff, true_masks)
        F = mask_traces(movie_or_dff, true_masks, neuropil_coef=neuropil_coef) \
            if neuropil_coef else Fraw
    K, T = F.shape
    if K == 0 or T == 0:
        empty = np.zeros(K, bool)
        return (empty, {"peak_z": np.zeros(K), "peak_dff": np.zeros(K)}) if return_stats \
            else empty
    window = int(round(window_s * frame_rate)) if frame_rate else 300
    F0 = running_percentile(F, window, percentile)
    r = F - F0
    if smooth and smooth > 1:
        r = ndimage.uniform_filter1d(r, int(smooth), axis=1, mode="nearest")
    med = np.median(r, axis=1, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(r - med), axis=1)
    peak = (r - med).max(axis=1)
    peak_z = np.divide(peak, sigma, out=np.zeros(K), where=sigma > 0)
    peak_z[(sigma == 0) & (peak > 0)] = np.inf
    active = peak_z >= z_thresh
    if is_dff:
        peak_dff = np.full(K, np.nan)
    else:
        F0raw = running_percentile(Fraw, window, percentile) if Fraw is not F else F0
        with np.errstate(divide="ignore", invalid="ignore"):
            dff = np.where(F0raw > 0, r / F0raw, 0.0)
        peak_dff = dff.max(axis=1)
        if dff_thresh is not None:
            active &= peak_dff >= dff_thresh
    if return_stats:
        return active, {"peak_z": peak_z, "peak_dff": peak_dff}
    return active
