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
   **Only a peak that stands out moves a frame.** Phase correlation always has a highest point,
   even for a frame with no structure (pure noise, a closed shutter), and shifting such frames to
   align noise with noise gives the mean image structure that is not there. The peak's height is
   compared with the correlation surface's own spread (its z; the surface of a frame that matches
   nothing is about Gaussian with a spread known from the taper, see
   :func:`._motion_kernels.null_spread`); a frame whose z does not exceed the threshold that pure
   noise passes with probability ``FALSE_SHIFT_RATE`` over the lags searched keeps shift 0. A
   frame the template is made of is judged against the half of the template it is not part of
   (it always matches its own copy).
3. **Piecewise-rigid** (``method = "piecewise"``): the frame is cut into overlapping square
   patches (``patch_size``, ``patch_overlap``); each patch gets its own shift, searched within
   ``max_deviation`` of the frame's rigid shift. The patch shifts are interpolated linearly
   between patch centres into a smooth per-pixel displacement field, applied with
   ``scipy.ndimage.map_coordinates``. A patch whose peak does not stand out (threshold as above,
   the false rate shared among the frame's patches) keeps the frame's rigid shift.
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
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..config import MotionConfig
from ..errors import InputError
from . import _motion_kernels as K

__all__ = ["MotionResult", "correct_motion", "estimate_motion_memory"]

log = logging.getLogger(__name__)

_RUN = 20  # template frames are read in runs of up to this many consecutive frames
# Chance that a frame of pure noise is shifted anyway (its rigid peak, or any of its patches', passes
# its threshold by chance; measured on noise: about half of it). Real recordings stand far above it:
# Neurofinder 00.00, 600 x 256 x 512: rigid peaks z 28-64 against a threshold of 5.5; of its 9000
# 128-px patch peaks 2 fall short of their 5.6 (z 5.4, 5.5: they keep the rigid shift), 99 % are above 7.7.
FALSE_SHIFT_RATE = 1e-5


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
    peak_z : (T,) float32 significance of each frame's rigid correlation peak (its height over the
        correlation surface's spread; 0 for a constant frame), or None for 'none'.
    min_peak_z : the z a rigid peak had to exceed to move its frame; frames at or below it kept
        shift 0. NaN for 'none'.
    patch_peak_z : (T, ny, nx) float32 significance of each patch's peak, or None.
    min_patch_peak_z : the z a patch's peak had to exceed; patches at or below it kept the rigid
        shift. NaN without patches.
    """

    frames: np.ndarray
    shifts: np.ndarray
    patch_shifts: Optional[np.ndarray]
    template: np.ndarray
    method: str
    patch_centers: Optional[tuple] = None
    peak_z: Optional[np.ndarray] = None
    min_peak_z: float = float("nan")
    patch_peak_z: Optional[np.ndarray] = None
    min_patch_peak_z: float = float("nan")

    def max_shift(self) -> float:
        """Largest absolute shift along either axis, over all frames (and patches), in pixels."""
        arrays = [self.shifts] + ([self.patch_shifts] if self.patch_shifts is not None else [])
        return max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)

    def unshifted(self) -> str:
        """What the significance test left in place, in words (for the log)."""
        if self.peak_z is None:
            return "no registration"
        n = len(self.peak_z)
        words = (f"{int(np.sum(self.peak_z <= self.min_peak_z))} of {n} frames kept shift 0 (correlation "
                 f"peak not above z {self.min_peak_z:.1f})")
        if self.patch_peak_z is not None:
            words += (f"; {int(np.sum(self.patch_peak_z <= self.min_patch_peak_z))} of {self.patch_peak_z.size} "
                      f"patch shifts fell back to the rigid shift (z {self.min_patch_peak_z:.1f})")
        return words


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


def _lags(limit, radius=None) -> int:
    """Number of integer lags a search within ``limit`` (and ``radius`` of a centre) tries, at most."""
    span = [int(np.floor(a)) if radius is None else min(int(np.floor(a)), int(r))
            for a, r in zip(limit, radius or (None, None))]
    return (2 * span[0] + 1) * (2 * span[1] + 1)


class _Grid(NamedTuple):
    """The patches of 'piecewise'."""
    ys: np.ndarray       # first row of each patch row
    xs: np.ndarray       # first column of each patch column
    ph: int              # patch height
    pw: int              # patch width
    win: np.ndarray      # taper of a patch
    filt: object         # band-pass of a patch (or None)
    limit: tuple         # largest |shift| of a patch per axis
    radius: tuple        # largest deviation of a patch from its frame's rigid shift per axis
    wy: np.ndarray       # interpolation weights between patch centres: rows
    wx: np.ndarray       # ... columns
    centers: tuple       # (row centres, column centres)
    min_z: float         # a patch's peak must stand out above this z to leave the rigid shift
    spread: np.ndarray   # null spread of a patch's correlation surface (null_spread)


@dataclass
class _Plan:
    h: int
    w: int
    limit: tuple
    win: np.ndarray
    filt: object
    min_z: float          # a rigid peak must stand out above this z to move its frame
    spread: np.ndarray    # null spread of the correlation surface (null_spread)
    grid: Optional[_Grid] = None

    @classmethod
    def make(cls, h, w, cfg: MotionConfig, method: str) -> "_Plan":
        limit = (_limit(h, cfg.max_shift), _limit(w, cfg.max_shift))
        win = K.taper_window(h, w)
        plan = cls(h, w, limit, win, K.band_pass(h, w, cfg.spatial_filter_sigma),
                   K.significance_threshold(_lags(limit), FALSE_SHIFT_RATE), K.null_spread(win))
        if method == "piecewise":
            ys, ph = _patch_starts(h, cfg.patch_size, cfg.patch_overlap)
            xs, pw = _patch_starts(w, cfg.patch_size, cfg.patch_overlap)
            if len(ys) * len(xs) < 2:
                return plan
            plimit = (min(plan.limit[0], (ph - 1) // 2), min(plan.limit[1], (pw - 1) // 2))
            radius = (min(int(np.ceil(cfg.max_deviation)), (ph - 1) // 2),
                      min(int(np.ceil(cfg.max_deviation)), (pw - 1) // 2))
            cy, cx = ys + (ph - 1) / 2.0, xs + (pw - 1) / 2.0
            patch_z = K.significance_threshold(_lags(plimit, radius), FALSE_SHIFT_RATE / (len(ys) * len(xs)))
            pwin = K.taper_window(ph, pw)
            plan.grid = _Grid(ys, xs, ph, pw, pwin, K.band_pass(ph, pw, cfg.spatial_filter_sigma), plimit, radius,
                              K.interp_weights(h, cy), K.interp_weights(w, cx), (cy, cx), patch_z, K.null_spread(pwin))
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
    if method == "none":
        template = _Template(sample.mean(axis=0).astype(np.float32), [])
    else:
        template = _build_template(sample, cfg, plan, method)
    del sample

    shifts = np.zeros((t_total, 2), np.float32)
    peak_z = np.zeros(t_total, np.float32)
    patch_shifts = patch_z = None
    if method == "none":
        for a in range(0, t_total, cfg.chunk_frames):
            b = min(a + cfg.chunk_frames, t_total)
            out[a:b] = _read(frames, a, b, finite)
            if progress is not None:
                progress(b)
        return MotionResult(out, shifts, None, template.image, method, peak_z=None)

    refs = _references(template.image, plan, method)
    positions = np.concatenate([np.arange(a, b) for a, b in _sample_ranges(t_total, cfg.template_frames)])
    member_refs = [(positions[idx], _references(half, plan, method, judge=True)) for idx, half in template.members]
    # write straight into `out` unless it is not a numpy array or overlaps the input (in place)
    direct = isinstance(out, np.ndarray) and not (isinstance(frames, np.ndarray)
                                                  and np.may_share_memory(out, frames))
    if method == "piecewise":
        patch_shifts = np.zeros((t_total, len(plan.grid.ys), len(plan.grid.xs), 2), np.float32)
        patch_z = np.zeros(patch_shifts.shape[:3], np.float32)
    for a in range(0, t_total, cfg.chunk_frames):
        b = min(a + cfg.chunk_frames, t_total)
        block = _read(frames, a, b, finite)
        est = _estimate(block, refs, plan, cfg, method, gated=True, judge=_judged_rows(a, b - a, member_refs))
        shifts[a:b], peak_z[a:b] = est.shifts, est.z
        if est.patches is not None:
            patch_shifts[a:b], patch_z[a:b] = est.patches, est.patch_z
        if direct:
            _apply(block, est.shifts, est.patches, plan, out=out[a:b])
        else:
            out[a:b] = _apply(block, est.shifts, est.patches, plan)
        del block, est
        if progress is not None:
            progress(b)
    if method != "piecewise":
        return MotionResult(out, shifts, None, template.image, method, None, peak_z, plan.min_z)
    return MotionResult(out, shifts, patch_shifts, template.image, method, plan.grid.centers, peak_z, plan.min_z,
                        patch_z, plan.grid.min_z)


def _references(template: np.ndarray, plan: _Plan, method: str, judge: bool = False):
    """Spectra of the template and, for piecewise, of each of its patches (None where flat).

    ``judge``: for judging peaks (``judge`` of :func:`._motion_kernels.find_peaks`), where a
    flat template matches nothing: zeros instead of None, which give every peak z = 0."""
    def spectrum(image, win, filt):
        spec = K.reference_spectrum(image, win, filt)
        if spec is None and judge:
            return np.zeros((image.shape[0], image.shape[1] // 2 + 1), np.complex64)
        return spec

    ref = spectrum(template, plan.win, plan.filt)
    if method != "piecewise":
        return ref, None
    g = plan.grid
    return ref, [[spectrum(template[y:y + g.ph, x:x + g.pw], g.win, g.filt) for x in g.xs] for y in g.ys]


class _Estimate(NamedTuple):
    shifts: np.ndarray             # (n, 2) rigid shifts
    heights: np.ndarray            # (n,) correlation peak heights: match quality
    z: np.ndarray                  # (n,) significance of the rigid peaks
    patches: Optional[np.ndarray]  # (n, ny, nx, 2) patch shifts, or None
    patch_z: Optional[np.ndarray]  # (n, ny, nx) significance of the patch peaks, or None


def _estimate(block, refs, plan: _Plan, cfg: MotionConfig, method: str, gated: bool = True,
              judge=()) -> _Estimate:
    """Shifts of a block of frames (and of their patches for piecewise) and how sure they are.

    ``gated``: a peak that does not stand out (z at most the plan's threshold) leaves the frame at
    shift 0 and the patch at the frame's shift; otherwise every peak is taken. ``judge``:
    [(rows of the block, references as ``refs``)] whose z is measured on those references (frames
    the template is made of: the half of it they are not part of)."""
    ref, patch_refs = refs
    peaks, heights, z = K.find_peaks(block, ref, plan.win, plan.limit, cfg.upsample,
                                     min_z=plan.min_z if gated else 0.0, spread=plan.spread,
                                     judge=[(rows, r[0]) for rows, r in judge])
    if method != "piecewise":
        return _Estimate((-peaks).astype(np.float32), heights, z, None, None)
    g = plan.grid
    patches = np.empty((block.shape[0], len(g.ys), len(g.xs), 2), np.float32)
    patch_z = np.empty(patches.shape[:3], np.float32)
    center = np.clip(peaks, [-g.limit[0], -g.limit[1]], [g.limit[0], g.limit[1]])
    for i, y in enumerate(g.ys):
        for j, x in enumerate(g.xs):
            found, _, patch_z[:, i, j] = K.find_peaks(
                block[:, y:y + g.ph, x:x + g.pw], patch_refs[i][j], g.win, g.limit, cfg.upsample, center=center,
                radius=g.radius, min_z=g.min_z if gated else 0.0, spread=g.spread,
                judge=[(rows, r[1][i][j]) for rows, r in judge])
            patches[:, i, j] = -found
    return _Estimate((-peaks).astype(np.float32), heights, z, patches, patch_z)


def _judged_rows(first: int, n: int, member_refs):
    """``judge`` for :func:`_estimate` of frames ``first .. first + n``: [(rows, references)]."""
    frames = np.arange(first, first + n)
    judge = [(np.flatnonzero(np.isin(frames, members)), refs) for members, refs in member_refs]
    return [(rows, refs) for rows, refs in judge if len(rows)]


def _apply(block, shifts, patches, plan: _Plan, out=None) -> np.ndarray:
    """Registered copy (float32, into ``out`` if given) of a block, by its rigid or patch shifts."""
    buf = np.empty(block.shape, np.float32) if out is None else out
    if patches is None:
        return K.apply_shifts(block, shifts, buf)
    return K.apply_field(block, patches, plan.grid.wy, plan.grid.wx, buf)


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


@dataclass
class _Template:
    """The template, and for the sample frames it is the mean of, the half of it each is judged
    against: ``members`` lists (sample indices of one half, mean of the other half, registered).
    A frame always matches its own copy in a template, at the shift it was averaged with, so its
    peak on the whole template stands out even for a frame without structure (pure noise, at the
    arbitrary shift an ungated pass gave it). Its peak is still found on the whole template (the
    shifts of frames with structure are as without the test), but it counts only if the other
    half confirms it; if not, the frame is searched again on the other half alone (see ``judge``
    of :func:`._motion_kernels.find_peaks`)."""

    image: np.ndarray
    members: list


def _build_template(sample: np.ndarray, cfg: MotionConfig, plan: _Plan, method: str) -> _Template:
    """Register the sample to its mean (rigid), average the better-matching half of it (highest
    phase-correlation peaks); then
    ``iterations`` times register the sample to that template (with ``method``) and average again.

    The template is anchored at the sample's mean position: the shifts used to average are
    centred (per patch for piecewise), so that the movie's shifts average to about zero.

    The first pass registers to the plain mean, blurred by the motion, where a dim frame's true
    peak may not stand out yet: it is not gated (it only decides how the first template is
    averaged). The later passes are gated like the movie, and average the frames whose peak stood
    out (all frames at shift 0 if none did). From the second pass on, each frame the template is
    made of is judged against the half of it the frame is not part of (see :class:`_Template`).
    """
    n = sample.shape[0]
    template = _Template(sample.mean(axis=0).astype(np.float32), [])
    for it in range(cfg.iterations + 1):
        if not K.has_structure(template.image[None])[0]:  # a flat template: nothing to register
            return template
        pass_method = "rigid" if it == 0 else method
        gated = it > 0
        refs = _references(template.image, plan, pass_method)
        member_refs = [(idx, _references(half, plan, pass_method, judge=True)) for idx, half in template.members]
        est = _concat([_estimate(sample[a:a + cfg.chunk_frames], refs, plan, cfg, pass_method, gated,
                                 _judged_rows(a, min(n - a, cfg.chunk_frames), member_refs))
                       for a in range(0, n, cfg.chunk_frames)])
        shifts = est.shifts - est.shifts.mean(axis=0)
        patches = None if est.patches is None else est.patches - est.patches.mean(axis=0)  # per patch
        keep = _frames_to_average(est, plan.min_z if gated else -np.inf)
        halves = (np.sort(keep)[0::2], np.sort(keep)[1::2])
        total, sums = _registered_sums(sample, keep, halves[0], shifts, patches, plan, cfg.chunk_frames)
        members = [] if not len(halves[1]) else [  # a single frame kept has no other half
            (halves[0], (sums[1] / len(halves[1])).astype(np.float32)),
            (halves[1], (sums[0] / len(halves[0])).astype(np.float32))]
        template = _Template((total / len(keep)).astype(np.float32), members)
    return template


def _frames_to_average(est: _Estimate, min_z: float) -> np.ndarray:
    """Sample frames the next template averages, best first: the better-matching half (highest
    correlation peaks) of the frames whose peak stood out (z above ``min_z``), or all frames if
    none did.

    Frames that did not stand out stay at shift 0 and are never ranked by their peaks: for a frame
    without structure the peak's height only says how well its noise matches the noise of the
    template, and averaging the best of those would build that noise into the template."""
    n = len(est.z)
    stood = np.flatnonzero(est.z > min_z)
    if not len(stood):
        return np.arange(n)
    return stood[np.argsort(-est.heights[stood], kind="stable")][:max(1, n // 2)]


def _concat(estimates) -> _Estimate:
    """One :class:`_Estimate` of consecutive blocks' estimates."""
    return _Estimate(*[None if f[0] is None else np.concatenate(f) for f in zip(*estimates)])


def _registered_sums(sample, keep, half, shifts, patches, plan: _Plan, step: int):
    """Sums (float64) of the sample's frames ``keep`` registered by their shifts (patch shifts):
    of all of them, and of those in ``half`` and of the others."""
    total = np.zeros((plan.h, plan.w), np.float64)
    sums = [np.zeros((plan.h, plan.w), np.float64), np.zeros((plan.h, plan.w), np.float64)]
    for a in range(0, len(keep), step):
        idx = np.sort(keep[a:a + step])
        registered = _apply(sample[idx], shifts[idx], None if patches is None else patches[idx], plan)
        total += registered.sum(axis=0, dtype=np.float64)
        first = np.isin(idx, half)[:, None, None]
        sums[0] += registered.sum(axis=0, dtype=np.float64, where=first)
        sums[1] += registered.sum(axis=0, dtype=np.float64, where=~first)
    return total, sums


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
    # raw, f32, centred, spectra, cc(f64), out, and a copy when the chunk holds frames of the template
    # (judged apart from the others)
    per_frame = itemsize + 4 + 4 + 8 * (w // 2 + 1) / w * 2 + 8 + 4 + 4
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
