"""Numerical kernels of the motion-correction stage (see :mod:`caimg_nmf.stages.motion`).

Batched FFT phase correlation with sub-pixel refinement, and application of rigid shifts or
per-pixel displacement fields. Everything works on a block of frames ``(n, h, w)`` at once,
reads its inputs only, and keeps no state.

Conventions
-----------
A *peak* ``p = (py, px)`` is where the cross-correlation of a frame with the template is
largest: the frame looks like the template displaced by ``+p``. The *shift* that aligns the
frame is ``-p`` (``scipy.ndimage.shift(frame, -p)`` looks like the template).
"""
from __future__ import annotations

import os

import numpy as np
import scipy.fft as sfft
from scipy import ndimage, special

_WORKERS = max(1, os.cpu_count() or 1)
HIGHPASS_FACTOR = 8.0  # the wide Gaussian of the difference of Gaussians, in units of sigma
_TINY = np.float32(1e-30)


def taper_window(h: int, w: int) -> np.ndarray:
    """Raised-cosine taper (h, w) that fades the frame's borders to zero before the FFT.

    It removes the wrap-around edge that would otherwise correlate with itself at zero shift.
    Each border ramp is about a tenth of the side (at most a quarter).
    """
    def ramp(n):
        win = np.ones(n, np.float32)
        width = min(n // 4, int(round(n / 10)))
        if width >= 1:
            r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
            win[:width] = r
            win[n - width:] = r[::-1]
        return win
    return np.outer(ramp(h), ramp(w))


def band_pass(h: int, w: int, sigma: float):
    """Transfer function (h, w//2+1) of a difference of Gaussians (sigma, HIGHPASS_FACTOR*sigma); None if off."""
    if sigma <= 0:
        return None
    f2 = sfft.fftfreq(h)[:, None] ** 2 + sfft.rfftfreq(w)[None, :] ** 2
    a = 2.0 * np.pi ** 2 * sigma ** 2
    return (np.exp(-a * f2) - np.exp(-a * HIGHPASS_FACTOR ** 2 * f2)).astype(np.float32)


def _whitened(x: np.ndarray) -> np.ndarray:
    """rfft2 of a block (n, h, w) of centred, tapered images, scaled to unit magnitude (phase only)."""
    X = sfft.rfft2(x, axes=(-2, -1), workers=_WORKERS)
    mag = np.abs(X)
    peak = mag.max(axis=(-2, -1), keepdims=True)
    mag += np.float32(1e-6) * peak + _TINY
    X /= mag
    return X


def _centred(block: np.ndarray, win: np.ndarray) -> np.ndarray:
    mean = block.mean(axis=(-2, -1), dtype=np.float64, keepdims=True).astype(np.float32)
    x = block - mean
    x *= win
    return x


def has_structure(block: np.ndarray) -> np.ndarray:
    """Per frame: True unless the frame is constant (a constant frame cannot be registered)."""
    flat = block.reshape(block.shape[0], -1)
    return flat.max(axis=1) > flat.min(axis=1)


def reference_spectrum(template: np.ndarray, win: np.ndarray, filt):
    """Conjugate, whitened and band-passed spectrum of the template (h, w//2+1), or None if constant."""
    if template.size == 0 or not has_structure(template[None])[0]:
        return None
    R = np.conj(_whitened(_centred(template[None].astype(np.float32), win))[0])
    if filt is not None:
        R *= filt
    return R.astype(np.complex64)


def null_spread(win: np.ndarray) -> np.ndarray:
    """Relative spread (h, w) of the correlation surface at each lag when the frame matches nothing.

    Whitening makes the surface's mean square the same for every frame (Parseval), but not even over
    lags: the taper weights the middle of the frames, so at small lags more weighted pixels overlap.
    Under the null the variance at lag d follows the autocorrelation of the squared taper,
    ``h*w * sum_x win(x)**2 win(x+d)**2 / (sum_x win(x)**2)**2`` (mean 1 over all lags; up to 1.25
    at lag 0, slightly above what whitened noise shows: conservative). Returns its square root.
    """
    w2 = win.astype(np.float64) ** 2
    h, w = win.shape
    auto = sfft.irfft2(np.abs(sfft.rfft2(w2)) ** 2, s=(h, w))
    return np.sqrt(np.maximum(auto * (h * w) / w2.sum() ** 2, 1e-12))


def significance_threshold(n_lags: int, false_rate: float) -> float:
    """z a peak must exceed so that pure noise passes with probability at most ``false_rate``.

    Bonferroni over the ``n_lags`` lags searched (under the null the surface's values are about
    Gaussian; neighbouring lags are correlated, which makes this conservative)."""
    return float(-special.ndtri(false_rate / max(int(n_lags), 1)))


def find_peaks(block: np.ndarray, ref_spec, win: np.ndarray, limit, upsample: int,
               center=None, radius=None, min_z: float = 0.0, judge=(), spread=None):
    """Cross-correlation peaks (n, 2) float64 of each frame of ``block`` against the template.

    Parameters
    ----------
    block : (n, h, w) float32 frames (read only).
    ref_spec : from :func:`reference_spectrum` (None: the template is flat, all peaks are 0).
    limit : (ly, lx) largest |peak| searched per axis; must be <= (h-1)//2, (w-1)//2.
    upsample : sub-pixel factor; the integer peak is refined on a 1/upsample grid by a local
        upsampled DFT of the cross-power spectrum (Guizar-Sicairos et al. 2008), batched.
    center, radius : optional (n, 2) centres and (ry, rx) integer radii: only peaks within
        ``radius`` (and ``limit``) of the centre are searched, and the refined peak is kept
        within ``radius`` of the (unrounded) centre.
    min_z : a peak must stand out from the correlation surface's own noise: the highest point of
        the surface over its root mean square (scaled by :func:`null_spread` at its lag) is its z,
        which must exceed ``min_z`` (see :func:`significance_threshold`). 0 accepts every peak.
    judge : [(rows, spectrum)]: frames (indices into ``block``) whose peaks must be confirmed by
        another reference (as ``ref_spec``, not None): for frames that are part of the template,
        the rest of it (a frame always matches its own copy). Their z is that of the correlation
        with it at their peak's lag (at most its highest point, so the threshold for the whole
        search holds). A frame whose peak is not confirmed (z at most ``min_z``) is searched again
        on that reference alone: its own copy may have drawn the peak to where the frame was
        first put.
    spread : ``null_spread(win)``, when the caller has it.

    Returns
    -------
    peaks : (n, 2) float64. Constant frames, and frames whose peak does not stand out, get their
        centre (0 without one): nothing says where else they should go.
    heights : (n,) correlation at each peak, a match quality in [0, 1] (about); constant frames 0.
    z : (n,) float64 significance (0 for constant frames).
    """
    n, h, w = block.shape
    cen_f = np.zeros((n, 2)) if center is None else np.asarray(center, dtype=np.float64)
    if ref_spec is None or n == 0:
        return cen_f.copy(), np.zeros(n), np.zeros(n)
    ly, lx = int(np.floor(limit[0])), int(np.floor(limit[1]))
    ry, rx = (ly, lx) if radius is None else (min(int(radius[0]), (h - 1) // 2), min(int(radius[1]), (w - 1) // 2))
    cen = np.rint(cen_f).astype(np.int64)
    cen[:, 0] = np.clip(cen[:, 0], -ly, ly)
    cen[:, 1] = np.clip(cen[:, 1], -lx, lx)
    py = cen[:, :1] + np.arange(-ry, ry + 1)            # (n, 2ry+1) candidate rows
    px = cen[:, 1:] + np.arange(-rx, rx + 1)
    allowed = (np.abs(py) <= ly)[:, :, None] & (np.abs(px) <= lx)[:, None, :]

    spread = null_spread(win) if spread is None else spread
    R = _whitened(_centred(block, win))
    judged = [(rows, R[rows] * spec) for rows, spec in judge]   # before R is multiplied in place
    R *= ref_spec
    peak, height, z = _best_lag(sfft.irfft2(R, s=(h, w), axes=(-2, -1), workers=_WORKERS), py, px, allowed, spread)
    for rows, cross in judged:
        z[rows] = _z_at(cross, peak[rows], spread)
        again = z[rows] <= min_z
        if min_z > 0 and again.any():
            redo = rows[again]
            R[redo] = cross[again]  # the sub-pixel refinement too
            peak[redo], height[redo], z[redo] = _best_lag(
                sfft.irfft2(cross[again], s=(h, w), axes=(-2, -1), workers=_WORKERS),
                py[redo], px[redo], allowed[redo], spread)
    del judged
    if upsample > 1:
        peak, up_height = _refine(R, peak, h, w, upsample)
        height = np.maximum(height, up_height / (h * w))
    peak[:, 0] = np.clip(peak[:, 0], -limit[0], limit[0])
    peak[:, 1] = np.clip(peak[:, 1], -limit[1], limit[1])
    if radius is not None:
        peak = np.clip(peak, cen_f - np.asarray(radius, float), cen_f + np.asarray(radius, float))
    flat = ~has_structure(block)
    z[flat] = 0.0
    height[flat] = 0.0
    unmoved = flat | (z <= min_z) if min_z > 0 else flat
    peak[unmoved] = cen_f[unmoved]
    return peak, height, z


def _best_lag(cc: np.ndarray, py, px, allowed, spread: np.ndarray):
    """Highest candidate lag of each correlation surface (n, h, w): integer peak (n, 2), height (n,)
    and its z (height over the surface's root mean square and the null spread at that lag)."""
    n, h, w = cc.shape
    rows = np.arange(n)[:, None, None]
    vals = cc[rows, (py % h)[:, :, None], (px % w)[:, None, :]]
    vals = np.where(allowed, vals, -np.inf).reshape(n, -1)
    iy, ix = np.unravel_index(vals.argmax(axis=1), (py.shape[1], px.shape[1]))
    peak = np.stack([py[np.arange(n), iy], px[np.arange(n), ix]], axis=1).astype(np.float64)
    height = vals.max(axis=1).astype(np.float64)
    rms = np.sqrt(np.einsum("nij,nij->n", cc, cc).astype(np.float64) / (h * w))   # float32 sums: to ~1e-5
    at_peak = spread[peak[:, 0].astype(np.int64) % h, peak[:, 1].astype(np.int64) % w]
    return peak, height, height / np.maximum(rms * at_peak, 1e-30)


def _half_weights(w: int) -> np.ndarray:
    """Weights of the columns of a half spectrum (w//2+1) standing for the whole: 2, but 1 for the
    zero frequency and (w even) the Nyquist column."""
    weight = np.full(w // 2 + 1, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    return weight


def _z_at(cross: np.ndarray, lags: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """z of the correlation whose half spectrum is ``cross`` (n, h, w//2+1) at integer ``lags``
    (n, 2): its value there (an inverse DFT at one point) over the surface's root mean square
    (Parseval) and the null spread at that lag; without the whole inverse FFT."""
    n, h, wk = cross.shape
    w = spread.shape[1]
    weight = _half_weights(w)
    ey = np.exp(2j * np.pi * lags[:, :1] * sfft.fftfreq(h)).astype(np.complex64)                    # (n, h)
    ex = (np.exp(2j * np.pi * lags[:, 1:] * sfft.rfftfreq(w)) * weight).astype(np.complex64)       # (n, wk)
    value = np.einsum("nk,nk->n", np.matmul(ey[:, None, :], cross)[:, 0, :], ex).real
    power = np.einsum("nhk,k->n", cross.real ** 2 + cross.imag ** 2, weight.astype(np.float32))
    at = spread[lags[:, 0].astype(np.int64) % h, lags[:, 1].astype(np.int64) % w]
    return value / np.maximum(np.sqrt(power.astype(np.float64)) * at, 1e-30)


def _refine(R: np.ndarray, peak: np.ndarray, h: int, w: int, up: int) -> np.ndarray:
    """Refine integer peaks on a 1/up grid (+-0.7 px) by evaluating the inverse DFT there.

    Returns the refined peaks and the (unnormalised, h*w times the irfft2 scale) heights."""
    m = int(np.ceil(1.5 * up))
    off = (np.arange(m) - m // 2) / up
    fy = sfft.fftfreq(h)
    fx = sfft.rfftfreq(w)
    weight = _half_weights(w)  # the half spectrum stands for both halves: Re(sum) with weights
    ypos = peak[:, :1] + off                               # (n, m)
    xpos = peak[:, 1:] + off
    ey = np.exp(2j * np.pi * ypos[:, :, None] * fy[None, None, :]).astype(np.complex64)    # (n, m, h)
    ex = (np.exp(2j * np.pi * fx[None, :, None] * xpos[:, None, :])
          * weight[None, :, None]).astype(np.complex64)                                     # (n, wk, m)
    up_cc = np.matmul(np.matmul(ey, R), ex).real                                           # (n, m, m)
    n = peak.shape[0]
    flat_cc = up_cc.reshape(n, -1)
    best = flat_cc.argmax(axis=1)
    iy, ix = np.unravel_index(best, (m, m))
    return peak + np.stack([off[iy], off[ix]], axis=1), flat_cc[np.arange(n), best].astype(np.float64)


def apply_shifts(block: np.ndarray, shifts: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out[i] = block[i] shifted by shifts[i] (bilinear; borders repeat the nearest edge pixel)."""
    for i in range(block.shape[0]):
        s = shifts[i]
        if s[0] == 0 and s[1] == 0:
            out[i] = block[i]
        else:
            ndimage.shift(block[i], s, output=out[i], order=1, mode="nearest", prefilter=False)
    return out


def interp_weights(n_pixels: int, centers: np.ndarray) -> np.ndarray:
    """(n_pixels, len(centers)) linear-interpolation weights between patch centres, constant beyond."""
    eye = np.eye(len(centers))
    x = np.arange(n_pixels, dtype=np.float64)
    return np.stack([np.interp(x, centers, eye[i]) for i in range(len(centers))], axis=1)


def apply_field(block: np.ndarray, patch_shifts: np.ndarray, wy: np.ndarray, wx: np.ndarray,
                out: np.ndarray) -> np.ndarray:
    """Warp each frame by the per-pixel shift field interpolated from its patch shifts.

    patch_shifts : (n, ny, nx, 2); wy (h, ny) and wx (w, nx) from :func:`interp_weights`.
    out[i](y, x) = block[i](y - sy(y, x), x - sx(y, x)), bilinear, borders repeat the edge.
    """
    n, h, w = block.shape
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    coords = np.empty((2, h, w), np.float32)
    for i in range(n):
        sy = (wy @ patch_shifts[i, :, :, 0] @ wx.T).astype(np.float32)
        sx = (wy @ patch_shifts[i, :, :, 1] @ wx.T).astype(np.float32)
        np.subtract(yy, sy, out=coords[0])
        np.subtract(xx, sx, out=coords[1])
        ndimage.map_coordinates(block[i], coords, output=out[i], order=1, mode="nearest", prefilter=False)
    return out
