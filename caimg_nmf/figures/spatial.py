"""Spatial figures: footprint montage, ROI contours over the mean/correlation image, rejected components."""
from __future__ import annotations

import itertools
import re
import textwrap

import numpy as np

from ..errors import InputError
from ..io.result import cell_names, cell_number
from ._common import (NO_CELLS, SkipFigure, add_image_scalebar, cell_colors, centroids, crop, crop_size,
                      empty_axes, font_scale, mask_outline, mosaic_figure, new_figure, note, pixel_size,
                      robust_limits, single_width, styled, text_height, title_room)

__all__ = ["footprint_montage", "montage_pages", "contours", "rejected", "reason_caption", "correlation_limits"]

FOOTPRINT_CMAP = "viridis"


def montage_pages(n: int, per_page: int = 100) -> int:
    """How many pages :func:`footprint_montage` needs for ``n`` cells (at least 1)."""
    return max(1, -(-int(n) // max(1, int(per_page))))


def _grid(n):
    ncols = n if n <= 5 else (8 if n <= 48 else 10)
    return ncols, max(1, -(-n // ncols))


def footprint_montage(result, *, page: int = 0, per_page: int = 100, size: int | None = None, style=None):
    """Each cell's footprint (a square crop around its centroid, all crops the same size) with its
    id, framed in the cell's colour (the same colours as :func:`contours` and the trace plots).

    More than ``per_page`` cells go on several pages: ``page`` picks one
    (:func:`montage_pages` says how many there are). ``size``: the crops' side in pixels (default:
    :func:`~caimg_nmf.figures._common.crop_size` of all cells, the same on every page). The crops
    are tiles of one image (:func:`~caimg_nmf.figures._common.mosaic_figure`); each cell's frame is
    a Rectangle labelled with its name (``"cell_007"``, gid ``"footprint_<k>"``), its id a Text
    (gid ``"cell_id_<k>"``)."""
    from matplotlib.patches import Rectangle

    with styled(style):
        K = result.n_cells
        if K == 0:
            fig = new_figure(single_width(), 1.2)
            ax = fig.add_subplot()
            empty_axes(ax)
            note(ax, f"Footprints: {NO_CELLS}")
            return fig
        n_pages = montage_pages(K, per_page)
        if not 0 <= page < n_pages:
            raise InputError(f"montage page {page} out of range: {K} cells make {n_pages} page(s) of {per_page}.")
        ids = np.arange(page * per_page, min(K, (page + 1) * per_page))
        if size is None:
            size = crop_size(result.roi_masks, result.footprints, result.frame_shape)
        centers = centroids(result)
        colors = cell_colors(K, style=False)
        names = cell_names(K)
        ncols, _ = _grid(len(ids))
        width = single_width() * (1 if ncols <= 4 else 2)
        mosaic = mosaic_figure(len(ids), size, ncols, width, title=title_room())
        for i, k in enumerate(ids):
            mosaic.place(i, crop(result.footprints[k], centers[k], size))
        mosaic.show(FOOTPRINT_CMAP)
        fs = (6.0 if ncols <= 8 else 5.0) * font_scale()
        inset = 0.06 * size
        for i, k in enumerate(ids):
            x, y = mosaic.origins[i]
            mosaic.ax.add_patch(Rectangle((x, y), size, size, fill=False, ec=colors[k], lw=1.2, label=names[k],
                                          gid=f"footprint_{k}", clip_on=False))
            # white on the crop's corner, which is background (0: viridis' darkest); no outline, whose
            # path effect made a page's PDF four times slower to write
            mosaic.ax.text(x + inset, y + inset, cell_number(k, K), ha="left", va="top", color="white",
                           fontsize=fs, gid=f"cell_id_{k}")
        span = f"cells {cell_number(ids[0], K)}–{cell_number(ids[-1], K)} of {K}" if n_pages > 1 else f"{K} cell{'s' * (K != 1)}"
        page_txt = f", page {page + 1}/{n_pages}" if n_pages > 1 else ""
        mosaic.title(f"Footprints ({span}{page_txt}; {size}×{size} px crops)")
        return mosaic.fig


def _background_image(result, background):
    """(image, title, colour-bar label, (vmin, vmax)) of a contour figure's background."""
    if background == "mean":
        img = np.asarray(result.mean_image)
        return img, "Mean image", "Mean F (a.u.)", robust_limits(img)
    if background == "correlation":
        img = result.get("correlation_image")
        if img is None:
            raise SkipFigure("this result has no correlation image (extras 'correlation_image')")
        img = np.asarray(img)
        return img, "Correlation image", "Local correlation", correlation_limits(img)
    raise InputError(f"unknown contour background {background!r}; use 'mean', 'correlation' or 'both'.")


def correlation_limits(img) -> tuple[float, float]:
    """Display range of a correlation image: from its median, the level of the background (neighbouring
    pixels of a smoothed movie correlate everywhere, at about 0.9 on a two-photon recording), and
    never below 0, up to its 99.7th percentile. Cells stand out from a dark background; the dark
    rings the high-pass filter leaves round bright cells (correlation below the background's) merge
    into it instead of outlining every cell in black, as they did from the 1st percentile up."""
    a = np.asarray(img, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0, 1.0
    vmin, vmax = max(0.0, float(np.median(a))), float(np.percentile(a, 99.7))
    return (vmin, vmax) if vmax > vmin else robust_limits(a)


def contours(result, background: str = "mean", *, ids=None, outlines=None, style=None):
    """ROI contours (one line per cell, one colour per cell, ids at the centroids) over the mean
    image, the correlation image (``background="correlation"``) or both side by side
    (``background="both"``), each with a colour bar, and a scale bar (µm when ``pixel_size_um`` is
    known, else pixels). The correlation image is shown from 0 up (see :func:`correlation_limits`).

    Each cell's outline (the smoothed outline of its ROI mask, :func:`~caimg_nmf.figures._common.mask_outline`)
    is one ``Line2D`` labelled with the cell's name (``"cell_007"``, :func:`~caimg_nmf.io.result.cell_names`) (gid ``"contour_<k>"``), dashed
    for cells found in the mean image rather than from their activity (``/cells/origin``).
    ``ids`` (default: when K ≤ 150) writes the cell ids next to the contours. ``outlines``: the
    cells' outlines when already computed (``mask_outline`` of each mask; one figure per background
    draws the same ones)."""
    with styled(style):
        backgrounds = ["mean", "correlation"] if background == "both" else [background]
        if background == "both" and result.get("correlation_image") is None:
            backgrounds = ["mean"]
        images = [_background_image(result, b) for b in backgrounds]
        H, W = result.frame_shape
        K = result.n_cells
        if ids is None:
            ids = K <= 150
        n = len(images)
        width = single_width() * (1 if n == 1 and K <= 60 else 2)
        panel_w = width / n
        fig = new_figure(width, panel_w * H / W + 0.2 * font_scale())
        axes = fig.subplots(1, n, squeeze=False)[0]
        colors = cell_colors(K, style=False)
        names = cell_names(K)
        if outlines is None:
            outlines = cell_outlines(result)
        origin = result.get("cells/origin")
        from_mean = np.zeros(K, bool) if origin is None or len(origin) != K else \
            np.array([str(o) == "mean image" for o in origin])
        centers = centroids(result)
        um = pixel_size(result)
        import matplotlib.patheffects as pe

        outline_fx = [pe.withStroke(linewidth=1.2, foreground="black")]
        fs = (5.5 if K <= 40 else 4.5 if K <= 100 else 3.5) * font_scale()
        lw = 0.8 if K <= 60 else 0.5
        for ax, (img, title, unit, (vmin, vmax)) in zip(axes, images):
            # "none": the PDF holds the image's own pixels, not a copy resampled to 300 dpi
            im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="none")
            empty_axes(ax)
            for k in range(K):
                pts = outlines[k]
                if len(pts) == 0:  # empty mask: draw nothing visible but keep one line per cell
                    pts = np.full((1, 2), np.nan)
                ax.plot(pts[:, 1], pts[:, 0], color=colors[k], lw=lw, label=names[k], gid=f"contour_{k}",
                        ls="--" if from_mean[k] else "-")
                if ids:
                    ax.text(centers[k][1], centers[k][0], cell_number(k, K), color=colors[k], fontsize=fs, ha="center",
                            va="center", path_effects=outline_fx, gid=f"cell_id_{k}", clip_on=True)
            ax.set_xlim(-0.5, W - 0.5)
            ax.set_ylim(H - 0.5, -0.5)
            add_image_scalebar(ax, W, H, um)
            cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01, shrink=0.9)
            cb.set_label(unit)
            seen = f", {from_mean.sum()} from the mean image: dashed" if from_mean.any() else ""
            ax.set_title(f"{title} ({K} cell{'s' * (K != 1)}{seen})" if K else title)
            if K == 0:
                note(ax, NO_CELLS, color="white", fontsize=9 * font_scale())
        return fig


def cell_outlines(result) -> list:
    """The outline of each cell's ROI mask (:func:`~caimg_nmf.figures._common.mask_outline`), as
    :func:`contours` draws them."""
    return [mask_outline(result.roi_masks[k]) for k in range(result.n_cells)]


def _reason_kind(reason: str) -> str:
    """A rejection reason without its figures: 'low SNR 2.4 < 3.0' -> 'low SNR'."""
    return re.split(r"[:<>(]|\d", reason, maxsplit=1)[0].strip() or reason


def reason_caption(reason: str, chars: int, lines: int = 3) -> str:
    """A rejection reason as a caption of at most ``lines`` lines of about ``chars`` characters.

    The reason as saved when it fits; else without its closing explanation in brackets; else its
    kind, the value and the test it failed ("spread over its window: 0.152 > max_rim 0.15"); what
    still does not fit ends in "…", never cut off mid-sentence without a mark."""
    text = reason.strip()
    short = re.sub(r"\s*\([^()]*\)\s*$", "", text)
    parts = re.split(r"\s([<>]=?)\s", short, maxsplit=1)
    numbers = re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", parts[0]) if len(parts) == 3 else []
    candidates = [text, short]
    if numbers:
        kind = parts[0].split(":", 1)[0].strip() if ":" in parts[0] else _reason_kind(parts[0])
        candidates.append(f"{kind}: {numbers[-1]} {parts[1]} {parts[2]}")
    for candidate in candidates:
        wrapped = textwrap.wrap(candidate, chars)
        if len(wrapped) <= lines:
            return "\n".join(wrapped)
    wrapped = textwrap.wrap(candidates[-1], chars)[:lines]
    wrapped[-1] = textwrap.shorten(wrapped[-1] + " …", chars, placeholder=" …") if len(wrapped[-1]) + 2 > chars \
        else wrapped[-1] + " …"
    return "\n".join(wrapped)


def rejected(result, *, max_shown: int = 60, style=None):
    """Components the pipeline rejected: each footprint (crop, scaled to its own peak) with its index
    in ``/rejected/`` above and its reason underneath (:func:`reason_caption`), and a count per
    kind of reason in the title. Only the footprints shown are read (``/rejected/footprints`` may
    hold thousands of full frames)."""
    with styled(style):
        fps = result.get("rejected/footprints")
        if fps is None or len(fps) == 0:
            raise SkipFigure("no rejected components in this result")
        R = len(fps)
        reasons = list(result.get("rejected/reasons") or [])
        reasons = [str(r) for r in reasons] + ["(no reason saved)"] * (R - len(reasons))
        # by kind ("area", "low SNR", "spread over its window", ...: the reason without its figures);
        # when not all fit, every kind gets its turn (the detection's background components come first
        # and may be hundreds)
        kinds = [_reason_kind(r) for r in reasons]
        groups = {}
        for i, k in enumerate(kinds):
            groups.setdefault(k, []).append(i)
        order = [i for row in itertools.zip_longest(*groups.values()) for i in row if i is not None]
        shown = min(R, max_shown)
        order = sorted(order[:shown])
        tiles = np.stack([_peak_normalized(fps[i]) for i in order])   # the shown ones only
        size = crop_size(None, tiles, tiles.shape[1:])
        ncols = min(shown, 6 if shown <= 24 else 8)
        width = single_width() * (1 if ncols <= 3 else 2)
        fs = 5.0 * font_scale()
        from ._common import _center_of

        chars = max(8, int(width / ncols * 72 / (fs * 0.55)))
        captions = [reason_caption(reasons[i], chars) for i in order]
        lines = max(c.count("\n") + 1 for c in captions)
        counts = {k: len(v) for k, v in groups.items()}
        summary = "; ".join(f"{c} {k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
        more = f" ({shown} shown, each kind in turn)" if shown < R else ""
        mosaic = mosaic_figure(shown, size, ncols, width, above=text_height(fs) + 0.02,
                               below=text_height(fs, lines) + 0.03, title=title_room(2))
        for j, i in enumerate(order):
            mosaic.place(j, crop(tiles[j], _center_of(tiles[j] >= 0.2, tiles[j]), size))
        mosaic.show(FOOTPRINT_CMAP)
        gap = 0.01 / mosaic.inch
        for j, i in enumerate(order):
            x, y = mosaic.origins[j]
            mosaic.ax.text(x + size / 2, y - gap, f"#{i}", ha="center", va="bottom", fontsize=fs, gid=f"rejected_{i}")
            mosaic.ax.text(x + size / 2, y + size + 2 * gap, captions[j], ha="center", va="top", fontsize=fs,
                           color="#D55E00", gid=f"reason_{i}")
        mosaic.title(f"Rejected components: {R}{more}\n{summary}", fontsize=7 * font_scale())
        return mosaic.fig


def _peak_normalized(footprint) -> np.ndarray:
    """A footprint (any array-like, e.g. a row of an HDF5 dataset) as float32 scaled to a peak of 1."""
    a = np.asarray(footprint, np.float32)
    peak = float(a.max()) if a.size else 0.0
    return a / peak if peak > 1e-12 else a
