"""Nonnegative deconvolution with an AR(2) calcium model: each spike's transient rises and decays.

Model: ``c_t = g1 c_{t-1} + g2 c_{t-2} + s_t / h_max`` with ``s_t >= 0``; with roots ``r_decay`` and
``r_rise`` (``g1 = r_decay + r_rise``, ``g2 = -r_decay r_rise``), a spike's transient is the
difference of two exponentials, scaled so that it peaks at ``s_t`` (as the AR(1) jump does). At
imaging rates where the indicator's rise spans a few frames (GCaMP6 at 30 Hz: ~50-100 ms) an AR(1)
model puts one event's spike over several frames; the AR(2) model puts it at the onset.

The convex problem ``min ||y - K s||^2, s >= 0`` (``K`` the causal filter, applied in O(T)) is solved
by accelerated projected gradient (FISTA with adaptive restart). Then, as OASIS's minimal spike size
does for AR(1), events (runs of consecutive nonzero frames) smaller in total than ``s_min`` are removed
and the others refitted on their frames.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["ar2_from_time_constants", "estimate_ar2", "deconvolve_ar2"]


def ar2_from_time_constants(decay_s: float, rise_s: float, frame_rate: float):
    """(g1, g2) of the AR(2) model with the given decay and rise time constants (seconds)."""
    r_decay = np.exp(-1.0 / (decay_s * frame_rate))
    r_rise = np.exp(-1.0 / (rise_s * frame_rate)) if rise_s > 0 else 0.0
    return float(r_decay + r_rise), float(-r_decay * r_rise)


def estimate_ar2(y, lags=10):
    """(g1, g2) from the trace's autocovariance: the Yule-Walker equations
    ``acov(k) = g1 acov(k-1) + g2 acov(k-2)`` for k = 3 .. ``lags`` by least squares (lag 0 holds the
    white noise, so equations that use it are left out). None when they do not give two real roots in
    (0, 1), i.e. a transient that rises and decays."""
    x = np.asarray(y, np.float64) - np.mean(y)
    if x.size < 4 * lags:
        return None
    acov = np.array([float(np.dot(x[:x.size - k], x[k:])) / x.size for k in range(lags + 1)])
    ks = np.arange(3, lags + 1)
    a = np.stack([acov[ks - 1], acov[ks - 2]], axis=1)
    (g1, g2), *_ = np.linalg.lstsq(a, acov[ks], rcond=None)
    disc = g1 * g1 + 4 * g2
    if disc < 0:
        return None
    roots = ((g1 + np.sqrt(disc)) / 2, (g1 - np.sqrt(disc)) / 2)
    if not all(0 < r < 0.999 for r in roots):
        return None
    return float(g1), float(g2)


def _peak(g1, g2, n=10000):
    """Peak of the impulse response of 1 / (1 - g1 z^-1 - g2 z^-2) (which starts at 1)."""
    h = lfilter([1.0], [1.0, -g1, -g2], np.r_[1.0, np.zeros(n - 1)])
    return float(h.max())


def _fista(y, apply, apply_t, lipschitz, s, free, max_iter, tol):
    """Returns (s, converged): False when ``max_iter`` ended it."""
    x = s * free
    z = x.copy()
    t = 1.0
    for _ in range(max_iter):
        x_new = np.maximum(z - apply_t(apply(z) - y) / lipschitz, 0.0) * free
        step = x_new - x
        if np.dot(z - x_new, step) > 0:       # adaptive restart: momentum points uphill
            t = 1.0
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * step
        x, t = x_new, t_new
        if np.sqrt(np.dot(step, step)) <= tol * max(np.sqrt(np.dot(x, x)), 1e-12):
            return x, True
    return x, False


def deconvolve_ar2(y, g1, g2, s_min=0.0, *, max_iter=3000, tol=1e-6):
    """Calcium ``c``, spikes ``s`` (each spike the peak of its transient) of a baseline-free trace, and
    whether the solver converged within ``max_iter`` (``(c, s, converged)``).

    y : (T,) trace; g1, g2 : AR(2) coefficients with real roots in [0, 1) (``g2 = 0``: AR(1));
    s_min : events (runs of consecutive spike frames) with a smaller total are dropped.
    The iterations needed grow with the time constants in frames (~2500 at 30 Hz with a 1 s decay
    and a 0.1 s rise, each O(T)): about 10x the cost of AR(1)'s OASIS.
    """
    y = np.asarray(y, np.float64)
    scale = _peak(g1, g2)
    a = [1.0, -g1, -g2]

    def apply(s):
        return lfilter([1.0 / scale], a, s)

    def apply_t(r):
        return lfilter([1.0 / scale], a, r[::-1])[::-1]

    # ||K||^2 <= (sum of the nonnegative impulse response)^2
    lipschitz = (1.0 / ((1.0 - g1 - g2) * scale)) ** 2
    free = np.ones_like(y)
    s, converged = _fista(y, apply, apply_t, lipschitz, np.zeros_like(y), free, max_iter, tol)
    if s_min > 0:
        on = s > 1e-9 * max(1.0, s.max(initial=0.0))
        edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
        for a0, a1 in zip(edges[::2], edges[1::2]):
            if s[a0:a1].sum() < s_min:
                free[a0:a1] = 0.0
        s, refit_converged = _fista(y, apply, apply_t, lipschitz, s, free * on, max_iter, tol)
        converged = converged and refit_converged
    s[s < 1e-9 * max(1.0, s.max(initial=0.0))] = 0.0
    return apply(s), s, converged
