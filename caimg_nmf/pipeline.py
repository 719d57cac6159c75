"""The pipeline: an ordered list of named stages, run on a movie with one configuration.

Each stage adapter below takes the run's state and the config and calls a pure stage function
from :mod:`caimg_nmf.stages`. The runner owns what stages must not do: reading and writing
files, progress, timings, memory checks and provenance.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config, check_key, load_config
from .errors import ConfigError, MemoryBudgetError, OutputError
from .io.atomic import check_output_path, check_writable_dir, refuse_inputs, remove_dead_leftovers
from .io.lock import OutputLock
from .io.movie import Movie, load_movie
from .io.provenance import input_identity, provenance_attrs
from .io.result import Result
from .memory import available_memory, estimate_local_memory, estimate_run_memory, format_bytes, plan_memory
from .stages._local_fit import resolve_n_jobs
from .progress import Reporter
from .stages import preprocess as pre
from .stages.rois import masks_from_footprints
from .stages.traces import background_under, compute_dff, resting_fluorescence

__all__ = ["run", "STAGES", "RunState", "default_output_path"]


@dataclass
class RunState:
    """What the stages hand on to each other during one run."""

    cfg: Config
    report: Reporter
    movie: Movie | None = None
    frames: np.ndarray | None = None        # (T, H, W) float32, nonnegative after preprocess
    frame_rate: float = 0.0                 # after temporal binning
    input_rate: float = 0.0                 # of the recording as read (config, file, or assumed)
    pixel_size_um: float | None = None      # of the recording as read (config or file); None: unknown
    baseline: np.ndarray | None = None      # (H, W)
    mean_image: np.ndarray | None = None    # (H, W)
    footprints: np.ndarray | None = None    # (K, H, W), peak 1
    traces: np.ndarray | None = None        # (K, T), movie units
    resting: np.ndarray | None = None       # (K,) fluorescence under each footprint at rest
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    masks: np.ndarray | None = None
    dff: np.ndarray | None = None
    extras: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    scratch: Path | None = None             # folder for disk-backed arrays of out-of-core runs
    motion: object | None = None            # the motion model, to register frames read again later


# ------------------------------------------------------------------------------------------
# Stage adapters
# ------------------------------------------------------------------------------------------

def _stage_load(state: RunState) -> None:
    cfg = state.cfg.input
    if state.movie is None:
        path = state.cfg.resolve_path(cfg.path) if cfg.path else ""
        state.movie = load_movie(path, dataset=cfg.dataset, axes=cfg.axes, check_axes=cfg.check_axes)
    movie = state.movie
    state.report.info(f"input: {movie}")
    _check_against_frame(state.cfg, movie.shape)  # before the input is hashed: refused at once
    state.attrs.update(input_identity(movie))
    state.input_rate, state.attrs["frame_rate_source"] = _input_frame_rate(cfg, movie, state.report)
    state.pixel_size_um, state.attrs["pixel_size_source"] = _input_pixel_size(cfg, movie, state.report)


#: The frame rate assumed when neither the config nor the file gives one.
ASSUMED_FRAME_RATE = 10.0


def _input_frame_rate(cfg, movie, report) -> tuple[float, str]:
    """The recording's frame rate and where it came from: the config (input.frame_rate, --frame-rate
    or a keyword; it wins over the file, with a warning when they disagree), the file's metadata, or
    assumed (10 Hz, with a warning: ΔF/F windows, spike kinetics and time axes depend on it)."""
    rate, source = _configured_or_stated("frame_rate", cfg, movie, report, what="frame rate", unit="Hz",
                                         how_to_set="--frame-rate HZ")
    if rate is not None:
        return rate, source
    report.warn(f"the frame rate is not set and {movie.source} does not state it: assuming "
                f"{ASSUMED_FRAME_RATE:g} Hz. Set input.frame_rate (--frame-rate HZ); ΔF/F windows, spike "
                "kinetics and time axes depend on it")
    return ASSUMED_FRAME_RATE, "assumed"


def _input_pixel_size(cfg, movie, report) -> tuple[float | None, str]:
    """The recording's pixel size (µm) and where it came from: the config (input.pixel_size_um; it
    wins over the file, with a warning when they disagree), the file's metadata, or "unknown" (None:
    scale bars in pixels)."""
    size, source = _configured_or_stated("pixel_size_um", cfg, movie, report, what="pixel size", unit="µm",
                                         how_to_set="--set input.pixel_size_um=UM")
    return (size, source) if size is not None else (None, "unknown")


def _configured_or_stated(key, cfg, movie, report, *, what, unit, how_to_set) -> tuple[float | None, str | None]:
    """(value, "config") of ``input.<key>`` when set (it wins over the file's ``movie.<key>``, with a
    warning when they disagree), else (the file's value, "file") when the file states one within the
    key's bounds (beyond them: ConfigError, the metadata is as absurd as such a value typed), else
    (None, None)."""
    configured, stated = getattr(cfg, key), getattr(movie, key, None)
    if configured is not None:
        if stated and abs(stated - configured) > 1e-3 * stated:
            report.warn(f"input.{key} = {configured:g} {unit} disagrees with the {stated:g} {unit} that "
                        f"{movie.source} states; using {configured:g} {unit} as configured")
        return float(configured), "config"
    if not stated:
        return None, None
    try:
        check_key(f"input.{key}", float(stated), label=f"{movie.source} states a {what} of {stated:g} {unit}")
    except ConfigError as exc:
        raise ConfigError(f"{exc}; the file's metadata is wrong. Set the real {what} with input.{key} "
                          f"({how_to_set}).") from None
    report.info(f"{what} {stated:g} {unit}, as the file states")
    return float(stated), "file"


def _stage_prepare(state: RunState) -> None:
    cfg = state.cfg
    shape = pre.output_shape(state.movie.shape, cfg.input, cfg.preprocess)
    if cfg.factorize.method == "whole":
        need = estimate_run_memory(shape, _planned_rank(cfg))
    else:
        diameter = cfg.input.cell_diameter and cfg.input.cell_diameter / cfg.preprocess.spatial_bin
        need = estimate_local_memory(shape, diameter, state.input_rate / cfg.preprocess.temporal_bin,
                                     cfg.detect.summary_rate, n_jobs=resolve_n_jobs(cfg.detect.n_jobs),
                                     tile_size=cfg.detect.tile_size,
                                     max_binned_frames=cfg.detect.max_binned_frames)
    free = available_memory()
    out = None
    try:
        streamed = plan_memory(need, 4 * shape[0] * shape[1] * shape[2], state.scratch, free)
    except MemoryBudgetError as exc:
        T, H, W = state.movie.shape
        raise MemoryBudgetError(f"{state.movie.source}: the movie declares {T} x {H} x {W} frames. {exc} To "
                                "analyse part of it, set input.n_frames (and input.first_frame); if the file "
                                "should not be that large, it is damaged.") from None
    if streamed:
        # Too big for memory: keep the prepared frames in a disk-backed array; NMF streams them.
        state.report.warn(f"the run needs about {format_bytes(need)} but {format_bytes(free)} is free: "
                          f"frames go to a temporary file in {state.scratch} and NMF streams them "
                          f"within nmf.memory_budget_gb = {cfg.nmf.memory_budget_gb}")
        out = np.lib.format.open_memmap(state.scratch / "frames.npy", mode="w+", dtype=np.float32, shape=shape)
    else:
        state.report.info(f"estimated peak memory {format_bytes(need)} ({format_bytes(free)} free)")
    with state.report.task("read frames", total=shape[0]) as advance:
        state.frames = pre.prepare_frames(state.movie, cfg.input, cfg.preprocess, out=out,
                                          progress=lambda n: advance(n))
    pre.check_not_constant(state.frames, state.movie.source)
    _offset_negative_movie(state)
    state.frame_rate = state.input_rate / cfg.preprocess.temporal_bin


def _offset_negative_movie(state: RunState) -> None:
    """A movie with negative values (an acquisition offset) is shifted to >= 0; say so, record it."""
    offset = pre.offset_to_nonnegative(state.frames)
    state.attrs["input_offset"] = offset
    if offset:
        state.report.warn(
            f"the movie has negative values (minimum {-offset:g}), as recordings with a digitizer offset "
            f"have: {offset:g} was added to every pixel so that NMF sees values >= 0. Baseline, background and "
            f"mean image are in movie units plus {offset:g} (attribute input_offset), and ΔF/F's F0 counts "
            "from that zero: the acquisition's true zero is not known (ΔF/F is too small if it lies above "
            "the movie's minimum, e.g. at the dark level, too large if below)")


def _stage_motion(state: RunState) -> None:
    from .stages.motion import correct_motion

    cfg = state.cfg.motion
    if cfg.method == "none":
        return
    done = [0]
    with state.report.task(f"motion correction ({cfg.method})", total=state.frames.shape[0]) as advance:
        def progress(n_done):
            advance(n_done - done[0])
            done[0] = n_done

        motion = correct_motion(state.frames, cfg, out=state.frames, progress=progress)
    state.motion = dataclasses.replace(motion, frames=None)  # keep the model, not a second movie reference
    state.extras["motion/shifts"] = motion.shifts
    state.extras["motion/template"] = motion.template
    state.extras["motion/peak_z"] = motion.peak_z
    state.attrs["motion_min_peak_z"] = motion.min_peak_z
    if motion.patch_shifts is not None:
        state.extras["motion/patch_shifts"] = motion.patch_shifts
        state.extras["motion/patch_peak_z"] = motion.patch_peak_z
        state.attrs["motion_min_patch_peak_z"] = motion.min_patch_peak_z
    state.report.info(f"motion ({motion.method}): largest shift {motion.max_shift():.2f} px; {motion.unshifted()}")


def _stage_preprocess(state: RunState) -> None:
    state.mean_image = _mean_frame(state.frames)
    if state.cfg.factorize.method != "whole":
        return  # the local method models baseline and background itself, on raw fluorescence
    frames, baseline = pre.remove_baseline(state.frames, state.cfg.preprocess, source=state.movie.source)
    state.frames, state.baseline = frames, baseline
    state.extras["baseline"] = baseline


def _check_against_frame(cfg: Config, movie_shape: tuple) -> None:
    """Values that must suit the movie's size once prepared (frames subset, crop, binning): a given
    cell diameter, and a fixed rank of the whole-field method."""
    shape = pre.output_shape(movie_shape, cfg.input, cfg.preprocess)
    _check_cell_diameter(cfg, shape[1:])
    if cfg.factorize.method == "whole" and cfg.nmf.rank != "auto":
        _check_rank_fits(cfg.nmf.rank, shape)


def _check_cell_diameter(cfg: Config, frame: tuple) -> None:
    """Refuse a given input.cell_diameter that cannot be a cell of this frame (after crop and
    binning): below 2 px, or above a quarter of the frame's shorter side (a typo such as 5000 on
    64 x 64 would otherwise run for minutes, or exhaust the memory), with the valid range."""
    d = cfg.input.cell_diameter
    if d is None:
        return
    b = cfg.preprocess.spatial_bin
    lo, hi = cell_diameter_limits(frame)
    if lo <= d / b <= hi:
        return
    H, W = frame
    changed = [name for name, on in (("preprocess.crop", bool(cfg.preprocess.crop)),
                                     (f"preprocess.spatial_bin = {b}", b > 1)) if on]
    frame_text = f"{H} x {W}" + (f" after {' and '.join(changed)}" if changed else "")
    if hi < lo:
        raise ConfigError(f"input.cell_diameter = {d:g} px: the frame ({frame_text}) is too small for cells of "
                          f"at least {lo:g} px (a quarter of its shorter side is {hi:g} px); crop or bin less.") \
            from None
    binned = f" ({d / b:g} px in the binned frame)" if b > 1 else ""
    why = (f"is larger than a quarter of the shorter side of the frame ({frame_text})" if d / b > hi else
           f"is below {lo:g} px (frame {frame_text})")
    raise ConfigError(f"input.cell_diameter = {d:g} px{binned} {why}: use {lo * b:g} to {hi * b:g} px, or "
                      "leave it out to have it estimated.") from None


def cell_diameter_limits(frame: tuple) -> tuple[float, float]:
    """(smallest, largest) cell diameter in pixels for frames of ``frame`` = (H, W) pixels: the
    config's minimum (input.cell_diameter, 2 px), and a quarter of the shorter side (a cell window
    is about two diameters wide, and background tents need a few windows to the frame)."""
    from .config import InputConfig

    low = next(f.metadata["min"] for f in dataclasses.fields(InputConfig) if f.name == "cell_diameter")
    return float(low), min(frame) / 4


def _check_rank_fits(K: int, shape: tuple) -> None:
    T, H, W = shape
    if K > min(H * W, T):
        raise ConfigError(f"nmf.rank = {K} is larger than min(pixels, frames) = min({H * W}, {T}) of this "
                          "movie; choose a smaller rank (--rank).") from None


def _mean_frame(frames) -> np.ndarray:
    total = np.zeros(frames.shape[1:], np.float64)
    for t0 in range(0, frames.shape[0], 256):
        total += frames[t0:t0 + 256].sum(axis=0, dtype=np.float64)
    return (total / frames.shape[0]).astype(np.float32)


def _planned_rank(cfg: Config) -> int:
    """nmf.rank, or for nmf.rank = "auto" the largest rank that selection may try."""
    return cfg.rank.max_rank if cfg.nmf.rank == "auto" else cfg.nmf.rank


# --- nmf.rank = "auto": choose K by caimg_nmf.rank.select_rank -----------------------------------
def _select_rank(state: RunState) -> int:
    """Run rank selection on the prepared frames; record its curves; return the chosen K."""
    from .rank import count_fits, select_rank
    from .stages.preprocess import flatten

    cfg, rc = state.cfg, state.cfg.rank
    T, H, W = state.frames.shape
    top = min(rc.max_rank, H * W, T)
    if rc.min_rank > top:
        raise ConfigError(f"rank.min_rank = {rc.min_rank} is larger than min(pixels, frames) = "
                          f"min({H * W}, {T}) of this movie; lower rank.min_rank.") from None
    ranks = list(range(rc.min_rank, top + 1, rc.step))
    total = count_fits(len(ranks), rc.methods, rc.replicates)
    with state.report.task(f"rank selection (ranks {ranks[0]}..{ranks[-1]}, {total} fits)",
                           total=total, unit="fits") as advance:
        sel = select_rank(np.asarray(flatten(state.frames)), ranks, methods=rc.methods,
                          replicates=rc.replicates, holdout=rc.holdout, solver=cfg.nmf.solver,
                          max_iter=cfg.nmf.max_iter, tol=cfg.nmf.tol, random_state=cfg.nmf.seed,
                          n_jobs=cfg.nmf.n_jobs, progress=advance)
    state.report.info(sel.reason)
    state.extras.update(sel.extras())
    state.attrs.update(rank_selection_reason=sel.reason, nmf_rank=int(sel.recommended))
    return int(sel.recommended)


def _stage_factorize(state: RunState) -> None:
    if state.cfg.factorize.method == "local":
        _factorize_local(state)
    else:
        _factorize_whole(state)


def _factorize_local(state: RunState) -> None:
    from .stages.curate import curate
    from .stages.detect import find_cells

    cfg = state.cfg
    diameter = cfg.input.cell_diameter
    if diameter is not None:
        diameter = diameter / cfg.preprocess.spatial_bin
    with state.report.task("find cells (local NMF)"):
        found = find_cells(state.frames, cfg.detect, cell_diameter=diameter, frame_rate=state.frame_rate,
                           progress=lambda msg: state.report.info(f"find cells: {msg}"), dense=False,
                           task=lambda what, total, unit: state.report.task(f"find cells: {what}", total, unit))
    with state.report.task("curate"):
        kept = curate(found, state.frames, cfg.curate, cfg.rois)
    sizes = kept.info["curate"]
    spread = sizes["cell_diameter_spread_px"]
    state.report.info(f"{found.n_cells} candidates, {kept.n_cells} kept as cells "
                      f"(cell diameter {found.cell_diameter:.1f} px{'' if diameter else ', estimated'}; "
                      f"cells kept: median {sizes['cell_diameter_median_px']:.1f} px, spread {spread:.1f} px)")
    n_candidates, found_diameter = found.n_cells, found.cell_diameter
    del found   # its dense footprints are not needed any more
    state.footprints = kept.footprints
    state.traces = kept.traces
    ex = state.extras
    ex["cells/origin"] = ["activity"] * kept.n_cells
    neuropil = kept.neuropil_traces
    if cfg.somata.enabled:
        soma_neuropil = _add_somata(state, kept, found_diameter)
        if soma_neuropil is not None and len(soma_neuropil):
            # rows for the activity cells: their fitted rings (detect.neuropil_ring), or NaN (none)
            cells = neuropil if neuropil is not None else np.full((kept.n_cells, soma_neuropil.shape[1]), np.nan,
                                                                  np.float32)
            neuropil = np.concatenate([cells, soma_neuropil])
    # The cell sits on the background model's light: it enters ΔF/F's F0 (stages/traces.py).
    state.resting = background_under(state.footprints, kept.background_footprints, kept.background_traces)
    if state.resting.shape[1] != state.traces.shape[1]:
        state.resting = np.zeros(state.traces.shape[0])
    state.attrs.update(cell_diameter_px=float(found_diameter), cell_diameter_spread_px=float(spread),
                       n_candidates=int(n_candidates))
    ex["correlation_image"] = kept.correlation_image
    if kept.pnr_image is not None:
        ex["pnr_image"] = kept.pnr_image
    if neuropil is not None:
        ex["neuropil_traces"] = neuropil
    ex["background/footprints"] = kept.background_footprints
    ex["background/traces"] = kept.background_traces
    ex["rejected/footprints"] = kept.rejected_footprints
    ex["rejected/traces"] = kept.rejected_traces
    ex["rejected/reasons"] = list(kept.rejected_reasons)


def _cells_cover(footprints: np.ndarray, rois) -> np.ndarray:
    """(H, W) bool: the union of the cells' ROI masks, 16 cells at a time (no (K, H, W) of masks)."""
    covered = np.zeros(footprints.shape[1:], bool)
    for k0 in range(0, footprints.shape[0], 16):
        covered |= masks_from_footprints(footprints[k0:k0 + 16], rois.threshold, smooth=rois.smooth,
                                         fill_holes=rois.fill_holes).masks.any(axis=0)
    return covered


def _any_nonzero(stack: np.ndarray, chunk: int = 32) -> np.ndarray:
    """(H, W) bool: where any of the (N, H, W) images is nonzero, ``chunk`` images at a time."""
    out = np.zeros(stack.shape[1:], bool)
    for k0 in range(0, stack.shape[0], chunk):
        out |= (stack[k0:k0 + chunk] != 0).any(axis=0)
    return out


def _add_somata(state: RunState, kept, diameter: float):
    """Append the somata seen in the mean image that no kept cell covers (stages/somata.py), with
    traces fitted with the rest of the model held fixed, neuropil-corrected. Returns the neuropil
    traces of those added ((N, T), N may be 0), or None when the search could not run."""
    from .stages.somata import (MIN_DIAMETER, disc_footprints, find_somata, fit_fixed_traces, neuropil_rings,
                                split_noise_image)

    cfg = state.cfg
    largest = cell_diameter_limits(state.mean_image.shape)[1]
    if not MIN_DIAMETER <= diameter <= largest or state.frames.shape[0] < 2:
        state.report.warn(f"somata in the mean image not looked for: the cell diameter ({diameter:.1f} px) is "
                          f"below {MIN_DIAMETER:g} px or above a quarter of the frame's shorter side "
                          f"({largest:g} px), or the movie has fewer than 2 frames")
        return None
    # what the cells found leave of the mean image: the gap between three bright cells is dark in the
    # middle and bright all round, like a soma (searched in the mean image itself: 2-3 false cells on
    # each realistic synthetic movie, and real F1 0.481 instead of 0.500, both before the noise test)
    unexplained = state.mean_image - np.tensordot(kept.traces.mean(axis=1), kept.footprints, axes=1)
    covered = _cells_cover(kept.footprints, cfg.rois)
    noise_image = split_noise_image(state.frames)
    somata = find_somata(unexplained, diameter, cfg.somata, cell_masks=covered, noise_image=noise_image,
                         also_in=state.mean_image)
    rings_found = disc_footprints(somata.centres, somata.radius, state.mean_image.shape) if somata.n_somata else None
    filled = _filled_somata(state, unexplained, diameter, noise_image, covered,
                            None if rings_found is None else _any_nonzero(rings_found))
    n_filled = 0 if filled is None else filled.n_somata
    state.attrs.update(n_somata_added=somata.n_somata + n_filled, n_somata_seen=somata.n_candidates + n_filled)
    state.extras["cells/mean_image_contrast"] = np.concatenate(
        [np.full(kept.n_cells, np.nan, np.float32), somata.scores, np.full(n_filled, np.nan, np.float32)])
    if filled is not None:   # their own score: contrast over the noise image's, another unit
        state.extras["cells/filled_score"] = np.concatenate(
            [np.full(kept.n_cells + somata.n_somata, np.nan, np.float32), filled.scores])
    if not somata.n_somata + n_filled:
        state.report.info(f"mean image: {somata.n_candidates} somata seen"
                          f"{', all covered by cells found' if somata.n_candidates else ''}")
        return np.zeros((0, state.frames.shape[0]), np.float32)
    K, N = kept.n_cells, somata.n_somata + n_filled
    # one array for both (the kept cells' own is freed once ``kept`` refers to the new one); np.zeros
    # leaves the discs' rows as untouched zero pages, so this costs the kept footprints once more
    footprints = np.zeros((K + N, *state.mean_image.shape), np.float32)
    footprints[:K] = kept.footprints
    state.footprints = kept.footprints = footprints[:K]
    if rings_found is not None:
        footprints[K:K + somata.n_somata] = rings_found
    if n_filled:
        footprints[K + somata.n_somata:] = filled.masks
    centres = np.concatenate([somata.centres.reshape(-1, 2), np.zeros((0, 2), np.int64) if filled is None
                              else filled.centres]).astype(np.int64)
    # each soma's neuropil: a ring round it, other cells' pixels (activity cells and somata) left out
    rings = neuropil_rings(centres, somata.radius, state.mean_image.shape,
                           exclude=covered | _any_nonzero(footprints[K:]))
    with state.report.task(f"traces of {N} somata from the mean image"):
        traces, neuropil = fit_fixed_traces(state.frames, footprints[K:], kept.footprints, kept.traces,
                                            kept.background_footprints, kept.background_traces, kept.baseline,
                                            rings=rings, neuropil_coefficient=cfg.somata.neuropil_coefficient,
                                            nonnegative=False)
    state.footprints = footprints
    state.traces = np.concatenate([state.traces, traces])
    state.extras["cells/origin"] += ["mean image"] * N
    state.extras["cells/neuropil_coefficient"] = np.concatenate(
        [np.zeros(K, np.float32), np.full(N, cfg.somata.neuropil_coefficient, np.float32)])
    state.report.info(f"mean image: {somata.n_candidates} somata seen, {somata.n_somata} not covered by a cell "
                      f"found from activity were added" + (f", and {n_filled} filled ones" if n_filled else ""))
    return neuropil


def _filled_somata(state: RunState, unexplained: np.ndarray, diameter: float, noise_image: np.ndarray, covered,
                   taken):
    """The filled somata (stages/_soma_shapes.py) in what the cells found leave of the mean image, when
    somata.filled is on (else None); their calibrated threshold saved in the result's attrs."""
    from .stages._soma_shapes import find_filled_somata

    cfg = state.cfg.somata
    if cfg.filled == "auto":
        from .stages._soma_shapes import texture_to_noise

        ratio = texture_to_noise(unexplained, noise_image, diameter, covered)
        search = ratio <= cfg.filled_max_texture
        state.attrs.update(somata_texture_to_noise=float(ratio), somata_filled_search=bool(search))
        state.report.info(f"mean image: texture {ratio:.1f} x its noise at the cell's scale; filled somata "
                          + ("looked for" if search else f"not looked for (above somata.filled_max_texture = "
                                                         f"{cfg.filled_max_texture:g}: a long recording, whose "
                                                         "blobs are mostly texture)"))
        if not search:
            return None
    elif not cfg.filled:
        return None
    else:
        state.attrs.update(somata_filled_search=True)
    filled = find_filled_somata(unexplained, diameter, noise_image, mean_image=state.mean_image, covered=covered,
                                taken=taken,
                                false_per_field=cfg.false_per_field, max_overlap=cfg.max_overlap)
    state.attrs.update(somata_filled_threshold=filled.threshold, n_somata_filled=filled.n_somata)
    return filled


def _factorize_whole(state: RunState) -> None:
    from .stages.factorize import factorize_whole

    cfg = state.cfg
    T, H, W = state.frames.shape
    K = cfg.nmf.rank
    nmf_cfg = cfg.nmf
    if K == "auto":
        K = _select_rank(state)
        nmf_cfg = dataclasses.replace(cfg.nmf, rank=K)
    _check_rank_fits(K, (T, H, W))
    with state.report.task(f"NMF ({cfg.nmf.solver}, rank {K}, {cfg.nmf.replicates} replicate(s))",
                           total=cfg.nmf.max_iter * cfg.nmf.replicates, unit="it") as advance:
        fit = factorize_whole(state.frames, nmf_cfg, progress=advance)
    if not fit.converged:
        state.report.warn(f"NMF stopped at nmf.max_iter = {cfg.nmf.max_iter} before reaching tol = "
                          f"{cfg.nmf.tol}; raise nmf.max_iter for a tighter fit")
    state.report.info(f"NMF: relative error {fit.rel_error:.4f} after {fit.n_iter} iterations")
    state.footprints = pre.unflatten(fit.W, (H, W))
    state.traces = np.asarray(fit.H, np.float32)
    state.loss = np.asarray(fit.loss_history)
    state.resting = resting_fluorescence(state.footprints, state.baseline)
    state.attrs.update(nmf_rel_error=float(fit.rel_error), nmf_n_iter=int(fit.n_iter),
                       nmf_converged=bool(fit.converged))
    state.extras["nmf/replicate_errors"] = np.asarray(fit.replicate_errors, np.float64)


def _stage_rois(state: RunState) -> None:
    rois = masks_from_footprints(state.footprints, state.cfg.rois.threshold,
                                smooth=state.cfg.rois.smooth, fill_holes=state.cfg.rois.fill_holes)
    state.masks = rois.masks
    state.extras["rois/centroids"] = rois.centroids
    state.extras["rois/areas"] = rois.areas
    small = np.flatnonzero(rois.areas < state.cfg.rois.min_area)
    if small.size:
        state.report.warn(f"{small.size} ROI(s) smaller than rois.min_area = {state.cfg.rois.min_area} px: "
                          f"cells {small.tolist()[:10]}")


def _stage_traces(state: RunState) -> None:
    state.dff = compute_dff(state.traces, state.resting, state.frame_rate, state.cfg.traces)


def _stage_spikes(state: RunState) -> None:
    from .stages.spikes import SpikeModelWarning, infer_spikes

    if state.cfg.spikes.enabled:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpikeModelWarning)
            spikes, denoised = infer_spikes(state.traces, state.cfg.spikes, state.frame_rate)
        for w in caught:
            state.report.warn(str(w.message))
        state.extras["spikes"] = spikes
        state.extras["denoised"] = denoised


#: The pipeline, in order. Each entry: (name, adapter).
STAGES = (
    ("load", _stage_load),
    ("prepare", _stage_prepare),
    ("motion", _stage_motion),
    ("preprocess", _stage_preprocess),
    ("factorize", _stage_factorize),
    ("rois", _stage_rois),
    ("traces", _stage_traces),
    ("spikes", _stage_spikes),
)


# ------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------

_SHORTHANDS = {"input": "input.path", "output": "output.path", "rank": "nmf.rank", "method": "factorize.method",
               "frame_rate": "input.frame_rate", "cell_diameter": "input.cell_diameter",
               "seed": "nmf.seed", "overwrite": "output.overwrite"}


def default_output_path(cfg: Config) -> Path:
    """``output.path``, or ``./<input name>_caimg/result.h5`` when it is empty."""
    if cfg.output.path:
        return cfg.resolve_path(cfg.output.path)
    path = Path(cfg.input.path)
    while any(ch in path.name for ch in "*?[") and not path.exists() and path.parent != path:
        path = path.parent  # a glob such as session1/*.tif: name the result after its folder
    stem = path.stem or "movie"
    return Path.cwd() / f"{stem}_caimg" / "result.h5"


def _as_config(config, overrides: dict, report: Reporter | None = None) -> Config:
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = Config.from_dict(config)
    elif config is None:
        cfg = Config()
    else:
        cfg = load_config(config)
    dotted, labels = {}, {}
    for key, value in overrides.items():
        given = f"{key}={value!r}"  # as typed in the call, for errors about it
        if key in _SHORTHANDS:
            key = _SHORTHANDS[key]
        elif "__" in key:
            key = key.replace("__", ".", 1)
        elif "." not in key:
            raise ConfigError(f"unknown override {key!r}: use 'section.key' (e.g. 'nmf.rank'), "
                              f"'section__key', or one of {', '.join(_SHORTHANDS)}.") from None
        if isinstance(value, Path):
            value = str(value)
        dotted[key], labels[key] = value, given
    cfg = cfg.replace(dotted, labels=labels) if dotted else cfg
    return check_rank_use(cfg, "nmf.rank" in dotted, report=report, given_as=labels.get("nmf.rank"))


def check_rank_use(cfg: Config, rank_given: bool, *, report: Reporter | None = None,
                   given_as: str | None = None) -> Config:
    """The config to run when a rank was given explicitly (``given_as``: as the user typed it).

    With no factorize.method given, a rank means the whole-field method (the NMF primer's recipe:
    ``run --input m.tif --rank 5``); the log says so. With factorize.method = 'local' given
    explicitly, the rank would be ignored: ConfigError."""
    if not rank_given or cfg.factorize.method == "whole":
        return cfg
    given_as = given_as or f"nmf.rank = {cfg.nmf.rank}"
    if "factorize.method" in cfg.explicit:
        raise ConfigError(f"a rank ({given_as}) was given, but factorize.method = "
                          f"'{cfg.factorize.method}' finds the number of cells from the data and does not use "
                          "it. To factorize the whole field with a fixed rank, set factorize.method = "
                          "'whole' (--set factorize.method=whole), or leave the rank out.") from None
    if report is not None:
        report.info(f"{given_as} without factorize.method: factorizing the whole field with that rank "
                    "(factorize.method = 'whole', the NMF primer's recipe); the default local method finds "
                    "the number of cells itself")
    return cfg.replace({"factorize.method": "whole"})


def run(config=None, *, movie=None, overrides: dict | None = None, quiet: bool = False,
        reporter: Reporter | None = None, save: bool = True, figures: bool | None = None,
        **shorthand) -> Result:
    """Run the whole pipeline on one movie and return (and save) the result.

    Parameters
    ----------
    config : Config, path to a TOML file, dict, or None (defaults)
    movie : ndarray (T, H, W) or Movie, optional
        Analyse this movie instead of ``input.path`` (the result's provenance then says so).
    overrides : dict, optional
        ``{"section.key": value}`` applied on top of the config.
    quiet : bool
        No progress output.
    save : bool
        Write the result HDF5 (and figures) to ``output.path``.
    figures : bool, optional
        Override ``figures.enabled``.
    **shorthand
        ``input=``, ``output=``, ``rank=``, ``frame_rate=``, ``cell_diameter=``, ``seed=``,
        ``overwrite=``, or ``section__key=value``.

    Returns
    -------
    Result
        ``.footprints`` (K, H, W), ``.traces`` (K, T), ``.dff``, ``.masks``, ``.path``.

    Examples
    --------
    >>> import caimg_nmf
    >>> from caimg_nmf.synthetic import scenario
    >>> truth = scenario("five_cells")
    >>> result = caimg_nmf.run(movie=truth.movie, cell_diameter=8, save=False, quiet=True)
    >>> result.footprints.shape
    (5, 64, 64)
    """
    report = reporter or Reporter(quiet=quiet)
    cfg = _as_config(config, {**(overrides or {}), **shorthand}, report)
    if save and (cfg.figures.enabled if figures is None else figures):
        from .figures._common import resolve_style

        resolve_style(cfg.figures.style)  # a bad style is refused now, not after the analysis
    started = time.perf_counter()
    out_path = default_output_path(cfg) if save else None
    draw = save and (cfg.figures.enabled if figures is None else figures)
    if out_path is not None:
        out_path = _check_output(out_path, cfg, draw)
    opened = None
    if movie is not None and not isinstance(movie, Movie):
        movie = load_movie(np.asarray(movie), axes=cfg.input.axes, check_axes=cfg.input.check_axes)
    elif movie is None and out_path is not None:
        # open the input before the output folder is made: a bad input leaves nothing behind
        opened = movie = _open_input(cfg)
    lock = created = None
    try:
        if out_path is not None:
            created = _make_output_folder(out_path, cfg, movie)
            # One writer per result: a second run to the same output is refused while this one runs.
            lock = OutputLock(out_path.with_name(out_path.name + ".lock"), what="result", warn=report.warn).acquire()
            removed = remove_dead_leftovers(out_path)
            if removed:
                report.warn(f"removed what an earlier run that did not finish left in {out_path.parent}: "
                            f"{', '.join(removed)}")
        return _run_locked(cfg, report, movie, out_path, draw, started)
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
        _remove_if_unused(created, out_path)
        raise
    finally:
        if lock is not None:
            lock.release()
        if opened is not None:
            opened.close()


def _open_input(cfg: Config) -> Movie:
    path = cfg.resolve_path(cfg.input.path) if cfg.input.path else ""
    return load_movie(path, dataset=cfg.input.dataset, axes=cfg.input.axes, check_axes=cfg.input.check_axes)


def _input_files(cfg: Config, movie: Movie | None) -> list:
    """(what, path) of every file the run reads: the movie's files and the config file."""
    if movie is not None:
        files = [("input movie", p) for p in movie.paths]
    else:  # before the movie is opened: its path when that is one file (not a folder or a glob)
        files = [("input movie", cfg.resolve_path(cfg.input.path))] if cfg.input.path else []
    if cfg.source and not cfg.source.startswith("<"):
        files.append(("config file", cfg.source))
    return files


def _check_output(out_path: Path, cfg: Config, draw: bool) -> Path:
    """Refuse at once (before any work) an output that cannot or must not be written: see
    :func:`caimg_nmf.io.atomic.check_output_path`; and, without output.overwrite, figures of
    another run in the figures/ folder beside it."""
    out_path = check_output_path(out_path, overwrite=cfg.output.overwrite, what="result",
                                 inputs=_input_files(cfg, None), reserve=len(".lock"))
    figures = out_path.parent / "figures"
    if not draw:
        return out_path
    from .figures import check_figures_folder, existing_figures

    check_figures_folder(figures)
    if cfg.output.overwrite:
        return out_path

    there = existing_figures(figures)
    if there:
        raise OutputError(f"{there[0]} already exists (figures of another run beside {out_path.name}). Pass "
                          "--overwrite (output.overwrite = true) to replace them, --no-figures, or choose another "
                          "output folder.") from None
    return out_path


def _make_output_folder(out_path: Path, cfg: Config, movie: Movie | None):
    """Check the output against the inputs, create its folder; return the topmost folder created
    (None if it existed), for :func:`_remove_if_unused`."""
    inputs = _input_files(cfg, movie)
    check_output_path(out_path, overwrite=cfg.output.overwrite, what="result", inputs=inputs, reserve=len(".lock"))
    refuse_inputs(out_path.with_name(out_path.name + ".lock"), inputs, what="lock file")
    missing = [p for p in (out_path.parent, *out_path.parent.parents) if not os.path.lexists(p)]
    check_writable_dir(out_path.parent)
    return missing[-1] if missing else None


def _remove_if_unused(created: Path | None, out_path: Path | None) -> None:
    """After a failed run: remove the folders it created, if nothing was written into them."""
    if created is None:
        return
    folder = out_path.parent
    while True:
        try:
            folder.rmdir()  # only an empty folder
        except OSError:
            return
        if folder == created:
            return
        folder = folder.parent


def _run_locked(cfg, report, movie, out_path, draw, started) -> Result:
    from .io.atomic import scratch_prefix

    prefix = scratch_prefix(out_path.name) if out_path else ".caimg_nmf-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=out_path.parent if out_path else None) as scratch:
        state = RunState(cfg=cfg, report=report, movie=movie, scratch=Path(scratch))
        timings = {}
        try:
            for name, stage in STAGES:
                t0 = time.perf_counter()
                stage(state)
                timings[name] = round(time.perf_counter() - t0, 3)
            result = _assemble(state, timings, time.perf_counter() - started)
            # the prepared movie (T x H x W float32) is not needed past here: the save and the figures
            # (which read the few frames they show again from the input) run without it
            state.frames = None
            if out_path is not None:
                inputs = _input_files(cfg, state.movie)
                result.save(out_path, overwrite=cfg.output.overwrite, inputs=inputs)
                report.info(f"wrote {out_path}")
                if draw:
                    try:
                        _write_figures(result, out_path.parent / "figures", cfg, report,
                                       movie=_analysed_movie(state), inputs=[p for _, p in inputs])
                    except OutputError as exc:
                        raise OutputError(f"the result {out_path} was written, but not all of its figures: "
                                          f"{exc} Run `caimg-nmf figures {out_path} --overwrite` once that is "
                                          "fixed.") from None
        except MemoryBudgetError:
            raise  # already says what to do
        except MemoryError:
            raise MemoryBudgetError(f"ran out of memory in stage {name!r}. Crop or bin the movie "
                                    "(preprocess.crop, spatial_bin, temporal_bin) or analyse fewer frames.") from None
        finally:
            if state.movie is not None and movie is None:
                state.movie.close()
    report.info(f"{result.n_cells} cells, {result.n_frames} frames, {time.perf_counter() - started:.1f} s")
    return result


def _assemble(state: RunState, timings: dict, elapsed: float) -> Result:
    cfg = state.cfg
    attrs = {**provenance_attrs(), **state.attrs, "config": cfg.to_toml(),
             "frame_rate": float(state.frame_rate), "elapsed_s": round(elapsed, 3),
             "stage_timings": timings, "warnings": list(state.report.warnings)}
    if state.pixel_size_um is not None:
        attrs["pixel_size_um"] = state.pixel_size_um * cfg.preprocess.spatial_bin
    return Result(footprints=state.footprints, traces=state.traces, dff=state.dff,
                  roi_masks=state.masks, mean_image=state.mean_image, loss=state.loss,
                  extras=state.extras, attrs=attrs)


def _analysed_movie(state: RunState) -> Movie:
    """A lazy view of the movie as analysed (frame subset, crop, binning; registered when motion
    correction ran), read again from the input for figures, without keeping it all in memory.
    Without ``input_offset`` (a movie with negative values): figures add it, as to a user's movie."""
    cfg, movie = state.cfg, state.movie
    shape = pre.output_shape(movie.shape, cfg.input, cfg.preprocess)
    tb = cfg.preprocess.temporal_bin

    def reader(a, b):
        window = dataclasses.replace(cfg.input, first_frame=cfg.input.first_frame + a * tb, n_frames=(b - a) * tb)
        frames = pre.prepare_frames(movie, window, cfg.preprocess, min_frames=1)
        if state.motion is not None:
            from .stages.motion import apply_motion

            frames = apply_motion(frames, state.motion, a, cfg.motion)
        return frames

    return Movie(reader, shape, np.float32, f"{movie.source} (as analysed)", movie.paths)


def _write_figures(result, folder, cfg, report, movie=None, inputs=()):
    from .figures import make_figures

    # figures of another run there were refused at the start unless output.overwrite is set
    written = make_figures(result, folder, movie=movie, formats=cfg.figures.formats,
                           style=cfg.figure_style(), dpi=cfg.figures.dpi, overwrite=True, inputs=inputs,
                           report=report)
    report.info(f"figures: {sum(len(v) for v in written.values())} files in {folder}")
