"""Traces of footprints fitted with the rest of the model held fixed, each corrected for the
neuropil in a ring around it (for the somata found in the mean image, :mod:`.somata`)."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._local_fit import _hals_H

__all__ = ["fit_fixed_traces", "neuropil_rings"]

#: frames read at a time by :func:`fit_fixed_traces`
_CHUNK_FRAMES = 256


def neuropil_rings(centres: np.ndarray, radius: float, shape: tuple, exclude: np.ndarray) -> np.ndarray:
    """(N, H, W) bool: the ring 1.3 to 2 radii about each centre, less the ``exclude`` pixels (cells)."""
    H, W = shape
    out = np.zeros((len(centres), H, W), bool)
    ro = int(np.ceil(2 * radius))
    yy, xx = np.mgrid[-ro:ro + 1, -ro:ro + 1]
    rr = np.hypot(yy, xx)
    ring = (rr > 1.3 * radius) & (rr <= 2 * radius)
    for k, (y, x) in enumerate(np.asarray(centres, int)):
        y0, y1, x0, x1 = max(0, y - ro), min(H, y + ro + 1), max(0, x - ro), min(W, x + ro + 1)
        out[k, y0:y1, x0:x1] = ring[y0 - (y - ro):y1 - (y - ro), x0 - (x - ro):x1 - (x - ro)] & ~exclude[y0:y1, x0:x1]
    return out


def _check_shapes(frames_shape, footprints, fixed_footprints, fixed_traces, background_footprints,
                  background_traces, rings):
    T, H, W = frames_shape
    for name, F, C in (("footprints", footprints, None), ("fixed", fixed_footprints, fixed_traces),
                       ("background", background_footprints, background_traces)):
        if F is not None and (F.shape[1:] != (H, W) or (C is not None and np.shape(C) != (len(F), T))):
            raise InputError(f"fit_fixed_traces: {name} footprints {F.shape} (and traces "
                             f"{None if C is None else np.shape(C)}) do not fit frames of shape {frames_shape}: "
                             f"they must be (n, {H}, {W}) and (n, {T}).") from None
    if rings is not None and np.shape(rings) != footprints.shape:
        raise InputError(f"fit_fixed_traces: rings {np.shape(rings)} must have the footprints' shape "
                         f"{footprints.shape}.") from None


def fit_fixed_traces(frames, footprints: np.ndarray, fixed_footprints: np.ndarray, fixed_traces: np.ndarray,
                     background_footprints: np.ndarray | None = None, background_traces: np.ndarray | None = None,
                     baseline: np.ndarray | None = None, *, rings: np.ndarray | None = None,
                     neuropil_coefficient: float = 0.7, sweeps: int = 10):
    """Nonnegative traces of ``footprints`` with every other component of the model held fixed, each
    corrected for the neuropil around it.

    The residual (the movie minus the fixed cells, the background and the baseline) is averaged over
    each footprint's ring: its local neuropil trace. ``neuropil_coefficient`` times that is taken
    off the footprint's pixels (Suite2p's F - 0.7 Fneu, as a nonnegative least-squares fit of the
    footprints), since the smooth background components do not follow the neuropil at the scale
    of one cell.

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
    rings : ndarray (N, H, W) bool, optional
        Each footprint's neuropil ring (:func:`neuropil_rings`); None: no neuropil correction.
    neuropil_coefficient : float
        Fraction of the ring's trace taken off the footprint.
    sweeps : int
        HALS sweeps after the clipped least-squares start.

    Returns
    -------
    traces : ndarray (N, T) float32
    neuropil : ndarray (N, T) float32 or None
        Each ring's trace (the residual's mean over the ring; NaN for an empty ring), None
        without rings.
    """
    T, H, W = frames.shape
    N = footprints.shape[0]
    _check_shapes(frames.shape, footprints, fixed_footprints, fixed_traces, background_footprints,
                  background_traces, rings)
    if N == 0:
        return np.zeros((0, T), np.float32), None if rings is None else np.zeros((0, T), np.float32)
    A = footprints.reshape(N, -1)
    R = None if rings is None else rings.reshape(N, -1)
    on = np.zeros(A.shape[1], bool)
    for k0 in range(0, N, 32):   # no (N, pixels) temporary
        on |= A[k0:k0 + 32].any(axis=0)
        if R is not None:
            on |= R[k0:k0 + 32].any(axis=0)
    pix = np.flatnonzero(on)
    A = A[:, pix].astype(np.float64)
    if R is not None:
        R = R[:, pix].astype(np.float64)
        ring_size = R.sum(axis=1)
        R /= np.maximum(ring_size, 1)[:, None]

    def restricted(F, C):
        if F is None or len(F) == 0:
            return np.zeros((0, pix.size)), np.zeros((0, T))
        Fp = F.reshape(len(F), -1)[:, pix]
        touch = np.flatnonzero(Fp.any(axis=1))
        return Fp[touch].astype(np.float64), np.asarray(C)[touch].astype(np.float64)

    others = [restricted(fixed_footprints, fixed_traces), restricted(background_footprints, background_traces)]
    base = np.zeros(pix.size) if baseline is None else np.asarray(baseline, np.float64).reshape(-1)[pix]
    AtX = np.empty((N, T))
    neuropil = None if R is None else np.empty((N, T))
    flat_rows, flat_cols = np.unravel_index(pix, (H, W))
    for t0 in range(0, T, _CHUNK_FRAMES):
        t1 = min(T, t0 + _CHUNK_FRAMES)
        Y = np.asarray(frames[t0:t1][:, flat_rows, flat_cols], np.float64) - base[None]
        for F, C in others:
            Y -= C[:, t0:t1].T @ F
        AtX[:, t0:t1] = A @ Y.T
        if R is not None:
            neuropil[:, t0:t1] = R @ Y.T
    if R is not None:
        # the footprint's pixels less the coefficient x its ring's trace: A.(Y - c n 1) = A.Y - c n sum(A)
        AtX -= neuropil_coefficient * A.sum(axis=1)[:, None] * neuropil
        neuropil[ring_size == 0] = np.nan
    AtA = A @ A.T
    traces = np.maximum(np.linalg.lstsq(AtA, AtX, rcond=None)[0], 0.0)
    traces = _hals_H(traces, AtX, AtA, sweeps).astype(np.float32)
    return traces, None if neuropil is None else neuropil.astype(np.float32)
