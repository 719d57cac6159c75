"""Traces: ΔF/F with a running low-percentile baseline.

For each cell, the fluorescence is F(t) = trace(t) + resting(t), where ``resting`` is the light under
the footprint that the trace does not carry (the subtracted pixel baseline of the whole-field method,
or the background/neuropil model of the local method, projected onto the footprint). Both get a
running ``baseline_percentile`` over ``baseline_window_s`` seconds, so slow drifts and bleaching are
followed: ΔF/F = (trace − F0_trace) / F0_F, as CaImAn's detrended ΔF/F does — the numerator is the
cell's own activity (neuropil fluctuations are not counted as the cell's), the denominator all the
light the cell sits on.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["running_percentile", "compute_dff", "resting_fluorescence", "background_under"]


def running_percentile(traces, window, percentile) -> np.ndarray:
    """Running percentile along time of each row of ``traces`` (K, T), window in frames.

    Evaluated on a grid of about 20 points per window and linearly interpolated in between: the
    baseline is slow by design, and this keeps long recordings fast.
    """
    traces = np.asarray(traces, np.float64)
    K, T = traces.shape
    window = int(max(3, min(window, T)))
    if K == 0 or T == 0:
        return traces.copy()
    step = max(1, window // 20)
    if step == 1:
        return ndimage.percentile_filter(traces, percentile, size=(1, window), mode="nearest")
    centres = np.arange(0, T, step)
    half = window // 2
    values = np.empty((K, centres.size))
    for i, c in enumerate(centres):
        values[:, i] = np.percentile(traces[:, max(0, c - half):min(T, c + half + 1)], percentile, axis=1)
    t = np.arange(T)
    return np.stack([np.interp(t, centres, v) for v in values])


def resting_fluorescence(footprints, baseline_image) -> np.ndarray:
    """Footprint-weighted mean of a baseline image under each footprint (K,): F at rest at the peak."""
    K = footprints.shape[0]
    fp = footprints.reshape(K, -1).astype(np.float64)
    weights = fp.sum(axis=1)
    weights[weights == 0] = 1.0
    return (fp @ np.asarray(baseline_image, np.float64).ravel()) / weights


def compute_dff(traces, resting, frame_rate, cfg) -> np.ndarray:
    """ΔF/F of each trace.

    Parameters
    ----------
    traces : ndarray (K, T), activity in movie units
    resting : ndarray (K,) or (K, T), fluorescence the trace sits on (not the cell's own)
    frame_rate : float, Hz
    cfg : TracesConfig (baseline_percentile, baseline_window_s)

    Returns
    -------
    ndarray (K, T) float32
    """
    traces = np.asarray(traces, np.float64)
    resting = np.asarray(resting, np.float64)
    F = traces + (resting[:, None] if resting.ndim == 1 else resting)
    window = int(round(cfg.baseline_window_s * frame_rate))
    F0_trace = running_percentile(traces, window, cfg.baseline_percentile)
    F0 = running_percentile(F, window, cfg.baseline_percentile)
    # A floor on F0 avoids dividing by ~0 where there is no resting light (e.g. synthetic data).
    floor = max(1e-6, 1e-3 * float(np.abs(F).max()) if F.size else 1.0)
    return ((traces - F0_trace) / np.maximum(F0, floor)).astype(np.float32)


def background_under(footprints, background_footprints, background_traces) -> np.ndarray:
    """Background light under each footprint over time (K, T): the footprint-weighted mean of the
    background model b·f, in the same units as a trace (fluorescence at the footprint's peak)."""
    K = footprints.shape[0]
    B = background_footprints.shape[0]
    if K == 0 or B == 0:
        return np.zeros((K, background_traces.shape[1] if B else 0))
    Bf = background_footprints.reshape(B, -1)
    overlap = np.empty((K, B))
    weights = np.empty(K)
    for k0 in range(0, K, 64):   # in float32 chunks: (K, pixels) float64 copies would take GBs
        A = footprints[k0:k0 + 64].reshape(-1, Bf.shape[1])
        overlap[k0:k0 + 64] = A @ Bf.T
        weights[k0:k0 + 64] = A.sum(axis=1)
    weights[weights == 0] = 1.0
    return (overlap / weights[:, None]) @ np.asarray(background_traces, np.float64)
