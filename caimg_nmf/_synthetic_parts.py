"""Building blocks of :mod:`caimg_nmf.synthetic` (private).

Cell placement, footprint shapes, spike trains and calcium, smooth random fields
(background, neuropil), rigid motion and atomic file writing. Each function takes an
explicit :class:`numpy.random.Generator` so the caller controls determinism.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage, signal

from .errors import InputError

#: Footprint value (relative to its peak) at the nominal cell radius.
EDGE_LEVEL = 0.3
#: Footprint values below this fraction of the peak are set to exactly 0.
CUTOFF = 0.01


def place_centres(rng, n_cells, shape, diameters, min_sep, max_tries=200):
    """Draw cell centres uniformly, rejecting ones closer than ``min_sep``.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_cells : int
    shape : tuple of int
        (H, W) of the field of view.
    diameters : ndarray, shape (K,)
        Per-cell diameters in pixels; centres keep half a diameter from the border.
    min_sep : float
        Minimum centre-to-centre distance in pixels.
    max_tries : int
        Attempts per cell before giving up.

    Returns
    -------
    centres : ndarray, shape (K, 2), float64
        (row, col) of each cell.
    """
    H, W = shape
    centres = np.zeros((n_cells, 2))
    for k in range(n_cells):
        m = min(diameters[k] / 2.0, (min(H, W) - 1) / 2.0)
        for _ in range(max_tries):
            c = rng.uniform([m, m], [H - 1 - m, W - 1 - m])
            if k == 0 or np.min(np.hypot(*(centres[:k] - c).T)) >= min_sep:
                centres[k] = c
                break
        else:
            msg = (f"make_movie: could not place cell {k + 1} of {n_cells} in a {H}x{W} field "
                   f"with centres at least {min_sep:.1f} px apart. Use fewer cells, a larger "
                   f"shape, a smaller cell_diameter or a smaller min_separation.")
            raise InputError(msg) from None
    return centres


def make_footprints(rng, centres, diameters, shape, nucleus_prob=0.3, nucleus_depth=(0.2, 0.4),
                    bodies=False, nucleus_size=0.4):
    """Soft, irregular, elliptical cell footprints with peak 1.

    Each footprint is ``EDGE_LEVEL ** (u ** p)`` where ``u`` is an elliptical radius
    (random ellipticity and orientation, wobbled by low angular harmonics) scaled so that
    ``u = 1`` at the nominal radius, and ``p`` in [2, 3.5] sets how flat-topped the cell
    is. A fraction ``nucleus_prob`` of cells get a dimmer nucleus (centre darkened by a
    fraction drawn from ``nucleus_depth``: 0.2-0.4 a dim nucleus, 0.7-0.9 the ring of a
    cytosolic indicator such as GCaMP, whose nucleus stays dark). Values below ``CUTOFF`` are
    zeroed; each footprint is rescaled to max 1.

    Parameters
    ----------
    rng : numpy.random.Generator
    centres : ndarray, shape (K, 2)
    diameters : ndarray, shape (K,)
    shape : tuple of int
        (H, W).
    nucleus_prob : float
    nucleus_depth : (float, float)
        Range of the fraction of the centre's light a nucleus takes away.
    nucleus_size : float
        Radius of the nucleus (its Gaussian's width) in cell radii.
    bodies : bool
        Also return each cell's body: its footprint without the nucleus, peak 1 (where the cell
        displaces the neuropil).

    Returns
    -------
    footprints : ndarray, shape (K, H, W), float32
    bodies : ndarray, shape (K, H, W), float32 (only with ``bodies=True``)
    """
    H, W = shape
    K = len(centres)
    out = np.zeros((K, H, W), np.float32)
    body = np.zeros((K, H, W), np.float32) if bodies else None
    for k in range(K):
        R = diameters[k] / 2.0
        ecc = rng.uniform(0.0, 0.35)
        theta0 = rng.uniform(0.0, np.pi)
        p = rng.uniform(2.0, 3.5)
        harm_amp = rng.uniform(0.0, 0.08, size=3)
        harm_phase = rng.uniform(0.0, 2 * np.pi, size=3)
        has_nucleus = rng.random() < nucleus_prob
        nuc_depth = rng.uniform(*nucleus_depth)
        half = int(np.ceil(2.2 * R * (1 + ecc))) + 1
        r0, c0 = centres[k]
        rlo, rhi = max(0, int(r0) - half), min(H, int(r0) + half + 2)
        clo, chi = max(0, int(c0) - half), min(W, int(c0) + half + 2)
        yy, xx = np.mgrid[rlo:rhi, clo:chi].astype(np.float64)
        dy, dx = yy - r0, xx - c0
        ct, st = np.cos(theta0), np.sin(theta0)
        a = dy * ct + dx * st
        b = -dy * st + dx * ct
        u = np.hypot(a / (R * (1 + ecc)), b * (1 + ecc) / R)
        ang = np.arctan2(b, a)
        wobble = 1.0 + sum(harm_amp[i] * np.cos((i + 2) * ang + harm_phase[i]) for i in range(3))
        u = u / wobble
        f = EDGE_LEVEL ** (u ** p)
        if bodies:
            g = f / f.max()
            body[k, rlo:rhi, clo:chi] = np.where(g < CUTOFF, 0.0, g)
        if has_nucleus:
            f = f * (1.0 - nuc_depth * np.exp(-(u / nucleus_size) ** 2))
        f = f / f.max()
        f[f < CUTOFF] = 0.0
        out[k, rlo:rhi, clo:chi] = f
    return (out, body) if bodies else out


def spikes_and_calcium(rng, n_cells, n_frames, frame_rate, spike_rate, tau_decay, min_spikes=3):
    """Poisson spike counts per frame and their AR(1) calcium response.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_cells, n_frames : int
    frame_rate : float
        Hz.
    spike_rate : float
        Mean firing rate in Hz.
    tau_decay : float
        Calcium decay time constant in seconds; ``g = exp(-1 / (tau_decay * frame_rate))``.
    min_spikes : int
        Every cell gets at least this many spikes (capped at ``n_frames``), added at random
        frames, so that every cell is detectable.

    Returns
    -------
    spikes : ndarray, shape (K, T), float32
        Spike counts per frame.
    calcium : ndarray, shape (K, T), float32
        ``c[t] = g * c[t-1] + s[t]`` (a single spike gives a peak of 1).
    """
    lam = spike_rate / frame_rate
    spikes = rng.poisson(lam, size=(n_cells, n_frames)).astype(np.float32)
    need = min(min_spikes, n_frames)
    for k in np.flatnonzero(spikes.sum(axis=1) < need):
        free = np.flatnonzero(spikes[k] == 0)
        add = need - int(spikes[k].sum())
        spikes[k, rng.choice(free, size=add, replace=False)] = 1.0
    g = np.exp(-1.0 / (tau_decay * frame_rate))
    calcium = signal.lfilter([1.0], [1.0, -g], spikes, axis=1).astype(np.float32)
    return spikes, calcium


def _interp_matrix(n_out, n_in):
    """Gaussian-kernel interpolation matrix, shape (n_out, n_in), rows sum to 1."""
    grid = np.linspace(0.0, n_out - 1.0, n_in)
    step = grid[1] - grid[0] if n_in > 1 else float(n_out)
    pos = np.arange(n_out, dtype=np.float64)[:, None]
    M = np.exp(-0.5 * ((pos - grid[None, :]) / (0.7 * step)) ** 2)
    return M / M.sum(axis=1, keepdims=True)


def smooth_field(rng, shape, n_frames=None, cell=16.0, time_sigma=5.0):
    """Smooth random field with zero mean and unit standard deviation.

    Built on a coarse grid (one node every ``cell`` pixels), spread to full resolution
    with separable Gaussian-kernel interpolation; for a movie (``n_frames`` given) the
    coarse field is also smoothed in time with a Gaussian of ``time_sigma`` frames.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int
        (H, W).
    n_frames : int or None
        None gives an image (H, W); an int gives a movie (T, H, W).
    cell : float
        Spatial correlation length in pixels.
    time_sigma : float
        Temporal correlation in frames.

    Returns
    -------
    field : ndarray, shape (H, W) or (T, H, W), float32
    """
    H, W = shape
    h, w = max(2, int(np.ceil(H / cell)) + 1), max(2, int(np.ceil(W / cell)) + 1)
    Ry, Rx = _interp_matrix(H, h), _interp_matrix(W, w)
    if n_frames is None:
        z = Ry @ rng.standard_normal((h, w)) @ Rx.T
    else:
        coarse = rng.standard_normal((n_frames, h, w))
        if time_sigma > 0 and n_frames > 1:
            coarse = ndimage.gaussian_filter1d(coarse, time_sigma, axis=0, mode="reflect")
        z = np.matmul(np.matmul(Ry, coarse), Rx.T)
    z = z - z.mean()
    sd = z.std()
    return (z / sd if sd > 0 else z).astype(np.float32)


def motion_shifts(rng, n_frames, max_shift):
    """Smooth random rigid shifts with a given maximum magnitude per axis.

    A slow AR(1) drift plus small frame-to-frame jitter, rescaled so that the largest
    absolute shift on either axis equals ``max_shift``.

    Returns
    -------
    shifts : ndarray, shape (T, 2), float32
        (row, col) displacement of each frame's content, in pixels.
    """
    if max_shift <= 0:
        return np.zeros((n_frames, 2), np.float32)
    drift = signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal((n_frames, 2)), axis=0)
    jitter = 0.5 * rng.standard_normal((n_frames, 2)) * drift.std(axis=0)
    s = drift + jitter
    s -= s.mean(axis=0)
    peak = np.abs(s).max()
    return (s * (max_shift / peak) if peak > 0 else s).astype(np.float32)


def apply_shifts(movie, shifts):
    """Translate each frame's content by ``shifts[t]`` (bilinear, edge-replicated).

    Parameters
    ----------
    movie : ndarray, shape (T, H, W), float32
    shifts : ndarray, shape (T, 2)

    Returns
    -------
    moved : ndarray, shape (T, H, W), float32
        ``moved[t, y, x] = movie[t, y - dy, x - dx]``.
    """
    out = np.empty_like(movie)
    for t in range(movie.shape[0]):
        ndimage.shift(movie[t], shifts[t], output=out[t], order=1, mode="nearest")
    return out


def _range(value, name):
    """Accept a scalar or a (low, high) pair; return (low, high) floats."""
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < 0:
        msg = (f"make_movie: {name}={value!r} is not a valid range. Give a nonnegative number "
               f"or a pair (low, high) with 0 <= low <= high.")
        raise InputError(msg) from None
    return float(lo), float(hi)


def _check(cond, msg):
    if not cond:
        raise InputError(msg) from None


def footprints_to_masks(footprints, threshold=0.3):
    """Masks from footprints (``>= threshold * max``, peak's connected region, filled).

    Parameters
    ----------
    footprints : ndarray (K, H, W)
    threshold : float

    Returns
    -------
    masks : ndarray (K, H, W) bool
    """
    fp = np.asarray(footprints)
    out = np.zeros(fp.shape, bool)
    for k in range(fp.shape[0]):
        peak = fp[k].max()
        if peak <= 0:
            continue
        labels, _ = ndimage.label(fp[k] >= threshold * peak)
        idx = np.unravel_index(np.argmax(fp[k]), fp[k].shape)
        out[k] = ndimage.binary_fill_holes(labels == labels[idx])
    return out


def write_movie(path, data, frame_rate):
    """Write a (T, H, W) movie by extension: .tif/.tiff, .npy or .h5/.hdf5 (``/movie``)."""
    ext = Path(path).suffix.lower()
    if ext not in (".tif", ".tiff", ".npy", ".h5", ".hdf5"):
        raise InputError(f"save_movie: cannot write '{path}': unknown extension "
                         f"'{ext}'. Use .tif, .tiff, .npy, .h5 or .hdf5.") from None
    with atomic_path(path) as tmp:
        if ext in (".tif", ".tiff"):
            import tifffile
            tifffile.imwrite(tmp, data, photometric="minisblack",
                             metadata={"axes": "TYX", "frame_rate": float(frame_rate)})
        elif ext == ".npy":
            np.save(tmp, data)
        else:
            import h5py
            with h5py.File(tmp, "w") as f:
                f.create_dataset("movie", data=data, chunks=(1,) + data.shape[1:])
                f.attrs["frame_rate"] = float(frame_rate)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    The temporary file lives in the same folder so that :func:`os.replace` is atomic; it
    is removed if the body raises.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        msg = (f"Cannot write {path}: folder {folder} does not exist. "
               f"Create it first or choose another output path.")
        raise InputError(msg) from None
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp" + path.suffix,
                               dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
