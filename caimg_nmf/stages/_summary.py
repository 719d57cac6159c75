"""Summary images of a time-binned movie (local correlation, peak-to-noise) and the seeds taken
from them, for :func:`caimg_nmf.stages.detect.find_cells`."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi

__all__ = ["summary_images", "find_seeds", "in_threads"]


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
    band = max(1, (1 << 22) // max(1, T * W))
    for r0 in range(0, H, band):   # in bands of rows: no movie-sized temporaries
        z = Z[:, r0:r0 + band]
        z -= z.mean(axis=0)
        z /= np.sqrt((z * z).mean(axis=0)) + 1e-9
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


def in_threads(fn, items, n_jobs):
    """Run ``fn`` on each item, in ``n_jobs`` threads (scipy.ndimage filters and numpy reductions
    release the GIL); ``fn`` writes its own slice of an output, so the order does not matter."""
    if n_jobs <= 1 or len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(n_jobs) as pool:
        for _ in pool.map(fn, items):
            pass


def _highpass_frames(Xb, f0, diameter, chunk=64, n_jobs=1, out=None):
    """(Xb - f0), each frame minus its wide box blur (~2.5 diameters), then smoothed over ~half a
    diameter; computed in chunks of frames into ``out`` (a new array, or ``Xb`` itself: each chunk is
    read before it is written)."""
    Y = np.empty(Xb.shape, np.float32) if out is None else out
    wide = max(3, int(round(2.5 * diameter)) | 1)
    sm = max(1, int(round(diameter / 2)) | 1)

    def one(t0):
        y = Xb[t0:t0 + chunk] - f0
        y -= _box_blur(y, wide)
        Y[t0:t0 + chunk] = _box_blur(y, sm) if sm > 1 else y

    in_threads(one, list(range(0, Xb.shape[0], chunk)), n_jobs)
    return Y


def summary_images(Xb: np.ndarray, diameter: float, baseline_percentile: float = 10.0, n_jobs: int = 1,
                   overwrite: bool = False):
    """Correlation and peak-to-noise images of a time-binned raw movie.

    Each pixel's resting level (a low percentile over time) is subtracted; each frame is high-passed
    (minus a wide box blur, about 2.5 diameters) so that neuropil and diffuse background do not make
    every pixel correlated, then smoothed over about half a diameter (cells are blobs; noise is not).
    Returns ``(corr, pnr, valid)``; ``valid`` is False where the mean image is dark padding (e.g.
    left by motion correction) and near it. Works in bands of rows / chunks of frames (``n_jobs``
    threads): besides ``Xb`` it allocates one array of its size, or none with ``overwrite`` (``Xb``
    is then high-passed in place: for a residual that is not needed afterwards).
    """
    T, H, W = Xb.shape
    step = max(1, T // 150)
    f0 = np.empty((H, W), np.float32)
    mean_image = np.empty((H, W), np.float32)
    band = max(1, (1 << 22) // max(1, T * W))
    bands = list(range(0, H, band))

    def levels(r0):
        f0[r0:r0 + band] = np.percentile(Xb[::step, r0:r0 + band], baseline_percentile, axis=0)
        mean_image[r0:r0 + band] = Xb[:, r0:r0 + band].mean(axis=0)

    in_threads(levels, bands, n_jobs)
    Y = _highpass_frames(Xb, f0, diameter, n_jobs=n_jobs, out=Xb if overwrite else None)
    pnr = np.empty((H, W), np.float32)

    def peak_to_noise(r0, Y=Y):
        ys = ndi.uniform_filter1d(Y[:, r0:r0 + band], 2, axis=0)
        pnr[r0:r0 + band] = (ys.max(axis=0) - np.median(ys, axis=0)) / _noise_std(ys)

    in_threads(peak_to_noise, bands, n_jobs)
    corr = _local_corr(Y)
    del Y
    bright = mean_image > 0.2 * np.median(mean_image)
    valid = ndi.binary_erosion(bright, iterations=max(1, int(round(diameter / 2))), border_value=1)
    return corr.astype(np.float32), pnr.astype(np.float32), valid


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
