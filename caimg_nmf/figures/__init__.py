"""Paper figures from a saved result (never recomputing the factorization).

:func:`make_figures` writes every figure that applies as vector PDF and 300 dpi PNG; each
figure function returns a :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot state):

- :func:`footprint_montage` — each footprint (crop) with its id, paged past 100 cells
- :func:`contours` — ROI contours over the mean / correlation image, ids, scale bar
- :func:`traces_stacked` — ΔF/F stacked, same colours and order as the contours, scale bar
- :func:`traces_heatmap` — cells × time image
- :func:`reconstruction` — original vs model vs residual for a few frames (needs the movie)
- :func:`motion_shifts`, :func:`rank_selection`, :func:`rejected`, :func:`nmf_loss`

Styles: ``style="paper"`` (default; 7 pt text, 3.5 / 7 in columns), ``"screen"``, any matplotlib
style name, a path to your own ``.mplstyle`` file, or a list of these applied in order.
Cells are coloured with the style's colour cycle (Okabe–Ito, colour-blind safe, by default).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path


from ..errors import InputError, OutputError
from ..io.atomic import atomic_path, check_writable_dir
from ._common import (OKABE_ITO, SkipFigure, builtin_styles, cell_colors, crop_size, free_figure, log,
                      resolve_style, styled)
from .diagnostics import default_frames, nmf_loss, rank_selection, reconstruct_frames, reconstruction
from .spatial import cell_outlines, contours, footprint_montage, montage_pages, rejected
from .temporal import motion_shifts, traces_heatmap, traces_stacked

__all__ = ["make_figures", "check_figures_folder", "save_figure", "footprint_montage", "contours", "traces_stacked", "traces_heatmap",
           "reconstruction", "motion_shifts", "rank_selection", "rejected", "nmf_loss", "builtin_styles",
           "cell_colors", "montage_pages", "default_frames", "reconstruct_frames", "OKABE_ITO", "FORMATS"]

FORMATS = ("png", "pdf", "svg")
#: file names :func:`make_figures` writes (a re-run replaces them; nothing else in the folder is touched)
FIGURE_NAME = re.compile(r"^(footprints(_p\d{2,})?|contours_mean|contours_correlation|traces_dff|traces_heatmap|"
                         r"spikes_heatmap|reconstruction|motion_shifts|rank_selection|rejected|nmf_loss)"
                         r"\.(png|pdf|svg)$")
#: the list of files the last :func:`make_figures` wrote into a folder, kept in that folder
MANIFEST = ".caimg_nmf_figures.json"


def save_figure(fig, path_stem, formats=("png", "pdf"), dpi: int = 300, *, overwrite: bool = True,
                inputs=()) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.<fmt>`` for each format, each atomically (temporary file in
    the same folder, then ``os.replace``). An existing file is replaced only with ``overwrite``,
    never when it is one of ``inputs``. Returns the paths written."""
    formats = _check_formats(formats)
    stem = Path(path_stem)
    written = []
    for fmt in formats:
        target = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(target, overwrite=overwrite, inputs=inputs) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
        written.append(target)
    return written


def _check_formats(formats):
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(str(f).lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"unknown figure format(s) {', '.join(bad) or '(none)'}; use any of: {', '.join(FORMATS)}.")
    return formats


def _check_movie_shape(result, movie, label: str) -> None:
    """A movie given for the reconstruction must be the movie as analysed: the result's shape."""
    import numpy as np

    shape = tuple(int(n) for n in getattr(movie, "shape", np.shape(movie)))
    expected = (result.n_frames, *result.frame_shape)
    if shape != expected:
        raise InputError(f"{label}: shape {shape} does not match the result's {expected} (frames, height, "
                         "width); give the movie as analysed (after crop, binning and motion correction), or "
                         "leave it out.") from None


def _open_input_movie(result):
    """The movie named by ``attrs["input_path"]`` when it (all of it) exists, else None."""
    raw = result.attrs.get("input_path")
    if not raw:
        return None
    paths = raw
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            paths = json.loads(raw)
        except ValueError:
            paths = raw
    if isinstance(paths, (list, tuple)):
        if not paths or not all(Path(p).exists() for p in paths):
            return None
        source = [str(p) for p in paths] if len(paths) > 1 else str(paths[0])
    else:
        if not Path(str(paths)).exists():
            return None
        source = str(paths)
    from ..io import load_movie

    kwargs = {}
    dataset = result.attrs.get("input_dataset")
    if dataset:
        kwargs["dataset"] = str(dataset)
    return load_movie(source, **kwargs)


def existing_figures(out_dir) -> list[Path]:
    """The figure files (names :func:`make_figures` writes) already in ``out_dir``."""
    try:
        return sorted(Path(out_dir) / e.name for e in os.scandir(out_dir) if FIGURE_NAME.match(e.name))
    except OSError:
        return []


def _retire_old_figures(out_dir: Path, written: dict) -> None:
    """Remove the figures an earlier make_figures wrote into ``out_dir`` that this one did not
    write again (e.g. ``footprints_p03.png`` of a result with more cells), then record what this
    one wrote. Only files listed in the folder's manifest go (without a manifest, from an older
    version: files with the names make_figures writes); a user's other files are never touched."""
    from ..io.atomic import write_bytes_atomic

    new = sorted(p.name for paths in written.values() for p in paths)
    try:
        old = json.loads((out_dir / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        old = [p.name for p in existing_figures(out_dir)]
    for name in set(map(str, old if isinstance(old, list) else [])) - set(new):
        path = out_dir / name
        if FIGURE_NAME.match(name) and path.is_file() and not path.is_symlink():
            path.unlink()
            log.info("figure %s of an earlier run removed", name)
    write_bytes_atomic(out_dir / MANIFEST, (json.dumps({"files": new}, indent=1) + "\n").encode())


def check_figures_folder(folder) -> None:
    """Refuse a figures folder that is a symbolic link (figures are never written through one, into
    a folder the user did not name) or a file."""
    folder = Path(folder)
    if os.path.islink(folder):
        raise OutputError(f"the figures folder {folder} is a symbolic link (to {os.readlink(folder)}); caimg_nmf "
                          "does not write through links. Remove the link, give the folder it points to, or pass "
                          "--no-figures.") from None
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder for the figures; move it, pass --no-figures, or "
                          "choose another output folder.") from None


def make_figures(result, out_dir, *, movie=None, formats=("png", "pdf"), style="paper", dpi: int = 300,
                 frames=None, max_cells: int = 30, per_page: int = 100, overwrite: bool = True,
                 inputs=(), movie_label: str = "movie", report=None) -> dict[str, list[Path]]:
    """Write every figure that applies to ``result`` (a Result or a path to a result file) into
    ``out_dir``; returns ``{figure name: [paths written]}``.

    Figures already in ``out_dir`` are replaced only with ``overwrite`` (then the figures an earlier
    call wrote there and this one does not, such as extra montage pages, are removed; see
    :data:`MANIFEST`); no figure is ever written over one of ``inputs`` (paths).

    Figures without data (no motion shifts, no rank selection, no rejected components, no
    movie…) are skipped with a log message. The reconstruction uses ``movie`` when given, else the
    movie at ``attrs["input_path"]`` when that file exists; only the frames it shows are read. A
    ``movie`` given (named ``movie_label`` in errors) must have the result's shape. ``dpi`` has the
    bounds of figures.dpi. ``report``: a :class:`caimg_nmf.progress.Reporter` that shows the figures
    drawn (a bar on a terminal, log lines otherwise, nothing when quiet). Each figure is freed once
    saved: memory does not grow with the number of figures or montage pages."""
    from ..config import check_key
    from ..io import Result
    from ..progress import Reporter

    check_key("figures.dpi", dpi, label=f"dpi={dpi!r}")
    if not isinstance(result, Result):
        result = Result.load(result)
    result.frame_rate  # noqa: B018 - a bad frame_rate attribute is refused before any figure is written
    if movie is not None:
        _check_movie_shape(result, movie, movie_label)
    formats = _check_formats(formats)
    out_dir = Path(out_dir)
    resolve_style(style)  # fail early on a bad style, before the folder is made
    check_figures_folder(out_dir)
    check_writable_dir(out_dir, "figures")
    there = existing_figures(out_dir)
    if there and not overwrite:
        raise OutputError(f"{there[0]} already exists ({len(there)} figure file(s) in {out_dir}). Pass --overwrite "
                          "to replace the figures there, or choose another folder.") from None
    written: dict[str, list[Path]] = {}
    report = report or Reporter(quiet=True)

    def emit(name, build):
        try:
            fig = build()
        except SkipFigure as why:
            log.info("figure %s skipped: %s", name, why)
            return
        try:
            written[name] = save_figure(fig, out_dir / name, formats, dpi, overwrite=overwrite, inputs=inputs)
        finally:
            free_figure(fig)
        log.info("figure %s written: %s", name, ", ".join(p.name for p in written[name]))

    opened = None
    with styled(style):
        plan = _figure_plan(result, max_cells=max_cells, per_page=per_page)
        if movie is None:
            try:
                movie = opened = _open_input_movie(result)
            except InputError as exc:
                log.info("figure reconstruction skipped: cannot open the input movie (%s)", exc)
        try:
            with report.task("figures", total=len(plan) + 1, unit="figures") as advance:
                for name, build in plan:
                    emit(name, build)
                    advance(1)
                if movie is None:
                    log.info("figure reconstruction skipped: no movie given and attrs['input_path'] is missing or "
                             "absent")
                else:
                    try:
                        emit("reconstruction", lambda: reconstruction(result, movie, frames, style=False))
                    except InputError as exc:
                        log.warning("figure reconstruction skipped: %s", exc)
                advance(1)
        finally:
            if opened is not None and hasattr(opened, "close"):
                opened.close()
    _retire_old_figures(out_dir, written)
    return written


def _figure_plan(result, *, max_cells: int, per_page: int) -> list:
    """(name, build) of each figure :func:`make_figures` draws from the result alone, in order."""
    plan = []
    pages = montage_pages(result.n_cells, per_page)
    # one crop size for every page, measured once over all cells
    size = crop_size(result.roi_masks, result.footprints, result.frame_shape) if result.n_cells else None
    for p in range(pages):
        plan.append(("footprints" if pages == 1 else f"footprints_p{p + 1:02d}",
                     lambda p=p: footprint_montage(result, page=p, per_page=per_page, size=size, style=False)))
    outlines = []   # the cells' outlines, computed once for both contour figures

    def contours_over(background):
        if not outlines:
            outlines.extend(cell_outlines(result))
        return contours(result, background, outlines=outlines, style=False)

    plan.append(("contours_mean", lambda: contours_over("mean")))
    if result.get("correlation_image") is not None:
        plan.append(("contours_correlation", lambda: contours_over("correlation")))
    plan.append(("traces_dff", lambda: traces_stacked(result, "dff", max_cells=max_cells, style=False)))
    plan.append(("traces_heatmap", lambda: traces_heatmap(result, style=False)))
    if result.get("spikes") is not None:
        plan.append(("spikes_heatmap", lambda: traces_heatmap(result, "spikes", style=False)))
    plan += [("motion_shifts", lambda: motion_shifts(result, style=False)),
             ("rank_selection", lambda: rank_selection(result, style=False)),
             ("rejected", lambda: rejected(result, style=False)),
             ("nmf_loss", lambda: nmf_loss(result, style=False))]
    return plan
