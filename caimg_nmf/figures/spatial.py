"""Spatial figures: footprint montage, ROI contours over the mean/correlation image, rejected components."""
from __future__ import annotations

import itertools
import re
import textwrap

import numpy as np

from ..errors import InputError
from ..io.result import cell_names, cell_number
from ._common import (NO_CELLS, SkipFigure, add_image_scalebar, cell_colors, centroids, crop, crop_size,
                      empty_axes, font_scale, mask_outline, new_figure, note, pixel_size, robust_limits,
                      single_width, styled)

__all__ = ["footprint_montage", "montage_pages", "contours", "rejected"]

FOOTPRINT_CMAP = "viridis"


def montage_pages(n: int, per_page: int = 100) -> int:
    """How many pages :func:`footprint_montage` needs for ``n`` cells (at least 1)."""
    return max(1, -(-int(n) // max(1, int(per_page))))


def _grid(n):
    ncols = n if n <= 5 else (8 if n <= 48 else 10)
    return ncols, max(1, -(-n // ncols))


def footprint_montage(result, *, page: int = 0, per_page: int = 100, style=None):
    """Each cell's footprint (a square crop around its centroid, all crops the same size) with its
    id, framed in the cell's colour (the same colours as :func:`contours` and the trace plots).

    More than ``per_page`` cells go on several pages: ``page`` picks one
    (:func:`montage_pages` says how many there are)."""
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
        size = crop_size(result.roi_masks, result.footprints, result.frame_shape)
        centers = centroids(result)
        colors = cell_colors(K, style=False)
        names = cell_names(K)
        ncols, nrows = _grid(len(ids))
        width = single_width() * (1 if ncols <= 4 else 2)
        panel = width / ncols
        fig = new_figure(width, nrows * panel * 1.02 + 0.25 * font_scale())
        fig.set_layout_engine("constrained", h_pad=0.01, w_pad=0.01, hspace=0.01, wspace=0.01)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        fs = (6.0 if ncols <= 8 else 5.0) * font_scale()
        import matplotlib.patheffects as pe

        outline = [pe.withStroke(linewidth=1.5, foreground="black")]
        for i, ax in enumerate(axes.flat):
            empty_axes(ax)
            if i >= len(ids):
                ax.set_visible(False)
                continue
            k = int(ids[i])
            ax.imshow(crop(result.footprints[k], centers[k], size), cmap=FOOTPRINT_CMAP, vmin=0, vmax=1)
            for s in ax.spines.values():
                s.set_visible(True)
                s.set_color(colors[k])
                s.set_linewidth(1.2)
            ax.text(0.06, 0.94, cell_number(k, K), transform=ax.transAxes, ha="left", va="top", color="white",
                    fontsize=fs, path_effects=outline, gid=f"cell_id_{k}")
            ax.set_label(names[k])
        span = f"cells {cell_number(ids[0], K)}–{cell_number(ids[-1], K)} of {K}" if n_pages > 1 else f"{K} cell{'s' * (K != 1)}"
        page_txt = f", page {page + 1}/{n_pages}" if n_pages > 1 else ""
        fig.suptitle(f"Footprints ({span}{page_txt}; {size}×{size} px crops)")
        return fig


def _background_image(result, background):
    if background == "mean":
        return np.asarray(result.mean_image), "Mean image"
    if background == "correlation":
        img = result.get("correlation_image")
        if img is None:
            raise SkipFigure("this result has no correlation image (extras 'correlation_image')")
        return np.asarray(img), "Correlation image"
    raise InputError(f"unknown contour background {background!r}; use 'mean', 'correlation' or 'both'.")


def contours(result, background: str = "mean", *, ids=None, style=None):
    """ROI contours (one line per cell, one colour per cell, ids at the centroids) over the mean
    image, the correlation image (``background="correlation"``) or both side by side
    (``background="both"``), with a scale bar (µm when ``pixel_size_um`` is known, else pixels).

    Each cell's outline is one ``Line2D`` labelled with the cell's name (``"cell_007"``, :func:`~caimg_nmf.io.result.cell_names`) (gid ``"contour_<k>"``), dashed
    for cells found in the mean image rather than from their activity (``/cells/origin``).
    ``ids`` (default: when K ≤ 150) writes the cell ids next to the contours."""
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
        outlines = [mask_outline(result.roi_masks[k]) for k in range(K)]
        origin = result.get("cells/origin")
        from_mean = np.zeros(K, bool) if origin is None or len(origin) != K else \
            np.array([str(o) == "mean image" for o in origin])
        centers = centroids(result)
        um = pixel_size(result)
        import matplotlib.patheffects as pe

        outline_fx = [pe.withStroke(linewidth=1.2, foreground="black")]
        fs = (5.5 if K <= 40 else 4.5 if K <= 100 else 3.5) * font_scale()
        lw = 0.8 if K <= 60 else 0.5
        for ax, (img, title) in zip(axes, images):
            vmin, vmax = robust_limits(img)
            ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
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
            seen = f", {from_mean.sum()} from the mean image: dashed" if from_mean.any() else ""
            ax.set_title(f"{title} ({K} cell{'s' * (K != 1)}{seen})" if K else title)
            if K == 0:
                note(ax, NO_CELLS, color="white", fontsize=9 * font_scale())
        return fig


def _reason_kind(reason: str) -> str:
    """A rejection reason without its figures: 'low SNR 2.4 < 3.0' -> 'low SNR'."""
    return re.split(r"[:<>(]|\d", reason, maxsplit=1)[0].strip() or reason


def rejected(result, *, max_shown: int = 60, style=None):
    """Components the pipeline rejected: each footprint (crop) with its reason underneath, and a
    count per reason in the title."""
    with styled(style):
        fps = result.get("rejected/footprints")
        if fps is None or len(fps) == 0:
            raise SkipFigure("no rejected components in this result")
        fps = np.asarray(fps, np.float32)
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
        ncols = min(shown, 6 if shown <= 24 else 8)
        nrows = -(-shown // ncols)
        width = single_width() * (1 if ncols <= 3 else 2)
        panel = width / ncols
        fig = new_figure(width, nrows * panel * 1.18 + 0.3 * font_scale())
        axes = fig.subplots(nrows, ncols, squeeze=False)
        peak = np.maximum(fps.reshape(R, -1).max(axis=1), 1e-12)
        normed = fps / peak[:, None, None]
        size = crop_size(None, normed, normed.shape[1:])
        from ._common import _center_of

        fs = 5.0 * font_scale()
        wrap = max(8, int(panel * 72 / (fs * 0.55)))
        for j, ax in enumerate(axes.flat):
            empty_axes(ax)
            if j >= shown:
                ax.set_visible(False)
                continue
            i = order[j]
            center = _center_of(normed[i] >= 0.2, normed[i])
            ax.imshow(crop(normed[i], center, size), cmap=FOOTPRINT_CMAP, vmin=0, vmax=1)
            ax.set_title(f"#{i}", fontsize=fs, pad=1)
            ax.set_xlabel("\n".join(textwrap.wrap(reasons[i], wrap)[:3]), fontsize=fs, labelpad=1,
                          color="#D55E00")
        counts = {k: len(v) for k, v in groups.items()}
        summary = "; ".join(f"{c} {k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:4])
        more = f" ({shown} shown, each kind in turn)" if shown < R else ""
        fig.suptitle(f"Rejected components: {R}{more}\n{summary}", fontsize=7 * font_scale())
        return fig
