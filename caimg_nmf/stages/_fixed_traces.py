"""Traces of footprints fitted with the rest of the model held fixed, optionally corrected for the
neuropil in a ring around each (for the somata found in the mean image, :mod:`.somata`).

Everything is restricted to the pixels of the footprints and their rings, held as sparse matrices:
on a 512 x 512 field with 200 somata that is ~40 000 pixels, not 262 144."""
from __future__ import annotations

import numpy as np
from scipy import sparse

from ..errors import InputError
from ._local_fit import _hals_H

__all__ = ["fit_fixed_traces", "neuropil_rings"]

#: frames read at a time by :func:`fit_fixed_traces`
_CHUNK_FRAMES = 256


def neuropil_rings(centres: np.ndarray, radius: float, shape: tuple, exclude: np.ndarray) -> sparse.csr_matrix:
    """The neuropil ring round each centre: 1.3 to 2 radii out, less the ``exclude`` pixels.

    Parameters
    ----------
    centres : array (N, 2) of int
        Row, col of each centre, inside the frame.
    radius : float
        Cell radius in pixels.
    shape : (H, W)
    exclude : ndarray (H, W) bool
        Pixels no ring may use (the cells').

    Returns
    -------
    scipy.sparse.csr_matrix (N, H*W) float32
        1 on each ring's pixels (row-major pixel index).
    """
    H, W = shape
    centres = np.asarray(centres).reshape(-1, 2)
    if len(centres) and (not np.issubdtype(centres.dtype, np.integer) or centres.min() < 0
                         or centres[:, 0].max() >= H or centres[:, 1].max() >= W):
        raise InputError(f"neuropil_rings: centres must be integer (row, col) pixels inside the {H} x {W} "
                         f"frame; got dtype {centres.dtype}.") from None
    if np.shape(exclude) != (H, W):
        raise InputError(f"neuropil_rings: exclude has shape {np.shape(exclude)}; it must be {(H, W)}.") from None
    ro = int(np.ceil(2 * radius))
    yy, xx = np.mgrid[-ro:ro + 1, -ro:ro + 1]
    rr = np.hypot(yy, xx)
    dy, dx = np.nonzero((rr > 1.3 * radius) & (rr <= 2 * radius))
    dy, dx = dy - ro, dx - ro
    rows, cols = [], []
    for k, (y, x) in enumerate(centres):
        ys, xs = y + dy, x + dx
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        ys, xs = ys[ok], xs[ok]
        ok = ~np.asarray(exclude, bool)[ys, xs]
        cols.append(ys[ok] * W + xs[ok])
        rows.append(np.full(int(ok.sum()), k))
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    return sparse.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(len(centres), H * W))


def _check(frames_shape, footprints, fixed_footprints, fixed_traces, background_footprints,
           background_traces, rings, neuropil_coefficient):
    T, H, W = frames_shape
    for name, F, C in (("footprints", footprints, None), ("fixed", fixed_footprints, fixed_traces),
                       ("background", background_footprints, background_traces)):
        if F is not None and (F.shape[1:] != (H, W) or (C is not None and np.shape(C) != (len(F), T))):
            raise InputError(f"fit_fixed_traces: {name} footprints {F.shape} (and traces "
                             f"{None if C is None else np.shape(C)}) do not fit frames of shape {frames_shape}: "
                             f"they must be (n, {H}, {W}) and (n, {T}).") from None
    if rings is not None and rings.shape != (footprints.shape[0], H * W):
        raise InputError(f"fit_fixed_traces: rings {rings.shape} must be (n footprints, pixels) = "
                         f"{(footprints.shape[0], H * W)} (neuropil_rings).") from None
    if not (np.isfinite(neuropil_coefficient) and 0 <= neuropil_coefficient <= 1):
        raise InputError(f"fit_fixed_traces: neuropil_coefficient = {neuropil_coefficient} must lie in "
                         "[0, 1].") from None


def _restricted(F, C, pix):
    """The footprints ``F`` (n, H, W) that touch ``pix``, as CSR (m, len(pix)), with their traces."""
    if F is None or len(F) == 0:
        return None
    Fp = sparse.csr_matrix(F.reshape(len(F), -1))[:, pix]
    touch = np.flatnonzero(Fp.getnnz(axis=1))
    if not touch.size:
        return None
    return Fp[touch].astype(np.float32), np.asarray(C)[touch].astype(np.float32)


def fit_fixed_traces(frames, footprints: np.ndarray, fixed_footprints: np.ndarray, fixed_traces: np.ndarray,
                     background_footprints: np.ndarray | None = None, background_traces: np.ndarray | None = None,
                     baseline: np.ndarray | None = None, *, rings: sparse.spmatrix | None = None,
                     neuropil_coefficient: float = 0.7, nonnegative: bool = True, sweeps: int = 10):
    """Traces of ``footprints`` with every other component of the model held fixed: the least-squares
    fit, nonnegative unless asked otherwise.

    Given ``rings``, the residual (the movie minus the fixed cells, the background and the baseline)
    averaged over each footprint's ring is its local neuropil trace, and ``neuropil_coefficient``
    times its fluctuations (the trace minus its median) is taken off the footprint's own pixels
    before the fit, as Suite2p takes 0.7 of the neuropil off a cell: the smooth background
    components do not follow the neuropil at the scale of one cell. The median stays, so that a soma
    that displaces the neuropil is not pushed below its resting level. A ring with fewer pixels than
    its footprint (crowded, or at the frame edge) would add more noise than it takes off: it is not
    used, and its trace is NaN.

    Parameters
    ----------
    frames : array (T, H, W)
        The movie (may be a memory map: it is read ``_CHUNK_FRAMES`` frames at a time).
    footprints : ndarray (N, H, W)
        The footprints whose traces are fitted.
    fixed_footprints, fixed_traces : ndarray (K, H, W), (K, T)
        The other cells, subtracted.
    background_footprints, background_traces : ndarray (B, H, W), (B, T), optional
        Background components, subtracted.
    baseline : ndarray (H, W), optional
        Static per-pixel offset, subtracted.
    rings : scipy.sparse matrix (N, H*W), optional
        Each footprint's neuropil ring (:func:`neuropil_rings`); None: no neuropil correction.
    neuropil_coefficient : float in [0, 1]
        Fraction of the ring's fluctuations taken off the footprint.
    nonnegative : bool
        Traces >= 0 (HALS sweeps from the clipped least-squares solution). False: the plain
        least-squares fit, which is negative where a footprint is dimmer than the model beneath it
        (a soma's dark nucleus under a smooth background model); clipping it at 0 would hide
        whatever happens below that level.
    sweeps : int
        HALS sweeps after the clipped least-squares start.

    Returns
    -------
    traces : ndarray (N, T) float32
    neuropil : ndarray (N, T) float32 or None
        Each ring's trace (the residual's mean over the ring; NaN for a ring too small to use), None
        without rings.
    """
    T, H, W = frames.shape
    N = footprints.shape[0]
    if rings is not None:
        rings = sparse.csr_matrix(rings, dtype=np.float32)
    _check(frames.shape, footprints, fixed_footprints, fixed_traces, background_footprints, background_traces,
           rings, neuropil_coefficient)
    if N == 0:
        return np.zeros((0, T), np.float32), None if rings is None else np.zeros((0, T), np.float32)
    A = sparse.csr_matrix(footprints.reshape(N, -1), dtype=np.float32)
    pix = np.unique(np.concatenate([A.indices, rings.indices if rings is not None else np.zeros(0, int)]))
    A = A[:, pix]
    R = None
    if rings is not None:
        ring_size = np.asarray(rings.sum(axis=1)).ravel()
        usable = ring_size >= A.getnnz(axis=1)
        R = sparse.diags(np.where(usable, 1.0 / np.maximum(ring_size, 1), 0.0).astype(np.float32)) @ rings[:, pix]
    others = [o for o in (_restricted(fixed_footprints, fixed_traces, pix),
                          _restricted(background_footprints, background_traces, pix)) if o is not None]
    base = None if baseline is None else np.asarray(baseline, np.float32).reshape(-1)[pix]
    AtX = np.empty((N, T))
    neuropil = None if R is None else np.empty((N, T))
    flat_rows, flat_cols = np.unravel_index(pix, (H, W))
    for t0 in range(0, T, _CHUNK_FRAMES):
        t1 = min(T, t0 + _CHUNK_FRAMES)
        Y = np.asarray(frames[t0:t1][:, flat_rows, flat_cols], np.float32).T   # (pixels, frames), a copy
        if base is not None:
            Y -= base[:, None]
        for F, C in others:
            Y -= F.T @ C[:, t0:t1]
        AtX[:, t0:t1] = A @ Y
        if R is not None:
            neuropil[:, t0:t1] = R @ Y
    if R is not None:
        # each footprint's pixels less c x its ring's fluctuations: A.(Y - c dn 1) = A.Y - c dn sum(A)
        fluctuation = neuropil - np.median(neuropil, axis=1, keepdims=True)
        AtX -= neuropil_coefficient * np.asarray(A.sum(axis=1), np.float64) * fluctuation
        neuropil[~usable] = np.nan
    AtA = (A @ A.T).toarray().astype(np.float64)
    traces = np.linalg.lstsq(AtA, AtX, rcond=None)[0]
    if nonnegative:
        traces = _hals_H(np.maximum(traces, 0.0), AtX, AtA, sweeps)
    traces = traces.astype(np.float32)
    return traces, None if neuropil is None else neuropil.astype(np.float32)
