"""Spike inference: nonnegative deconvolution of each trace with an AR(1) calcium model (or, with
``spikes.order = 2``, an AR(2) model with a rise: :mod:`caimg_nmf.stages._spikes_ar2`).

Model: ``c_t = g c_{t-1} + s_t`` with ``s_t >= 0`` (each spike adds to the calcium, which decays by
``g = exp(-1 / (decay_time_s x frame_rate))`` per frame), and the trace is ``y_t = b + c_t + noise``.
The baseline ``b`` is a low percentile of the trace. The fit minimises ``||y - b - c||^2`` subject to
every nonzero spike being at least ``min_spike`` noise standard deviations, solved exactly by the
pool-adjacent-violators algorithm of OASIS (Friedrich, Zhou & Paninski 2017): walking forward in
time, a pool of frames shares one exponentially decaying segment; when a new segment would start
lower than the previous one predicts (+ the minimal spike), the two pools are merged.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError
from ._spikes_ar2 import ar2_from_time_constants, deconvolve_ar2, estimate_ar2

__all__ = ["infer_spikes", "oasis_ar1", "estimate_decay", "SpikeModelWarning"]


class SpikeModelWarning(UserWarning):
    """The spike model could not be fitted as configured for some traces (said how many)."""


def oasis_ar1(y: np.ndarray, g: float, s_min: float = 0.0):
    """OASIS for AR(1): returns (calcium c, spikes s) for a baseline-free trace ``y``."""
    y = np.asarray(y, np.float64)
    T = y.size
    v = np.empty(T)    # pool value numerator  (sum of y_t g^(t - start))
    w = np.empty(T)    # pool weight            (sum of g^(2 (t - start)))
    start = np.empty(T, np.int64)
    length = np.empty(T, np.int64)
    n = 0
    for t in range(T):
        v[n], w[n], start[n], length[n] = y[t], 1.0, t, 1
        n += 1
        while n > 1:
            gl = g ** length[n - 2]
            if (v[n - 2] / w[n - 2]) * gl + s_min <= v[n - 1] / w[n - 1]:
                break
            v[n - 2] += gl * v[n - 1]
            w[n - 2] += gl * gl * w[n - 1]
            length[n - 2] += length[n - 1]
            n -= 1
    c = np.empty(T)
    for i in range(n):
        level = max(0.0, v[i] / w[i])
        c[start[i]:start[i] + length[i]] = level * g ** np.arange(length[i])
    s = np.empty(T)
    s[0] = c[0]
    s[1:] = c[1:] - g * c[:-1]
    s[s < 1e-9 * max(1.0, np.abs(c).max())] = 0.0
    return c, s


def estimate_decay(y: np.ndarray) -> float:
    """AR(1) coefficient from the autocovariance at lags 1 and 2 (white noise does not bias them)."""
    x = np.asarray(y, np.float64) - np.mean(y)
    if x.size < 4:
        return 0.9
    a1 = np.dot(x[:-1], x[1:])
    a2 = np.dot(x[:-2], x[2:])
    if a1 <= 0 or a2 <= 0:
        return 0.9
    return float(np.clip(a2 / a1, 0.5, 0.995))


def infer_spikes(traces, cfg, frame_rate: float):
    """Spikes and denoised traces for every row of ``traces`` (K, T).

    Returns ``(spikes, denoised)``, both (K, T) float32 in the traces' units: ``spikes`` is the
    jump in fluorescence at each spike (0 elsewhere; for AR(2) the peak of its transient),
    ``denoised`` = baseline + fitted calcium.
    """
    tr = np.asarray(traces, np.float32)
    if tr.ndim != 2:
        raise InputError(f"infer_spikes needs traces of shape (cells, frames); got shape {tr.shape}.") from None
    if not (frame_rate and frame_rate > 0):
        raise InputError(f"frame_rate must be positive, got {frame_rate!r}.") from None
    K, T = tr.shape
    spikes = np.zeros((K, T), np.float32)
    denoised = np.zeros((K, T), np.float32)
    if T < 3:
        return spikes, tr.copy()
    fixed_g = np.exp(-1.0 / (cfg.decay_time_s * frame_rate)) if cfg.decay_time_s > 0 else None
    fixed_ar2 = (ar2_from_time_constants(cfg.decay_time_s, cfg.rise_time_s, frame_rate)
                 if cfg.order == 2 and cfg.decay_time_s > 0 and cfg.rise_time_s > 0 else None)
    n_capped, n_ar1 = 0, 0
    for k in range(K):
        y = tr[k].astype(np.float64)
        if not np.isfinite(y).all():
            raise InputError(f"trace {k} contains NaN or infinite values.") from None
        base = np.percentile(y, cfg.baseline_percentile)
        noise = np.median(np.abs(np.diff(y))) / (0.6745 * np.sqrt(2))
        ar2 = (fixed_ar2 or estimate_ar2(y)) if cfg.order == 2 else None
        n_ar1 += cfg.order == 2 and ar2 is None
        if ar2 is not None:
            c, s, converged = deconvolve_ar2(y - base, *ar2, cfg.min_spike * noise)
            n_capped += not converged
        else:
            g = fixed_g if fixed_g is not None else estimate_decay(y)
            c, s = oasis_ar1(y - base, g, cfg.min_spike * noise)
        spikes[k] = s
        denoised[k] = c + base
    if n_ar1:
        warnings.warn(f"spikes.order = 2: the autocovariance of {n_ar1} of {K} traces shows no rise; the AR(1) "
                      "model was used for them (set spikes.decay_time_s and rise_time_s to impose one).",
                      SpikeModelWarning, stacklevel=2)
    if n_capped:
        warnings.warn(f"AR(2) deconvolution of {n_capped} of {K} traces stopped at its iteration limit before "
                      "converging; their spikes are approximate.", SpikeModelWarning, stacklevel=2)
    return spikes, denoised
