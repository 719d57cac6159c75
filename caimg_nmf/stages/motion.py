"""Motion correction: register every frame of a movie to a template (rigid or piecewise-rigid).

:func:`correct_motion` is a pure stage: it reads ``frames`` chunk by chunk (``cfg.chunk_frames``
at a time, so a movie larger than memory can be registered into a memmap), never modifies its
inputs or the config, does no file I/O and keeps no state.

Method
------
1. **Template.** ``template_frames`` frames, taken in short runs spread over the movie, are
   registered to their mean; the better-correlated half of the registered frames is averaged into
   the template. ``iterations`` more passes register the same frames to that template and
   average again.
2. **Rigid shifts.** Each frame is centred, tapered at its borders, Fourier transformed (one
   batched FFT per chunk), whitened (phase correlation), band-passed with a difference of Gaussians
   (``spatial_filter_sigma``) and correlated with the template. The integer peak within
   ``+-max_shift`` is refined to 1/``upsample`` pixel with a local upsampled DFT.
3. **Piecewise-rigid** (``method = "piecewise"``): the frame is cut into overlapping square
   patches (``patch_size``, ``patch_overlap``); each patch gets its own shift, searched within
   ``max_deviation`` of the frame's rigid shift. The patch shifts are interpolated linearly
   between patch centres into a smooth per-pixel displacement field, applied with
   ``scipy.ndimage.map_coordinates``.
4. **Applying shifts.** Bilinear interpolation; pixels that come from outside the frame take the
   value of the nearest edge pixel (no zeros that would look like dark pixels, no NaN). Bilinear
   interpolation slightly smooths frames shifted by a fraction of a pixel.

BLAS is limited to one thread during the call (see :func:`_one_blas_thread`); FFTs use all cores.

Sign convention
---------------
``shifts[t] = (dy, dx)`` is the shift APPLIED to frame t to align it with the template:
``registered[t] ~ scipy.ndimage.shift(frames[t], shifts[t])``. A frame whose content was
displaced by ``d`` relative to the template gets ``shifts[t] = -d``. ``patch_shifts`` use the same
convention per patch. Rows first, then columns, in pixels.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..config import MotionConfig
from ..errors import InputError
from . import _motion_kernels as K

__all__ = ["MotionResult", "correct_motion", "estimate_motion_memory"]

log = logging.getLogger(__name__)

_RUN = 20  # template frames are read in runs of up to this many consecutive frames


@dataclass
class MotionResult:
    """Output of :func:`correct_motion`.

    Attributes
    ----------
    frames : (T, H, W) float32 registered movie (the ``out`` array when one was given).
    shifts : (T, 2) float32 rigid (row, col) shift applied to each frame (see the module's sign
        convention). For ``piecewise`` this is the rigid part around which patches were searched.
    patch_shifts : (T, ny, nx, 2) float32 shift of each patch, or None unless ``piecewise`` ran.
    template : (H, W) float32 image the frames were registered to.
    method : the method that ran ('none', 'rigid' or 'piecewise'; 'rigid' after a fallback).
    patch_centers : ((ny,), (nx,)) row and column centres of the patches, or None.
    """

    frames: np.ndarray
    shifts: np.ndarray
    patch_shifts: Optional[np.ndarray]
    template: np.ndarray
    method: str
    patch_centers: Optional[tuple] = None

    def max_shift(self) -> float:
        """Largest absolute shift along either axis, over all frames (and patches), in pixels."""
        arrays = [self.shifts] + ([self.patch_shifts] if self.patch_shifts is not None else [])
        return max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)


# --------------------------------------------------------------------------------------------
# Plan: everything that depends only on the frame size and the config
# --------------------------------------------------------------------------------------------

def _limit(n_pixels: int, max_shift: float) -> float:
    """Largest shift searched along an axis: max_shift, at most a quarter of the side."""
    return float(min(max_shift, (n_pixels - 1) // 2, max(1, n_pixels // 4)))


def _patch_starts(length: int, size: int, overlap: int):
    """Start of each patch along an axis and the patch extent; one patch when two do not fit."""
    stride = size - overlap
    if length < size + stride:
        return np.array([0]), length
    n = 1 + int(np.ceil((length - size) / stride))
    return np.rint(np.linspace(0, length - size, n)).astype(int), size


@dataclass
class _Plan:
    h: int
    w: int
    limit: tuple
    win: np.ndarray
    filt: object
    grid: object = None  # (ys, xs, ph, pw, pwin, pfilt, plimit, radius, wy, wx, centers) or None

    @classmethod
    def make(cls, h, w, cfg: MotionConfig, method: str) -> "_Plan":
        plan = cls(h, w, (_limit(h, cfg.max_shift), _limit(w, cfg.max_shift)), K.taper_window(h, w),
                   K.band_pass(h, w, cfg.spatial_filter_sigma))
        if method == "piecewise":
            ys, ph = _patch_starts(h, cfg.patch_size, cfg.patch_overlap)
            xs, pw = _patch_starts(w, cfg.patch_size, cfg.patch_overlap)
            if len(ys) * len(xs) < 2:
                return plan
            plimit = (min(plan.limit[0], (ph - 1) // 2), min(plan.limit[1], (pw - 1) // 2))
            radius = (min(int(np.ceil(cfg.max_deviation)), (ph - 1) // 2),
                      min(int(np.ceil(cfg.max_deviation)), (pw - 1) // 2))
            cy, cx = ys + (ph - 1) / 2.0, xs + (pw - 1) / 2.0
            plan.grid = (ys, xs, ph, pw, K.taper_window(ph, pw), K.band_pass(ph, pw, cfg.spatial_filter_sigma),
                         plimit, radius, K.interp_weights(h, cy), K.interp_weights(w, cx), (cy, cx))
        return plan


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _check_frames(frames):
    shape = getattr(frames, "shape", None)
    dtype = getattr(frames, "dtype", None)
    if shape is None or dtype is None or not hasattr(frames, "__getitem__"):
        raise InputError(f"correct_motion: frames must be a (T, H, W) array (numpy array, np.memmap or "
                         f"h5py dataset), got {type(frames).__name__}.") from None
    if len(shape) != 3:
        raise InputError(f"correct_motion: frames must be 3-D (T frames, H rows, W columns), got shape "
                         f"{tuple(shape)}. A single image needs a leading frame axis: image[None].") from None
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"correct_motion: frames must hold real numbers, got dtype {dtype}.") from None
    if min(shape) < 1:
        raise InputError(f"correct_motion: frames of shape {tuple(shape)} are empty.") from None
    return tuple(int(s) for s in shape), dtype


def _check_out(out, shape):
    if out is None:
        return np.empty(shape, np.float32)
    if getattr(out, "shape", None) is None or tuple(out.shape) != shape:
        raise InputError(f"correct_motion: out must have the movie's shape {shape}, got "
                         f"{getattr(out, 'shape', type(out).__name__)}.") from None
    if np.dtype(getattr(out, "dtype", None)) != np.float32:
        raise InputError(f"correct_motion: out must be float32, got {out.dtype}.") from None
    flags = getattr(out, "flags", None)
    if flags is not None and not flags.writeable:
        raise InputError("correct_motion: out is read-only (a memmap opened with mode 'r'?); open it "
                         "with mode 'w+' or 'r+'.") from None
    return out


def _read(frames, a: int, b: int, check_finite: bool) -> np.ndarray:
    """frames[a:b] as float32 (a view when it already is float32; never written to)."""
    block = np.asarray(frames[a:b], dtype=np.float32)
    if check_finite and not np.isfinite(block).all():
        bad = a + int(np.flatnonzero(~np.isfinite(block).reshape(b - a, -1).all(axis=1))[0])
        raise InputError(f"correct_motion: frame {bad} contains NaN or infinite values; replace them "
                         "(e.g. with the frame's median) before motion correction.") from None
    return block


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

def correct_motion(frames, cfg: MotionConfig, *, out=None,
                   progress: Optional[Callable[[int], None]] = None) -> MotionResult:
    """Register every frame of a movie to a template built from the movie.

    Parameters
    ----------
    frames : (T, H, W) array-like of real numbers: numpy array, np.memmap or h5py dataset;
        only ``frames[a:b]`` slices are read, ``cfg.chunk_frames`` frames at a time. Not modified.
    cfg : MotionConfig (the ``[motion]`` section).
    out : optional preallocated (T, H, W) float32 array or memmap for the registered movie;
        a new float32 array when None.
    progress : optional callable, called with the number of frames done after each chunk.

    Returns
    -------
    MotionResult. See the module docstring for the method and the sign convention of shifts.
    """
    with _one_blas_thread():
        return _correct_motion(frames, cfg, out, progress)


def _one_blas_thread():
    """BLAS limited to one thread for the call: the small batched matrix products of the sub-pixel
    refinement run many times slower multi-threaded when the cores are busy (OpenBLAS spin-waits).
    FFTs keep their own threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _correct_motion(frames, cfg, out, progress) -> MotionResult:
    if not isinstance(cfg, MotionConfig):
        raise TypeError(f"correct_motion: cfg must be a MotionConfig (Config().motion), got "
                        f"{type(cfg).__name__}")
    shape, dtype = _check_frames(frames)
    out = _check_out(out, shape)
    t_total, h, w = shape
    finite = dtype.kind == "f"

    method = cfg.method
    plan = _Plan.make(h, w, cfg, method)
    if method == "piecewise" and plan.grid is None:
        log.warning("motion: a %dx%d frame holds fewer than two %d-pixel patches; using rigid "
                    "correction instead of piecewise.", h, w, cfg.patch_size)
        method = "rigid"

    sample = _read_sample(frames, t_total, cfg.template_frames, finite)
    template = (sample.mean(axis=0) if method == "none"
                else _build_template(sample, cfg, plan, method)).astype(np.float32)
    del sample

    shifts = np.zeros((t_total, 2), np.float32)
    patch_shifts = None
    if method == "none":
        for a in range(0, t_total, cfg.chunk_frames):
            b = min(a + cfg.chunk_frames, t_total)
            out[a:b] = _read(frames, a, b, finite)
            if progress is not None:
                progress(b)
        return MotionResult(out, shifts, None, template, method)

    refs = _references(template, plan, method)
    # write straight into `out` unless it is not a numpy array or overlaps the input (in place)
    direct = isinstance(out, np.ndarray) and not (isinstance(frames, np.ndarray)
                                                  and np.may_share_memory(out, frames))
    patch_shifts = (np.zeros((t_total, len(plan.grid[0]), len(plan.grid[1]), 2), np.float32)
                    if method == "piecewise" else None)
    for a in range(0, t_total, cfg.chunk_frames):
        b = min(a + cfg.chunk_frames, t_total)
        block = _read(frames, a, b, finite)
        shifts[a:b], patches, _ = _estimate(block, refs, plan, cfg, method)
        if patches is not None:
            patch_shifts[a:b] = patches
        if direct:
            _apply(block, shifts[a:b], patches, plan, out=out[a:b])
        else:
            out[a:b] = _apply(block, shifts[a:b], patches, plan)
        del block
        if progress is not None:
            progress(b)
    centers = plan.grid[10] if method == "piecewise" else None
    return MotionResult(out, shifts, patch_shifts, template, method, centers)


def _references(template: np.ndarray, plan: _Plan, method: str):
    """Spectra of the template and, for piecewise, of each of its patches."""
    ref = K.reference_spectrum(template, plan.win, plan.filt)
    if method != "piecewise":
        return ref, None
    ys, xs, ph, pw, pwin, pfilt = plan.grid[:6]
    return ref, [[K.reference_spectrum(template[y:y + ph, x:x + pw], pwin, pfilt) for x in xs] for y in ys]


def _estimate(block, refs, plan: _Plan, cfg: MotionConfig, method: str):
    """Rigid shifts (n, 2), patch shifts (n, ny, nx, 2) or None, and correlation peak heights (n,)."""
    ref, patch_refs = refs
    peaks, heights = K.find_peaks(block, ref, plan.win, plan.limit, cfg.upsample, heights=True)
    if method != "piecewise":
        return (-peaks).astype(np.float32), None, heights
    ys, xs, ph, pw, pwin, _, plimit, radius = plan.grid[:8]
    patches = np.empty((block.shape[0], len(ys), len(xs), 2), np.float32)
    center = np.clip(peaks, [-plimit[0], -plimit[1]], [plimit[0], plimit[1]])
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            patches[:, i, j] = -K.find_peaks(block[:, y:y + ph, x:x + pw], patch_refs[i][j], pwin, plimit,
                                             cfg.upsample, center=center, radius=radius)
    return (-peaks).astype(np.float32), patches, heights


def _apply(block, shifts, patches, plan: _Plan, out=None) -> np.ndarray:
    """Registered copy (float32, into ``out`` if given) of a block, by its rigid or patch shifts."""
    buf = np.empty(block.shape, np.float32) if out is None else out
    if patches is None:
        return K.apply_shifts(block, shifts, buf)
    return K.apply_field(block, patches, plan.grid[8], plan.grid[9], buf)


# --------------------------------------------------------------------------------------------
# Template
# --------------------------------------------------------------------------------------------

def _sample_ranges(t_total: int, n: int):
    """Runs of consecutive frames, spread evenly over the movie, holding about n frames in all."""
    if n >= t_total:
        return [(0, t_total)]
    n_runs = int(np.ceil(n / _RUN))
    run = int(np.ceil(n / n_runs))
    starts = np.rint(np.linspace(0, t_total - run, n_runs)).astype(int)
    return [(int(s), int(s) + run) for s in starts]


def _read_sample(frames, t_total: int, n: int, finite: bool) -> np.ndarray:
    return np.concatenate([_read(frames, a, b, finite) for a, b in _sample_ranges(t_total, n)], axis=0)


def _build_template(sample: np.ndarray, cfg: MotionConfig, plan: _Plan, method: str) -> np.ndarray:
    """Register the sample to its mean (rigid), average the better-matching half of it (highest
    phase-correlation peaks); then
    ``iterations`` times register the sample to that template (with ``method``) and average again.

    The template is anchored at the sample's mean position: the shifts used to average are
    centred (per patch for piecewise), so that the movie's shifts average to about zero.
    """
    n = sample.shape[0]
    template = sample.mean(axis=0)
    step = cfg.chunk_frames
    for it in range(cfg.iterations + 1):
        pass_method = "rigid" if it == 0 else method
        refs = _references(template, plan, pass_method)
        if refs[0] is None:  # a flat template: nothing to register
            return template
        est = [_estimate(sample[a:a + step], refs, plan, cfg, pass_method) for a in range(0, n, step)]
        shifts = np.concatenate([e[0] for e in est])
        patches = np.concatenate([e[1] for e in est]) if pass_method == "piecewise" else None
        corr = np.concatenate([e[2] for e in est])  # phase-correlation peak heights: match quality
        mean_shift = shifts.mean(axis=0)
        shifts = shifts - mean_shift
        if patches is not None:  # each patch anchored at its own mean position
            patches = patches - patches.mean(axis=0)
        keep = np.argsort(-corr, kind="stable")[:max(1, n // 2)]
        acc = np.zeros((plan.h, plan.w), np.float64)
        for a in range(0, len(keep), step):
            idx = np.sort(keep[a:a + step])
            acc += _apply(sample[idx], shifts[idx], None if patches is None else patches[idx], plan).sum(
                axis=0, dtype=np.float64)
        template = (acc / len(keep)).astype(np.float32)
    return template


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def estimate_motion_memory(shape, cfg: MotionConfig, *, itemsize: int = 2, include_output: bool = True) -> int:
    """Peak memory of :func:`correct_motion` in bytes, for a movie of ``shape`` (T, H, W).

    Counts the template sample, one chunk's working arrays (the raw chunk of ``itemsize`` bytes
    per pixel, its float32 copy, centred copy, half spectrum, correlation and registered buffer),
    and, with ``include_output``, the float32 output that is allocated when ``out`` is None
    (leave it out when ``out`` is a memmap).
    """
    t_total, h, w = (int(s) for s in shape)
    pix = h * w
    chunk = min(cfg.chunk_frames, t_total)
    n_sample = min(cfg.template_frames, t_total)
    per_frame = itemsize + 4 + 4 + 8 * (w // 2 + 1) / w * 2 + 8 + 4   # raw, f32, centred, spectra, cc(f64), out
    working = chunk * pix * per_frame
    if cfg.method == "piecewise":
        working += 4 * pix * 4  # coordinates and field of one frame
    sample = n_sample * pix * 4 + min(chunk, n_sample) * pix * 4
    total = sample + working + pix * 16
    if include_output:
        total += t_total * pix * 4
    return int(total)


def apply_motion(block, motion: MotionResult, start: int, cfg: MotionConfig) -> np.ndarray:
    """Register frames ``start .. start + len(block)`` of the same movie again with the shifts
    ``motion`` found (e.g. to re-read a few frames for figures without keeping the registered movie).

    Parameters
    ----------
    block : ndarray (n, H, W)
    motion : MotionResult from :func:`correct_motion` on the whole movie
    start : index of ``block[0]`` in that movie
    cfg : the MotionConfig used

    Returns
    -------
    ndarray (n, H, W) float32
    """
    block = np.asarray(block, np.float32)
    if motion.method == "none":
        return block
    n = block.shape[0]
    shifts = motion.shifts[start:start + n]
    patches = None if motion.patch_shifts is None else motion.patch_shifts[start:start + n]
    plan = _Plan.make(block.shape[1], block.shape[2], cfg, motion.method)
    return _apply(block, shifts, patches, plan)
