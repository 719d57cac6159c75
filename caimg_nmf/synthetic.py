"""Synthetic calcium-imaging movies and matrices with planted ground truth.

Conventions
-----------
* A movie is an array ``(T, H, W)``: frames first, as TIFF stores it.
* Footprints are ``(K, H, W)`` float32, each with maximum 1, in the *reference* (unmoved)
  frame; traces are ``(K, T)`` float32 in movie units: the fluorescence the cell adds at
  its footprint peak, above its resting baseline.
* The movie model is::

      clean[t] = bleach[t] * (background + neuropil[t] + sum_k footprint_k * (baseline_k + trace_k[t]))
      movie[t] = shift(clean[t], shifts[t]) -> Poisson(photon_scale) -> + N(0, noise^2) -> clip >= 0
      movie    = movie * gain + offset            (only after :meth:`SyntheticMovie.to_units`)

Everything is drawn from ``np.random.default_rng(seed)`` through independent child
streams (cells, activity, background, neuropil, motion, noise), so changing e.g. the noise
level keeps the same cells and spikes.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from . import _synthetic_parts as parts
from ._synthetic_matrices import PRIMER_FACTORIES, make_factories, make_matrix
from ._synthetic_parts import _check, _range, footprints_to_masks
from .errors import InputError

__all__ = ["SyntheticMovie", "make_movie", "load_truth", "make_factories", "PRIMER_FACTORIES", "make_matrix",
           "scenario", "SCENARIOS", "sample_data_path", "footprints_to_masks", "TRUTH_KIND"]

TRUTH_KIND = "caimg_nmf.synthetic_truth"


@dataclass
class SyntheticMovie:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    movie : ndarray (T, H, W) float32 or None
        The recording (None when loaded from a truth file).
    footprints : ndarray (K, H, W) float32
        Cell shapes, each with max 1, in the unmoved reference frame.
    traces : ndarray (K, T) float32
        Activity above baseline at the footprint peak, movie units (before bleaching).
    baselines : ndarray (K,) float32
        Resting fluorescence of each cell at its peak, movie units.
    spikes : ndarray (K, T) float32
        Spike counts per frame.
    calcium : ndarray (K, T) float32
        AR(1) calcium (one spike peaks at 1); ``traces = amplitude[:, None] * calcium``.
    background : ndarray (H, W) float32
        Static smooth background, movie units.
    neuropil : ndarray (T, H, W) float32 or None
        Neuropil fluctuations added to the movie (None when ``neuropil=0`` or not stored).
    shifts : ndarray (T, 2) float32
        (row, col) displacement applied to each frame's content; register by shifting
        frame ``t`` by ``-shifts[t]``.
    frame_rate : float
        Hz.
    cell_diameter : float
        Nominal cell diameter in pixels.
    seed : int
    params : dict
        Every generation parameter (JSON-serialisable).
    centres : ndarray (K, 2) float32
        (row, col) of each cell centre.
    diameters : ndarray (K,) float32
        Per-cell diameter in pixels (value 0.3 of the peak at this diameter).
    amplitudes : ndarray (K,) float32
        Fluorescence per spike at the footprint peak.
    bleach : ndarray (T,) float32
        Multiplicative bleaching factor per frame.
    gain, offset : float
        Movie = model * gain + offset (1 and 0 unless :meth:`to_units` was used).
    """

    movie: np.ndarray | None
    footprints: np.ndarray
    traces: np.ndarray
    baselines: np.ndarray
    spikes: np.ndarray
    calcium: np.ndarray
    background: np.ndarray
    neuropil: np.ndarray | None
    shifts: np.ndarray
    frame_rate: float
    cell_diameter: float
    seed: int
    params: dict = field(default_factory=dict)
    centres: np.ndarray | None = None
    diameters: np.ndarray | None = None
    amplitudes: np.ndarray | None = None
    bleach: np.ndarray | None = None
    gain: float = 1.0
    offset: float = 0.0

    @property
    def n_cells(self):
        """Number of planted cells K."""
        return int(self.footprints.shape[0])

    @property
    def shape(self):
        """(H, W) of a frame."""
        return tuple(self.footprints.shape[1:])

    def masks(self, threshold=0.3):
        """Binary cell masks.

        Parameters
        ----------
        threshold : float
            Pixels with ``footprint >= threshold * max`` count, keeping only the connected
            region that holds the peak (holes, e.g. a dim nucleus, are filled).

        Returns
        -------
        masks : ndarray (K, H, W) bool
        """
        return footprints_to_masks(self.footprints, threshold)

    def to_units(self, gain=1000.0, offset=100.0):
        """Copy rescaled to camera-like units: ``movie * gain + offset``.

        Traces, baselines, background, amplitudes and neuropil are multiplied by ``gain``
        so that the truth stays in the same units as the movie; ``offset`` is a dark level
        recorded in :attr:`offset`.
        """
        g = np.float32(gain)
        return dataclasses.replace(
            self,
            movie=None if self.movie is None else self.movie * g + np.float32(offset),
            traces=self.traces * g, baselines=self.baselines * g,
            background=self.background * g,
            neuropil=None if self.neuropil is None else self.neuropil * g,
            amplitudes=None if self.amplitudes is None else self.amplitudes * g,
            gain=float(self.gain * gain), offset=float(self.offset * gain + offset))

    def save_truth(self, path):
        """Write the ground truth to HDF5 atomically (temp file, then ``os.replace``).

        Datasets ``/footprints /traces /spikes /calcium /baselines /background /shifts``
        (+ ``/centres /diameters /amplitudes /bleach``); root attributes ``frame_rate``,
        ``cell_diameter``, ``seed``, ``gain``, ``offset``, ``params`` (JSON string) and
        ``kind = "caimg_nmf.synthetic_truth"``.
        """
        import h5py

        with parts.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for name in ("footprints", "traces", "spikes", "calcium", "baselines",
                         "background", "shifts", "centres", "diameters", "amplitudes",
                         "bleach"):
                value = getattr(self, name)
                if value is not None:
                    big = np.asarray(value).size > 4096
                    f.create_dataset(name, data=value, compression="gzip" if big else None)
            f.attrs.update(frame_rate=float(self.frame_rate),
                           cell_diameter=float(self.cell_diameter), seed=int(self.seed),
                           gain=float(self.gain), offset=float(self.offset),
                           params=json.dumps(self.params), kind=TRUTH_KIND)
        return Path(path)

    def save_movie(self, path, dtype=None):
        """Write the movie as ``.tif``/``.tiff`` (tifffile), ``.npy`` or ``.h5``/``.hdf5``
        (dataset ``/movie``), atomically.

        Parameters
        ----------
        path : str or Path
        dtype : numpy dtype or None
            Convert before writing; integer types are rounded and clipped to their range.
        """
        if self.movie is None:
            raise InputError("save_movie: this SyntheticMovie has no movie (it was loaded "
                             "from a truth file). Regenerate it with make_movie().") from None
        data = self.movie
        if dtype is not None and np.dtype(dtype) != data.dtype:
            dt = np.dtype(dtype)
            if dt.kind in "iu":
                info = np.iinfo(dt)
                data = np.clip(np.rint(data), info.min, info.max)
            data = data.astype(dt)
        parts.write_movie(path, data, self.frame_rate)
        return Path(path)


def make_movie(n_cells=5, shape=(64, 64), n_frames=300, *, frame_rate=10.0,
               cell_diameter=8.0, diameter_jitter=0.25, min_separation=None,
               spike_rate=0.5, tau_decay=0.6, amplitude=(1.0, 2.0), baseline=(0.2, 0.5),
               background=1.0, neuropil=0.0, bleaching=0.0, motion=0.0, noise=0.1,
               photon_scale=None, nucleus_prob=0.3, nucleus_depth=(0.2, 0.4), nucleus_size=0.4,
               silent_fraction=0.0, soma_occlusion=0.0, store_neuropil=True, seed=0):
    """Generate a calcium-imaging movie with planted cells.

    Parameters
    ----------
    n_cells : int
        Number of cells K (0 allowed).
    shape : tuple of int
        (H, W) frame size in pixels.
    n_frames : int
        Number of frames T.
    frame_rate : float
        Hz.
    cell_diameter : float
        Nominal diameter in pixels (footprint falls to 0.3 of its peak there).
    diameter_jitter : float
        Each cell's diameter is ``cell_diameter * (1 + U(-jitter, jitter))``.
    min_separation : float or None
        Minimum centre-to-centre distance in pixels; None means ``0.6 * cell_diameter``
        (footprints may overlap).
    spike_rate : float
        Poisson firing rate in Hz (every cell gets at least 3 spikes).
    tau_decay : float
        Calcium decay in seconds; ``c[t] = exp(-1/(tau_decay*frame_rate)) c[t-1] + s[t]``.
    amplitude : float or (float, float)
        Per-cell fluorescence per spike at the footprint peak, drawn uniformly in the range.
    baseline : float or (float, float)
        Per-cell resting fluorescence at the peak, drawn uniformly in the range.
    background : float
        Mean level of a static smooth background (varies +-30 % across the field).
    neuropil : float
        Standard deviation of smooth spatiotemporal fluctuations (~16 px, ~0.5 s).
    bleaching : float
        Fraction of fluorescence lost by the last frame (exponential decay), in [0, 1).
    motion : float
        Maximum rigid displacement in pixels (sub-pixel, bilinear); recorded in ``shifts``.
    noise : float
        Gaussian read-noise standard deviation, movie units.
    photon_scale : float or None
        If set, Poisson shot noise with this many photons per movie unit.
    nucleus_prob : float
        Fraction of cells drawn with a dimmer nucleus.
    nucleus_depth : float or (float, float)
        How much a nucleus dims the centre of its cell, drawn uniformly in the range: the default
        is a dim nucleus; (0.7, 0.9) gives the bright ring round a dark nucleus that a cytosolic
        indicator (GCaMP) shows.
    nucleus_size : float
        Radius of a nucleus in cell radii (the width of its Gaussian profile); GCaMP-filled
        somata show nuclei of about 0.6.
    silent_fraction : float
        Fraction of cells (rounded down) that never fire in the movie: only their resting
        fluorescence shows, as in real recordings where many annotated cells stay silent.
    soma_occlusion : float
        Fraction of the background and neuropil light missing inside cell bodies, in [0, 1]:
        somata displace the neuropil, so that (with a deep ``nucleus_depth``) a silent cell shows
        in the mean image as a ring round a nucleus darker than its surroundings. 0 lets the
        background show through the cells.
    store_neuropil : bool
        Keep the neuropil movie in the result (it is as large as the movie).
    seed : int

    Returns
    -------
    SyntheticMovie
        ``movie`` is (T, H, W) float32, nonnegative.
    """
    _check(isinstance(shape, (tuple, list)) and len(shape) == 2 and min(shape) >= 4,
           f"make_movie: shape={shape!r} must be (H, W) with both at least 4 pixels.")
    H, W = int(shape[0]), int(shape[1])
    _check(int(n_cells) == n_cells and n_cells >= 0, f"make_movie: n_cells={n_cells!r} must be "
           f"a nonnegative integer.")
    _check(int(n_frames) == n_frames and n_frames >= 1, f"make_movie: n_frames={n_frames!r} "
           f"must be a positive integer.")
    for name, v in (("frame_rate", frame_rate), ("cell_diameter", cell_diameter),
                    ("tau_decay", tau_decay)):
        _check(np.isfinite(v) and v > 0, f"make_movie: {name}={v!r} must be a positive number.")
    for name, v in (("spike_rate", spike_rate), ("background", background),
                    ("neuropil", neuropil), ("motion", motion), ("noise", noise)):
        _check(np.isfinite(v) and v >= 0, f"make_movie: {name}={v!r} must be >= 0.")
    _check(0 <= bleaching < 1, f"make_movie: bleaching={bleaching!r} must be in [0, 1) "
           f"(fraction of fluorescence lost by the last frame).")
    _check(0 <= diameter_jitter < 1, f"make_movie: diameter_jitter={diameter_jitter!r} must "
           f"be in [0, 1).")
    _check(0 <= silent_fraction <= 1, f"make_movie: silent_fraction={silent_fraction!r} must be in [0, 1].")
    _check(0 < nucleus_size <= 1, f"make_movie: nucleus_size={nucleus_size!r} must be in (0, 1] (cell radii).")
    _check(0 <= soma_occlusion <= 1, f"make_movie: soma_occlusion={soma_occlusion!r} must be in [0, 1].")
    _check(photon_scale is None or photon_scale > 0, f"make_movie: photon_scale="
           f"{photon_scale!r} must be positive (photons per movie unit) or None.")
    amp_lo, amp_hi = _range(amplitude, "amplitude")
    base_lo, base_hi = _range(baseline, "baseline")
    nuc_lo, nuc_hi = _range(nucleus_depth, "nucleus_depth")
    _check(0 <= nuc_lo and nuc_hi < 1, f"make_movie: nucleus_depth={nucleus_depth!r} must lie in [0, 1) "
           "(the fraction of the centre's light a nucleus takes away).")
    K, T = int(n_cells), int(n_frames)
    params = dict(n_cells=K, shape=[H, W], n_frames=T, frame_rate=float(frame_rate),
                  cell_diameter=float(cell_diameter), diameter_jitter=float(diameter_jitter),
                  min_separation=None if min_separation is None else float(min_separation),
                  spike_rate=float(spike_rate), tau_decay=float(tau_decay),
                  amplitude=[amp_lo, amp_hi], baseline=[base_lo, base_hi],
                  background=float(background), neuropil=float(neuropil),
                  bleaching=float(bleaching), motion=float(motion), noise=float(noise),
                  photon_scale=None if photon_scale is None else float(photon_scale),
                  nucleus_prob=float(nucleus_prob), nucleus_depth=[nuc_lo, nuc_hi],
                  nucleus_size=float(nucleus_size), silent_fraction=float(silent_fraction),
                  soma_occlusion=float(soma_occlusion), seed=int(seed))

    # A 7th stream for the silent cells leaves the first six (and so every movie without them) unchanged.
    r_cells, r_act, r_bg, r_np, r_mot, r_noise, r_silent = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7))
    # cells
    diam = cell_diameter * (1 + r_cells.uniform(-diameter_jitter, diameter_jitter, K))
    min_sep = 0.6 * cell_diameter if min_separation is None else float(min_separation)
    centres = parts.place_centres(r_cells, K, (H, W), diam, min_sep)
    occluded = soma_occlusion > 0 and K > 0
    made = parts.make_footprints(r_cells, centres, diam, (H, W), nucleus_prob, (nuc_lo, nuc_hi),
                                 bodies=occluded, nucleus_size=nucleus_size)
    footprints, bodies = made if occluded else (made, None)
    # activity
    spikes, calcium = parts.spikes_and_calcium(r_act, K, T, frame_rate, spike_rate, tau_decay)
    silent = r_silent.permutation(K)[:int(np.floor(silent_fraction * K + 1e-9))]
    spikes[silent] = 0
    calcium[silent] = 0
    amps = r_act.uniform(amp_lo, amp_hi, K).astype(np.float32)
    bases = r_act.uniform(base_lo, base_hi, K).astype(np.float32)
    traces = amps[:, None] * calcium
    # background, neuropil, bleaching
    bg = np.float32(background) * (1 + 0.3 * np.tanh(parts.smooth_field(r_bg, (H, W), cell=32)))
    npil = None
    if neuropil > 0:
        npil = np.float32(neuropil) * parts.smooth_field(r_np, (H, W), T, cell=16.0,
                                                         time_sigma=0.5 * frame_rate)
    bleach = np.exp(np.log1p(-bleaching) * np.arange(T) / max(T - 1, 1)).astype(np.float32)
    # assemble: (T, P) = (T, K) @ (K, P)
    act = (bases[:, None] + traces).T
    movie = (act @ footprints.reshape(K, -1)).reshape(T, H, W) if K else np.zeros((T, H, W),
                                                                                np.float32)
    if occluded:
        # Neuropil light (background included) is missing where cell bodies displace it; the truth
        # holds the fields as they enter the movie.
        seen = 1 - np.float32(soma_occlusion) * np.minimum(bodies.sum(axis=0), 1)
        bg = bg * seen
        if npil is not None:
            npil *= seen
    movie += bg
    if npil is not None:
        movie += npil
    movie *= bleach[:, None, None]
    shifts = parts.motion_shifts(r_mot, T, motion)
    if motion > 0:
        movie = parts.apply_shifts(movie, shifts)
    np.maximum(movie, 0, out=movie)
    if photon_scale is not None:
        movie = (r_noise.poisson(movie * photon_scale) / photon_scale).astype(np.float32)
    if noise > 0:
        movie += np.float32(noise) * r_noise.standard_normal(movie.shape, dtype=np.float32)
    np.maximum(movie, 0, out=movie)
    return SyntheticMovie(
        movie=movie.astype(np.float32, copy=False), footprints=footprints,
        traces=traces.astype(np.float32), baselines=bases, spikes=spikes, calcium=calcium,
        background=bg.astype(np.float32), neuropil=npil if store_neuropil else None,
        shifts=shifts, frame_rate=float(frame_rate), cell_diameter=float(cell_diameter),
        seed=int(seed), params=params, centres=centres.astype(np.float32),
        diameters=diam.astype(np.float32), amplitudes=amps, bleach=bleach)


def load_truth(path):
    """Read a truth file written by :meth:`SyntheticMovie.save_truth`.

    Returns
    -------
    SyntheticMovie
        With ``movie=None`` and ``neuropil=None``.
    """
    import h5py

    from .io.inputs import check_input_file

    p = check_input_file(path, "load_truth: truth file", hint="Check the path; truth files are written by "
                         "SyntheticMovie.save_truth().")
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise InputError(f"load_truth: '{p}' is not an HDF5 file. Give a truth file written "
                         f"by SyntheticMovie.save_truth().") from None
    with f:
        if f.attrs.get("kind") != TRUTH_KIND:
            raise InputError(f"load_truth: '{p}' is HDF5 but not a caimg_nmf synthetic truth "
                             f"file (attribute kind != '{TRUTH_KIND}').") from None
        from .io.hdf5 import list_datasets, read_dataset

        d = {name.lstrip("/"): read_dataset(f[name], name, p) for name, _ in list_datasets(f, p)}
        a = dict(f.attrs)
    missing = [f"/{n}" for n in _TRUTH_DATASETS if n not in d] + [n for n in _TRUTH_ATTRS if n not in a]
    if missing:
        raise InputError(f"load_truth: '{p}' is missing {', '.join(missing)}: it is not a complete truth file "
                         "written by SyntheticMovie.save_truth().") from None
    return SyntheticMovie(
        movie=None, footprints=d["footprints"], traces=d["traces"], baselines=d["baselines"],
        spikes=d["spikes"], calcium=d["calcium"], background=d["background"], neuropil=None,
        shifts=d["shifts"], frame_rate=_truth_attr(a, "frame_rate", float, p),
        cell_diameter=_truth_attr(a, "cell_diameter", float, p), seed=_truth_attr(a, "seed", int, p),
        params=_truth_attr(a, "params", json.loads, p), centres=d.get("centres"), diameters=d.get("diameters"),
        amplitudes=d.get("amplitudes"), bleach=d.get("bleach"),
        gain=_truth_attr(a, "gain", float, p, 1.0), offset=_truth_attr(a, "offset", float, p, 0.0))


#: what SyntheticMovie.save_truth writes and load_truth needs
_TRUTH_DATASETS = ("footprints", "traces", "baselines", "spikes", "calcium", "background", "shifts")
_TRUTH_ATTRS = ("frame_rate", "cell_diameter", "seed", "params")


def _truth_attr(attrs, key, convert, path, default=None):
    """A truth file's attribute ``key`` converted (float, int, json.loads), or InputError naming it."""
    value = attrs.get(key, default)
    try:
        return convert(value)
    except (TypeError, ValueError, OverflowError):
        what = "JSON" if convert is json.loads else "a number"
        raise InputError(f"load_truth: '{path}': attribute {key} is {value!r}, not {what}; the truth file "
                         "is damaged. Write it again with SyntheticMovie.save_truth().") from None


#: Preset scenarios: name -> (description, make_movie keyword arguments).
SCENARIOS = {
    "five_cells": (
        "The primer's demo: 5 well-separated cells (centres >= 16 px apart) on 64x64, "
        "300 frames at 10 Hz, low read noise (0.05), flat-ish background, no neuropil, "
        "bleaching or motion.",
        dict(n_cells=5, shape=(64, 64), n_frames=300, frame_rate=10.0, cell_diameter=8.0,
             min_separation=16.0, noise=0.05, neuropil=0.0, bleaching=0.0, motion=0.0)),
    "realistic": (
        "60 cells (diameter 8 px, overlaps allowed) on 128x128, 1000 frames at 10 Hz, "
        "neuropil 0.3, 20 % bleaching, up to 2 px rigid motion, shot noise (50 photons per "
        "unit) plus read noise 0.05.",
        dict(n_cells=60, shape=(128, 128), n_frames=1000, frame_rate=10.0, cell_diameter=8.0,
             neuropil=0.3, bleaching=0.2, motion=2.0, photon_scale=50.0, noise=0.05)),
    "dense": (
        "100 cells (diameter 10 px, centres only >= 4 px apart, so many overlap) on "
        "128x128, 1000 frames at 10 Hz, neuropil 0.2, 10 % bleaching, no motion, shot noise "
        "(100 photons per unit) plus read noise 0.05.",
        dict(n_cells=100, shape=(128, 128), n_frames=1000, frame_rate=10.0,
             cell_diameter=10.0, min_separation=4.0, neuropil=0.2, bleaching=0.1,
             motion=0.0, photon_scale=100.0, noise=0.05)),
    "short": (
        "A short recording, as Neurofinder 01.01 is: 40 cells on 112x112, only 100 frames at 7.5 Hz "
        "(13 s), slow indicator (decay 1 s), cell diameters varying 2x within the field (nominal 10 px, "
        "6.7-13.3 px), centres >= 9 px apart, neuropil 0.2, 5 % bleaching, shot noise (50 photons "
        "per unit) plus read noise 0.05.",
        dict(n_cells=40, shape=(112, 112), n_frames=100, frame_rate=7.5, cell_diameter=10.0,
             diameter_jitter=1 / 3, min_separation=9.0, spike_rate=0.5, tau_decay=1.0, neuropil=0.2,
             bleaching=0.05, motion=0.0, photon_scale=50.0, noise=0.05)),
    "sizes": (
        "Cell sizes 0.7-1.2 x the nominal 10 px diameter (7-12 px; give cell_diameter=10), no nuclei "
        "(filled somata), 40 cells on 128x128, 1000 frames at 10 Hz, centres >= 10 px apart, neuropil 0.2, "
        "10 % bleaching, shot noise (50 photons per unit) plus read noise 0.05.",
        dict(n_cells=40, shape=(128, 128), n_frames=1000, frame_rate=10.0, cell_diameter=9.5,
             diameter_jitter=0.25 / 0.95, min_separation=10.0, neuropil=0.2, bleaching=0.1, motion=0.0,
             photon_scale=50.0, noise=0.05, nucleus_prob=0.0)),
    "gcamp6s": (
        "What Neurofinder 01.01 shows: filled somata (no nuclei) of which 40 % never fire (seen only in the "
        "mean image), 100 frames at 7.5 Hz (13 s) of a slow indicator (decay 1 s), diameters varying 2x "
        "(nominal 10 px, 6.7-13.3 px), amplitudes varying 6x (dim cells beside bright ones), 40 cells on "
        "112x112, centres >= 9 px apart, neuropil 0.2, strong shot noise (10 photons per unit).",
        dict(n_cells=40, shape=(112, 112), n_frames=100, frame_rate=7.5, cell_diameter=10.0,
             diameter_jitter=1 / 3, min_separation=9.0, spike_rate=0.5, tau_decay=1.0, amplitude=(0.3, 1.8),
             baseline=(0.3, 1.0), neuropil=0.2, bleaching=0.05, motion=0.0, photon_scale=10.0, noise=0.05,
             nucleus_prob=0.0, silent_fraction=0.4)),
}


def scenario(name, seed=0, **overrides):
    """Generate a preset movie; see :data:`SCENARIOS` for names and descriptions.

    Parameters
    ----------
    name : {"five_cells", "realistic", "dense", "short"}
    seed : int
    **overrides
        Any :func:`make_movie` keyword, replacing the preset's value.

    Returns
    -------
    SyntheticMovie
    """
    if name not in SCENARIOS:
        raise InputError(f"scenario: unknown name '{name}'. Choose one of "
                         f"{', '.join(SCENARIOS)}.") from None
    kwargs = dict(SCENARIOS[name][1])
    kwargs.update(overrides)
    out = make_movie(seed=seed, **kwargs)
    out.params["scenario"] = name
    return out


def sample_data_path(name):
    """Path of a sample file shipped in ``caimg_nmf/data`` (e.g. ``"five_cells.tif"``).

    Raises
    ------
    InputError
        If no such file is shipped; the message lists the available ones.
    """
    folder = Path(str(resources.files("caimg_nmf"))) / "data"
    p = folder / name
    if not p.is_file():
        have = sorted(q.name for q in folder.glob("*") if q.is_file() and q.suffix != ".py") \
            if folder.is_dir() else []
        raise InputError(f"sample_data_path: no sample file '{name}' in {folder}. Available: "
                         f"{', '.join(have) or 'none (reinstall caimg_nmf)'}.") from None
    return p
