"""Time-series figures: stacked traces, trace heatmap, motion shifts."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..io.result import cell_names, cell_number
from ._common import (NO_CELLS, SkipFigure, cell_colors, decimate, font_scale, line_width, new_figure,
                      nice_length, note, pixel_size, single_width, size_scale, styled)

__all__ = ["traces_stacked", "traces_heatmap", "motion_shifts", "TRACE_KINDS"]

#: kind → (where the data is, unit label used on axes and scale bars)
TRACE_KINDS = {"dff": ("dff", "ΔF/F"), "traces": ("traces", "F (a.u.)"), "raw": ("traces", "F (a.u.)"),
               "spikes": ("spikes", "spikes (a.u.)")}


def _trace_data(result, kind):
    if kind not in TRACE_KINDS:
        raise InputError(f"unknown trace kind {kind!r}; use one of: {', '.join(TRACE_KINDS)}.")
    where, unit = TRACE_KINDS[kind]
    if where == "spikes":
        data = result.get("spikes")
        if data is None:
            raise SkipFigure("this result has no spikes")
    else:
        data = getattr(result, where)
    data = np.asarray(data, np.float64)
    if data.shape != result.traces.shape:
        raise InputError(f"{kind} has shape {data.shape}, expected {result.traces.shape} (cells, frames).")
    return data, unit


def traces_stacked(result, kind: str = "dff", *, max_cells: int = 30, cells=None, style=None):
    """Activity of each cell stacked vertically (cell 0 on top), in the cells' contour colours,
    against time in seconds (``frame_rate``), with an amplitude scale bar at the right.

    ``kind``: ``"dff"`` (ΔF/F), ``"traces"`` (fluorescence) or ``"spikes"``. At most ``max_cells``
    traces are drawn (the first ones, or the ids in ``cells``); a note says how many are left out.
    The x axis spans exactly 0 … T / frame_rate seconds."""
    with styled(style):
        data, unit = _trace_data(result, kind)
        K, T = data.shape
        fr = result.frame_rate
        duration = T / fr
        ids = np.arange(K) if cells is None else np.asarray(cells, int).ravel()
        if len(ids) and (ids.min() < 0 or ids.max() >= K):
            raise InputError(f"cell ids out of range for {K} cells: {ids.tolist()[:10]}")
        shown = ids[:max_cells]
        n = len(shown)
        height = min(9.0, max(1.8, 0.55 + 0.17 * n)) * size_scale()
        fig = new_figure(single_width() * 2, height)
        ax = fig.add_subplot()
        ax.set_xlim(0, duration)
        ax.set_xlabel("Time (s)")
        ax.set_ylabel(f"{unit} (cells stacked)" if kind != "traces" and kind != "raw" else "F (a.u., cells stacked)")
        if K == 0 or n == 0 or T == 0:
            note(ax, NO_CELLS)
            ax.set_yticks([])
            return fig
        colors = cell_colors(K, style=False)
        names = cell_names(K)
        y = data[shown]
        if kind in ("traces", "raw"):
            y = y - np.percentile(y, 5, axis=1, keepdims=True)
        lo, hi = np.percentile(y, [0.5, 99.5], axis=1)
        spacing = float(np.percentile(hi - lo, 75)) * 1.05
        if not spacing > 0 or not np.isfinite(spacing):
            spacing = float(np.nanmax(np.abs(y))) or 1.0
        t = np.arange(T) / fr
        offsets = (n - 1 - np.arange(n)) * spacing
        lw = line_width(0.75 if n <= 15 else 0.55)
        for i, k in enumerate(shown):
            tt, yy = decimate(t, y[i])
            ax.plot(tt, yy + offsets[i], color=colors[k], lw=lw, label=names[k], gid=f"trace_{k}")
        step = max(1, int(np.ceil(n / 25)))
        ax.set_yticks(offsets[::step], [cell_number(k, K) for k in shown[::step]])
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ymin = min(float(np.min(y[-1] + offsets[-1])), offsets[-1]) - 0.1 * spacing
        ymax = max(float(np.max(y[0] + offsets[0])), offsets[0] + spacing) + 0.1 * spacing
        ax.set_ylim(ymin, ymax)
        # amplitude scale bar just right of the data
        bar = nice_length(0.8 * spacing)
        x_bar = duration * 1.012
        y0 = offsets[-1]
        ax.plot([x_bar, x_bar], [y0, y0 + bar], color="black", lw=line_width(1.5), clip_on=False, gid="amplitude_scalebar",
                solid_capstyle="butt")
        short = unit.split(" (")[0]
        label = f"{bar * 100:g}% {short}" if kind == "dff" and bar < 1 else f"{bar:g} {short}"
        ax.text(x_bar + duration * 0.006, y0 + bar / 2, label, rotation=90, ha="left", va="center",
                fontsize=6 * font_scale(), gid="amplitude_scalebar_label", clip_on=False)
        if len(ids) > n or K > n and cells is None:
            ax.set_title(f"showing {n} of {K} cells", loc="left", fontsize=6.5 * font_scale(), color="0.3")
        return fig


def traces_heatmap(result, kind: str = "dff", *, normalize: bool = False, style=None):
    """All cells' activity as an image: cells (rows, by id) × time (s), with a colour bar.
    ``normalize=True`` scales each cell to its own 0–1 range."""
    with styled(style):
        data, unit = _trace_data(result, kind)
        K, T = data.shape
        duration = T / result.frame_rate
        height = min(7.0, max(1.8, 0.9 + 0.02 * K)) * size_scale()
        fig = new_figure(single_width() * 2, height)
        ax = fig.add_subplot()
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Cell")
        if K == 0 or T == 0:
            ax.set_xlim(0, duration)
            note(ax, NO_CELLS)
            ax.set_yticks([])
            return fig
        label = unit
        if normalize:
            lo = np.percentile(data, 1, axis=1, keepdims=True)
            hi = np.percentile(data, 99.5, axis=1, keepdims=True)
            data = np.clip((data - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1)
            vmin, vmax, label = 0.0, 1.0, f"{unit.split(' (')[0]} (normalized per cell)"
        else:
            vmin, vmax = np.percentile(data, [1, 99.5])
            if not vmax > vmin:
                vmax = vmin + 1.0
        # the PDF holds the cells x frames values themselves unless that is more than a 300 dpi copy
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax,
                       interpolation="none" if T <= 3000 else "nearest", extent=(0, duration, K - 0.5, -0.5))
        if K <= 12:
            ax.set_yticks(np.arange(K))
        else:
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01)
        cb.set_label(label)
        return fig


def motion_shifts(result, *, style=None):
    """Rigid motion-correction shifts (rows, columns) against time in seconds; a second y axis
    in µm when the pixel size is known."""
    with styled(style):
        shifts = result.get("motion/shifts")
        if shifts is None:
            raise SkipFigure("this result has no motion shifts (extras 'motion/shifts')")
        shifts = np.asarray(shifts, np.float64)
        if shifts.ndim != 2 or shifts.shape[1] < 2:
            raise SkipFigure(f"motion/shifts has shape {shifts.shape}; expected (T, 2)")
        T = len(shifts)
        fr = result.frame_rate
        t = np.arange(T) / fr
        fig = new_figure(single_width() * 2, 1.7 * size_scale())
        ax = fig.add_subplot()
        for j, (name, color) in enumerate((("rows (y)", "#0072B2"), ("columns (x)", "#D55E00"))):
            tt, yy = decimate(t, shifts[:, j])
            ax.plot(tt, yy, color=color, lw=line_width(0.9), label=name)
        ax.set_xlim(0, T / fr)
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Shift (px)")
        ax.axhline(0, color="0.6", lw=0.5, zorder=0)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.1)
        um = pixel_size(result)
        if um:
            sec = ax.secondary_yaxis("right", functions=(lambda p: p * um, lambda m: m / um))
            sec.set_ylabel("Shift (µm)")
        return fig
