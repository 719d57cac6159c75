"""Preprocess: frames to a nonnegative float32 movie, and the flatten/reshape between movie and matrix.

Order of operations (documented, fixed): frame subset → crop → spatial bin → temporal bin →
float32 → finite check → offset (a movie with negative values: minus its minimum added, see
:func:`offset_to_nonnegative`) → baseline removal → clip at 0. ``baseline = "percentile"`` subtracts
each pixel's ``baseline_percentile`` over time (estimated from at most 2000 evenly spaced
frames) and clips at 0, so that static background disappears and NMF sees cells; the
baseline image is kept for ΔF/F and figures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Preprocessed", "prepare_frames", "check_not_constant", "offset_to_nonnegative",
           "remove_baseline", "flatten", "unflatten", "output_shape"]

_BASELINE_MAX_FRAMES = 2000


@dataclass
class Preprocessed:
    """A movie ready to factorize.

    frames : ndarray (T, H, W) float32, nonnegative (a memmap for out-of-core runs)
    baseline : ndarray (H, W) float32, what was subtracted from every frame
    mean_image : ndarray (H, W) float32, mean of the frames before baseline removal
    frame_rate : float, after temporal binning
    """

    frames: np.ndarray
    baseline: np.ndarray
    mean_image: np.ndarray
    frame_rate: float


def output_shape(movie_shape, input_cfg, pre_cfg) -> tuple:
    """Shape (T, H, W) of the prepared frames, without reading any."""
    T, H, W = movie_shape
    T = (T - input_cfg.first_frame) if input_cfg.n_frames == 0 else min(input_cfg.n_frames, T - input_cfg.first_frame)
    if pre_cfg.crop:
        top, bottom, left, right = pre_cfg.crop
        H, W = min(bottom, H) - top, min(right, W) - left
    b = pre_cfg.spatial_bin
    return (T // pre_cfg.temporal_bin, H // b, W // b)


def _check_geometry(movie_shape, input_cfg, pre_cfg, source, min_frames=2):
    T, H, W = movie_shape
    if input_cfg.first_frame >= T:
        raise InputError(f"{source}: input.first_frame = {input_cfg.first_frame} but the movie has {T} frames.") from None
    if pre_cfg.crop:
        top, bottom, left, right = pre_cfg.crop
        if top >= H or left >= W:
            raise InputError(f"{source}: preprocess.crop = {list(pre_cfg.crop)} starts outside the "
                             f"{H} x {W} frame.") from None
    Tn, Hn, Wn = output_shape(movie_shape, input_cfg, pre_cfg)
    if Hn < 1 or Wn < 1:
        raise InputError(f"{source}: after crop and spatial_bin = {pre_cfg.spatial_bin} the frame would "
                         f"be {Hn} x {Wn} pixels; use a smaller bin or a larger crop.") from None
    if Tn < min_frames:
        raise InputError(f"{source}: only {Tn} frame(s) to analyse after frame selection and "
                         f"temporal_bin = {pre_cfg.temporal_bin}; a movie needs at least 2.") from None


def prepare_frames(movie, input_cfg, pre_cfg, *, out=None, chunk_frames=256, progress=None,
                   min_frames=2) -> np.ndarray:
    """Read, subset, crop and bin the movie chunk by chunk into a float32 array (T, H, W).

    Parameters
    ----------
    movie : Movie or ndarray (T, H, W)
    out : ndarray or memmap (T, H, W) float32, optional
        Where to write (a disk-backed memmap for movies larger than memory).
    min_frames : int
        Fewest frames accepted (a movie to analyse needs 2; reading single frames back needs 1).

    Raises
    ------
    InputError
        On NaN or Inf (naming the first bad frame) or impossible crop/bin settings.
    """
    source = getattr(movie, "source", "movie")
    _check_geometry(movie.shape, input_cfg, pre_cfg, source, min_frames)
    shape = output_shape(movie.shape, input_cfg, pre_cfg)
    if out is None:
        out = np.empty(shape, np.float32)
    tb, sb = pre_cfg.temporal_bin, pre_cfg.spatial_bin
    first = input_cfg.first_frame
    chunk = max(tb, (chunk_frames // tb) * tb)
    n_in = shape[0] * tb
    for t0 in range(0, n_in, chunk):
        raw = np.asarray(movie[first + t0:first + min(n_in, t0 + chunk)])
        block = raw.astype(np.float32)
        if not np.isfinite(block).all():
            bad = first + t0 + int(np.argwhere(~np.isfinite(block))[0, 0])
            raise InputError(f"{source}: frame {bad} contains NaN or Inf values. Fix or drop those "
                             "frames (input.first_frame / input.n_frames) before analysis.") from None
        if pre_cfg.crop:
            top, bottom, left, right = pre_cfg.crop
            block = block[:, top:bottom, left:right]
        if sb > 1:
            n, h, w = block.shape
            h2, w2 = h // sb, w // sb
            block = block[:, :h2 * sb, :w2 * sb].reshape(n, h2, sb, w2, sb).mean(axis=(2, 4))
        if tb > 1:
            n = block.shape[0] // tb
            block = block[:n * tb].reshape(n, tb, *block.shape[1:]).mean(axis=1)
        out[t0 // tb:t0 // tb + block.shape[0]] = block
        if progress is not None:
            progress(block.shape[0])
    return out


def check_not_constant(frames, source="movie") -> None:
    """Raise InputError if every pixel of every frame has the same value (nothing to find)."""
    lo = hi = None
    for t0 in range(0, frames.shape[0], 256):
        block = frames[t0:t0 + 256]
        b_lo, b_hi = float(block.min()), float(block.max())
        lo = b_lo if lo is None else min(lo, b_lo)
        hi = b_hi if hi is None else max(hi, b_hi)
        if hi > lo:
            return
    raise InputError(f"{source}: the movie is constant (every pixel is {hi:g} in every frame); "
                     "there is no activity to analyse.") from None


def offset_to_nonnegative(frames, chunk_frames=256) -> float:
    """Add minus the movie's minimum to every pixel, in place, when the movie has negative values.

    Acquisitions with a digitizer offset (ScanImage int16, for one) record the background
    below 0, but NMF needs X >= 0 and the local method's background model assumes it. The
    acquisition's true zero is not known, so the smallest constant that makes every value
    nonnegative is added (the movie's own minimum, not a guess): a pure shift, nothing is
    clipped. ``frames`` is the pipeline's own float32 copy (or disk-backed memmap).

    Returns
    -------
    float
        The offset added (0.0 when the movie has no negative value; it is then untouched).
    """
    lowest = min(float(frames[t0:t0 + chunk_frames].min()) for t0 in range(0, frames.shape[0], chunk_frames))
    if lowest >= 0:
        return 0.0
    offset = -lowest
    for t0 in range(0, frames.shape[0], chunk_frames):  # chunked: works the same on a disk-backed memmap
        block = frames[t0:t0 + chunk_frames]
        block += np.float32(offset)
        frames[t0:t0 + chunk_frames] = block
    return offset


def remove_baseline(frames, pre_cfg, *, source="movie") -> tuple[np.ndarray, np.ndarray]:
    """Make ``frames`` nonnegative in place (they are the pipeline's own copy); return (frames, baseline).

    Raises InputError if the movie is constant (nothing to factorize).
    """
    T = frames.shape[0]
    check_not_constant(frames, source)
    sample = frames if T <= _BASELINE_MAX_FRAMES else frames[np.linspace(0, T - 1, _BASELINE_MAX_FRAMES).astype(int)]
    lo = float(np.min(sample))
    if pre_cfg.baseline == "percentile":
        baseline = np.percentile(sample, pre_cfg.baseline_percentile, axis=0).astype(np.float32)
    elif pre_cfg.baseline == "min":
        baseline = np.full(frames.shape[1:], min(lo, float(np.min(frames))), np.float32)
    else:
        lowest = float(np.min(frames))
        if lowest < 0:
            raise InputError(f"{source}: the movie has negative values (minimum {lowest:g}) and "
                             "preprocess.baseline = 'none'. NMF needs X >= 0: use baseline = 'percentile' "
                             "or 'min'.") from None
        return frames, np.zeros(frames.shape[1:], np.float32)
    for t0 in range(0, T, 256):  # chunked: works the same on a disk-backed memmap
        block = frames[t0:t0 + 256]
        block -= baseline
        np.maximum(block, 0, out=block)
        frames[t0:t0 + 256] = block
    return frames, baseline


def flatten(frames) -> np.ndarray:
    """Movie (T, H, W) → matrix X (pixels, frames), one column per frame, without copying.

    Pixel p = row * W + col (C order), so :func:`unflatten` inverts it exactly.
    """
    T = frames.shape[0]
    return frames.reshape(T, -1).T


def unflatten(W, frame_shape) -> np.ndarray:
    """Columns of W (pixels, K) → footprint images (K, H, W)."""
    W = np.asarray(W)
    return np.ascontiguousarray(W.T).reshape((W.shape[1],) + tuple(frame_shape))
