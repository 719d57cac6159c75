"""The pipeline: an ordered list of named stages, run on a movie with one configuration.

Each stage adapter below takes the run's state and the config and calls a pure stage function
from :mod:`caimg_nmf.stages`. The runner owns what stages must not do: reading and writing
files, progress, timings, memory checks and provenance.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config, load_config
from .errors import ConfigError, InputError, MemoryBudgetError
from .io.movie import Movie, load_movie
from .io.provenance import input_identity, provenance_attrs
from .io.result import Result
from .memory import available_memory, estimate_run_memory, format_bytes
from .progress import Reporter
from .stages import preprocess as pre
from .stages.rois import masks_from_footprints
from .stages.traces import compute_dff, resting_fluorescence

__all__ = ["run", "STAGES", "RunState", "default_output_path"]


@dataclass
class RunState:
    """What the stages hand on to each other during one run."""

    cfg: Config
    report: Reporter
    movie: Movie | None = None
    frames: np.ndarray | None = None        # (T, H, W) float32, nonnegative after preprocess
    frame_rate: float = 0.0
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
    state.attrs.update(input_identity(movie))


def _stage_preprocess(state: RunState) -> None:
    cfg = state.cfg
    shape = pre.output_shape(state.movie.shape, cfg.input, cfg.preprocess)
    need = estimate_run_memory(shape, _planned_rank(cfg))
    free = available_memory()
    out = None
    if need > 0.8 * free:
        # Too big for memory: keep the prepared frames in a disk-backed array; NMF streams them.
        state.report.warn(f"the run needs about {format_bytes(need)} but {format_bytes(free)} is free: "
                          f"frames go to a temporary file in {state.scratch} and NMF streams them "
                          f"within nmf.memory_budget_gb = {cfg.nmf.memory_budget_gb}")
        out = np.lib.format.open_memmap(state.scratch / "frames.npy", mode="w+", dtype=np.float32, shape=shape)
    else:
        state.report.info(f"estimated peak memory {format_bytes(need)} ({format_bytes(free)} free)")
    with state.report.task("preprocess", total=shape[0]) as advance:
        frames = pre.prepare_frames(state.movie, cfg.input, cfg.preprocess, out=out,
                                    progress=lambda n: advance(n))
    state.mean_image = _mean_frame(frames)
    frames, baseline = pre.remove_baseline(frames, cfg.preprocess, source=state.movie.source)
    state.frames, state.baseline = frames, baseline
    state.frame_rate = cfg.input.frame_rate / cfg.preprocess.temporal_bin
    state.extras["baseline"] = baseline


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
    import dataclasses

    from .stages.factorize import factorize_whole

    cfg = state.cfg
    T, H, W = state.frames.shape
    K = cfg.nmf.rank
    nmf_cfg = cfg.nmf
    if K == "auto":
        K = _select_rank(state)
        nmf_cfg = dataclasses.replace(cfg.nmf, rank=K)
    if K > min(H * W, T):
        raise ConfigError(f"nmf.rank = {K} is larger than min(pixels, frames) = min({H * W}, {T}) of this "
                          "movie; choose a smaller rank (--rank).") from None
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
    rois = masks_from_footprints(state.footprints, state.cfg.rois.threshold)
    state.masks = rois.masks
    state.extras["rois/centroids"] = rois.centroids
    state.extras["rois/areas"] = rois.areas
    small = np.flatnonzero(rois.areas < state.cfg.rois.min_area)
    if small.size:
        state.report.warn(f"{small.size} ROI(s) smaller than rois.min_area = {state.cfg.rois.min_area} px: "
                          f"cells {small.tolist()[:10]}")


def _stage_traces(state: RunState) -> None:
    state.dff = compute_dff(state.traces, state.resting, state.frame_rate, state.cfg.traces)


#: The pipeline, in order. Each entry: (name, adapter).
STAGES = (
    ("load", _stage_load),
    ("preprocess", _stage_preprocess),
    ("factorize", _stage_factorize),
    ("rois", _stage_rois),
    ("traces", _stage_traces),
)


# ------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------

_SHORTHANDS = {"input": "input.path", "output": "output.path", "rank": "nmf.rank",
               "frame_rate": "input.frame_rate", "cell_diameter": "input.cell_diameter",
               "seed": "nmf.seed", "overwrite": "output.overwrite"}


def default_output_path(cfg: Config) -> Path:
    """``output.path``, or ``./<input name>_caimg/result.h5`` when it is empty."""
    if cfg.output.path:
        return cfg.resolve_path(cfg.output.path)
    stem = Path(cfg.input.path.rstrip("/*")).stem or "movie"
    return Path.cwd() / f"{stem}_caimg" / "result.h5"


def _as_config(config, overrides: dict) -> Config:
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = Config.from_dict(config)
    elif config is None:
        cfg = Config()
    else:
        cfg = load_config(config)
    dotted = {}
    for key, value in overrides.items():
        if key in _SHORTHANDS:
            key = _SHORTHANDS[key]
        elif "__" in key:
            key = key.replace("__", ".", 1)
        elif "." not in key:
            raise ConfigError(f"unknown override {key!r}: use 'section.key' (e.g. 'nmf.rank'), "
                              f"'section__key', or one of {', '.join(_SHORTHANDS)}.") from None
        if isinstance(value, Path):
            value = str(value)
        dotted[key] = value
    return cfg.replace(dotted) if dotted else cfg


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
    >>> result = caimg_nmf.run(movie=truth.movie, rank=5, save=False, quiet=True)
    >>> result.footprints.shape
    (5, 64, 64)
    """
    cfg = _as_config(config, {**(overrides or {}), **shorthand})
    report = reporter or Reporter(quiet=quiet)
    started = time.perf_counter()
    out_path = default_output_path(cfg) if save else None
    if out_path is not None and out_path.exists() and not cfg.output.overwrite:
        raise InputError(f"{out_path} already exists. Pass --overwrite (output.overwrite = true) to "
                         "replace it, or choose another --output.") from None
    if movie is not None and not isinstance(movie, Movie):
        movie = load_movie(np.asarray(movie), axes=cfg.input.axes, check_axes=cfg.input.check_axes)
    if out_path is not None:
        from .io.atomic import check_writable_dir

        check_writable_dir(out_path.parent)
    with tempfile.TemporaryDirectory(prefix=".caimg_nmf-", dir=out_path.parent if out_path else None) as scratch:
        state = RunState(cfg=cfg, report=report, movie=movie, scratch=Path(scratch))
        timings = {}
        try:
            for name, stage in STAGES:
                t0 = time.perf_counter()
                stage(state)
                timings[name] = round(time.perf_counter() - t0, 3)
        except MemoryError:
            raise MemoryBudgetError(f"ran out of memory in stage {name!r}. Crop or bin the movie "
                                    "(preprocess.crop, spatial_bin, temporal_bin) or analyse fewer frames.") from None
        finally:
            if state.movie is not None and movie is None:
                state.movie.close()
        result = _assemble(state, timings, time.perf_counter() - started)
    if out_path is not None:
        result.save(out_path, overwrite=cfg.output.overwrite)
        report.info(f"wrote {out_path}")
        if cfg.figures.enabled if figures is None else figures:
            _write_figures(result, out_path.parent / "figures", cfg, report, movie=movie)
    report.info(f"{result.n_cells} cells, {result.n_frames} frames, {time.perf_counter() - started:.1f} s")
    return result


def _assemble(state: RunState, timings: dict, elapsed: float) -> Result:
    cfg = state.cfg
    attrs = {**provenance_attrs(), **state.attrs, "config": cfg.to_toml(),
             "frame_rate": float(state.frame_rate), "elapsed_s": round(elapsed, 3),
             "stage_timings": timings, "warnings": list(state.report.warnings)}
    if cfg.input.pixel_size_um is not None:
        attrs["pixel_size_um"] = cfg.input.pixel_size_um * cfg.preprocess.spatial_bin
    return Result(footprints=state.footprints, traces=state.traces, dff=state.dff,
                  roi_masks=state.masks, mean_image=state.mean_image, loss=state.loss,
                  extras=state.extras, attrs=attrs)


def _write_figures(result, folder, cfg, report, movie=None):
    from .figures import make_figures

    written = make_figures(result, folder, movie=movie, formats=cfg.figures.formats,
                           style=cfg.figures.style, dpi=cfg.figures.dpi)
    report.info(f"figures: {sum(len(v) for v in written.values())} files in {folder}")
