"""Shared pieces of the figures: styles, the cell palette, figure creation, image helpers."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.inputs import check_input_file

log = logging.getLogger("caimg_nmf.figures")

STYLE_DIR = Path(__file__).resolve().parent.parent / "styles"
#: Okabe & Ito (2008) colour-blind-safe colours, black left out (it vanishes on dark images).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
NO_CELLS = "no cells"


class SkipFigure(Exception):
    """A figure does not apply to this result (no data for it); make_figures logs and moves on."""


# -- styles ------------------------------------------------------------------------------------
def builtin_styles() -> list[str]:
    """Names of the styles shipped with caimg_nmf (``caimg_nmf/styles/<name>.mplstyle``)."""
    return sorted(p.stem for p in STYLE_DIR.glob("*.mplstyle"))


def resolve_style(style):
    """A style name, a path to a ``.mplstyle`` file, a dict of rcParams, or a list of those
    → something :func:`matplotlib.style.context` accepts. ``None`` means ``"paper"``."""
    import matplotlib.style

    if style is None:
        style = "paper"
    if isinstance(style, (list, tuple)):
        return [resolve_style(s) for s in style]
    if isinstance(style, dict):
        return style
    text = str(style)
    if (STYLE_DIR / f"{text}.mplstyle").is_file():
        return str(STYLE_DIR / f"{text}.mplstyle")
    path = Path(text).expanduser()
    if path.suffix == ".mplstyle" or path.parent != Path(".") or path.is_file():
        check_input_file(path, "style file", hint="Give a path to an existing .mplstyle file or one of the "
                         f"built-in styles: {', '.join(builtin_styles())}.")
        check_style_file(path)
        return str(path)
    if text in matplotlib.style.available or text in ("default", "classic"):
        return text
    raise InputError(f"unknown figure style {text!r}. Use one of the built-in styles "
                     f"({', '.join(builtin_styles())}), a matplotlib style name, or a path to a .mplstyle file.")


def check_style_file(path) -> None:
    """Refuse a file that is not a matplotlib style: every line must be ``key: value`` (or a
    comment) with a key of matplotlib's rcParams that styles may set and a value that key accepts.
    The error names the file, the line and the key; matplotlib, which only logs 'Bad key' lines
    (printed even by a quiet run) and goes on, never sees such a file."""
    import matplotlib
    import matplotlib.style

    not_style = getattr(matplotlib.style, "_STYLE_BLACKLIST", None)
    if not_style is None:  # matplotlib < 3.11
        not_style = getattr(getattr(matplotlib.style, "core", None), "STYLE_BLACKLIST", set())
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"style file {path}: cannot read it as text ({exc}).") from None
    for number, line in enumerate(lines, start=1):
        text = _strip_style_comment(line)
        if not text:
            continue
        where = f"style file {path}, line {number}"
        if ":" not in text:
            raise InputError(f"{where}: expected 'key: value' (e.g. 'font.size: 9'), got {line.strip()!r}. "
                             "Is this a matplotlib style file?") from None
        key, value = (part.strip() for part in text.split(":", 1))
        if key not in matplotlib.rcParams:
            raise InputError(f"{where}: {key!r} is not a matplotlib setting (rcParams key); see "
                             "matplotlib.rcParams.keys() for the valid ones.") from None
        if key in not_style:
            raise InputError(f"{where}: {key!r} is not a style setting (matplotlib ignores it in styles); "
                             "remove it.") from None
        try:
            matplotlib.RcParams.validate[key](value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where}: {key}: {value!r} is not a valid value ({exc}).") from None


def _strip_style_comment(line: str) -> str:
    """``line`` without its comment: a ``#`` outside double quotes (matplotlib's rule; colours such
    as "#ff0000" are quoted)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return line[:i].strip()
    return line.strip()


@contextlib.contextmanager
def styled(style):
    """Apply ``style`` (see :func:`resolve_style`) for the duration of the block.

    ``style=False`` applies nothing (used when a caller already applied one)."""
    if style is False:
        yield
        return
    import matplotlib.style

    resolved = resolve_style(style)
    with matplotlib.style.context(resolved, after_reset=False):
        yield


def new_figure(width=None, height=None, *, columns=1):
    """A Figure attached to an Agg canvas (no pyplot state). ``columns=2`` → double-column width
    (twice the style's figure width, i.e. 7 in for the paper style)."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w0, h0 = mpl.rcParams["figure.figsize"]
    if width is None:
        width = w0 * columns
    if height is None:
        height = h0
    fig = Figure(figsize=(float(width), float(height)))
    FigureCanvasAgg(fig)
    return fig


def free_figure(fig) -> None:
    """Release a figure once saved: its artists, and with them the arrays of its images, go now (a
    figure and its canvas refer to each other, so dropping the last name of it would free nothing
    until the next garbage collection); what is left of it is a few kilobytes."""
    fig.clear()


def single_width() -> float:
    import matplotlib as mpl

    return float(mpl.rcParams["figure.figsize"][0])


def size_scale() -> float:
    """Figure width of the active style relative to the paper style's 3.5 in (scales heights)."""
    return single_width() / 3.5


def line_width(factor: float = 1.0) -> float:
    """The style's line width times ``factor`` (thin data lines scale with the style)."""
    import matplotlib as mpl

    return float(mpl.rcParams["lines.linewidth"]) * factor


def font_scale() -> float:
    """Font size of the active style relative to the paper style's 7 pt (scales derived sizes)."""
    import matplotlib as mpl

    size = mpl.rcParams["font.size"]
    try:
        return float(size) / 7.0
    except (TypeError, ValueError):
        return 1.0


def cell_colors(n: int, style=None) -> list:
    """One colour per cell, cycling through the style's colour cycle (Okabe–Ito for the built-in
    styles). The contours, the montage and the trace plots all use these, so cell k keeps one
    colour. ``style=False`` reads the colour cycle currently in effect."""
    import matplotlib as mpl

    with styled(style):
        cycle = [c["color"] for c in mpl.rcParams["axes.prop_cycle"] if "color" in c] or list(OKABE_ITO)
    return [cycle[k % len(cycle)] for k in range(n)]


def note(ax, text, **kw):
    """A centred grey note in an axes (e.g. "no cells")."""
    kw.setdefault("fontsize", 8 * font_scale())
    kw.setdefault("color", "0.35")
    return ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", gid="note", **kw)


def empty_axes(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


# -- image helpers -----------------------------------------------------------------------------
def robust_limits(img, lo=1.0, hi=99.7):
    a = np.asarray(img, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(a, [lo, hi])
    if not vmax > vmin:
        vmin, vmax = float(a.min()), float(a.max())
        if not vmax > vmin:
            vmax = vmin + 1.0
    return float(vmin), float(vmax)


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10^n not above ``target`` (for scale bars)."""
    if not target > 0 or not np.isfinite(target):
        return 1.0
    exp = np.floor(np.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * 10 ** exp <= target:
            return float(m * 10 ** exp)
    return float(10 ** exp)


def pixel_size(result):
    """µm per pixel, or None when the result does not know it."""
    value = result.attrs.get("pixel_size_um")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 and np.isfinite(value) else None


def add_image_scalebar(ax, width_px: int, height_px: int, um_per_px=None, *, color="white", fraction=0.2):
    """A horizontal scale bar in the lower right of an image axes (origin upper): µm when the pixel
    size is known, pixels otherwise. Returns the label Text (gid ``"scalebar_label"``)."""
    import matplotlib.patheffects as pe

    if um_per_px:
        length_um = nice_length(fraction * width_px * um_per_px)
        length_px = length_um / um_per_px
        label = f"{length_um:g} µm"
    else:
        length_px = nice_length(fraction * width_px)
        label = f"{length_px:g} px"
    margin = 0.05 * min(width_px, height_px)
    x1 = width_px - 0.5 - margin
    x0 = x1 - length_px
    y = height_px - 0.5 - margin
    outline = [pe.withStroke(linewidth=2.5, foreground="black")]
    ax.plot([x0, x1], [y, y], color=color, lw=2.0, solid_capstyle="butt", gid="scalebar",
            path_effects=[pe.Stroke(linewidth=3.2, foreground="black"), pe.Normal()])
    return ax.text((x0 + x1) / 2, y - 0.02 * height_px, label, color=color, ha="center", va="bottom",
                   fontsize=6.5 * font_scale(), gid="scalebar_label", path_effects=outline)


def centroids(result) -> np.ndarray:
    """(K, 2) centroids (row, col): ``rois/centroids`` when saved, else the centre of mass of each
    mask (or of its footprint when the mask is empty)."""
    K = result.n_cells
    saved = result.get("rois/centroids")
    if saved is not None and np.shape(saved) == (K, 2):
        return np.asarray(saved, np.float64)
    return np.array([_center_of(result.roi_masks[k], result.footprints[k]) for k in range(K)]).reshape(K, 2)


def _center_of(mask, footprint=None):
    w = np.asarray(mask, np.float64)
    if w.sum() <= 0 and footprint is not None:
        w = np.clip(np.asarray(footprint, np.float64), 0, None)
    total = w.sum()
    if total <= 0:
        return np.array([(w.shape[0] - 1) / 2, (w.shape[1] - 1) / 2])
    rr, cc = np.indices(w.shape)
    return np.array([(rr * w).sum() / total, (cc * w).sum() / total])


def mask_outline(mask, smooth: bool = True) -> np.ndarray:
    """The outline of a binary mask as one (N, 2) array of (row, col) points, pieces separated by
    NaN rows (largest piece first); empty (0, 2) when the mask is empty. Contours are closed at
    the image border.

    ``smooth`` (default): the outline of the mask blurred by :func:`outline_sigma` at its half level,
    islands under a quarter of the largest piece's area left out. A mask taken from a footprint fitted
    to a few noisy events has a ragged edge, one-pixel spikes and stray islands, drawn pixel by pixel
    as an irregular blob; the smoothed outline keeps the cell's place, size and shape. When blurring
    leaves nothing (a mask of a few pixels) the exact outline is drawn."""
    from scipy.ndimage import gaussian_filter
    from skimage.measure import find_contours

    m = np.asarray(mask, bool)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 2))
    sigma = outline_sigma(m) if smooth else 0.0
    pad = int(np.ceil(3 * sigma)) + 1   # the blur's reach, and one pixel so contours close at the border
    r0, c0 = rows[0], cols[0]
    window = np.pad(m[r0:rows[-1] + 1, c0:cols[-1] + 1], pad).astype(np.float32)
    pieces = []
    if sigma > 0:
        pieces = find_contours(gaussian_filter(window, sigma, mode="constant"), 0.5)
    if not pieces:
        pieces = find_contours(window, 0.5)
    areas = [abs(polygon_area(p)) for p in pieces]
    order = np.argsort(areas, kind="stable")[::-1]
    keep = [pieces[i] for i in order if not smooth or areas[i] >= 0.25 * areas[order[0]]]
    out = []
    for p in keep:
        # back to frame coordinates, inside the frame (the blur may reach past its edge)
        p = p + (r0 - pad, c0 - pad)
        p[:, 0] = np.clip(p[:, 0], -0.5, m.shape[0] - 0.5)
        p[:, 1] = np.clip(p[:, 1], -0.5, m.shape[1] - 0.5)
        out.extend([p, np.full((1, 2), np.nan)])
    return np.concatenate(out[:-1])


def outline_sigma(mask) -> float:
    """How much :func:`mask_outline` blurs a mask (pixels): 0.15 of its equivalent diameter, at
    least 0.8 and at most 4 px (1.5 px for a 10-px cell: ragged edges go, the cell's shape stays)."""
    diameter = 2 * np.sqrt(float(np.count_nonzero(mask)) / np.pi)
    return float(np.clip(0.15 * diameter, 0.8, 4.0))


def polygon_area(points) -> float:
    """Shoelace area of a closed polygon given as (N, 2) points."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def crop_size(masks, footprints, shape) -> int:
    """One square crop size (odd, pixels) that holds most cells of a montage."""
    H, W = shape
    extents = []
    for k in range(len(footprints)):
        m = masks[k] if masks is not None and masks[k].any() else footprints[k] >= 0.2 * max(footprints[k].max(), 1e-12)
        if m.any():
            rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            extents.append(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)
    if not extents:
        return int(min(H, W))
    s = int(np.ceil(1.6 * np.percentile(extents, 90))) + 4
    s = max(s, 11)
    s += (s + 1) % 2
    return int(min(s, max(H, W)))


@dataclass
class Mosaic:
    """Square tiles on a grid in one axes (see :func:`mosaic_figure`). ``image`` (NaN between the
    tiles) is what :meth:`show` draws; ``origins[i]`` is tile i's top-left corner (x, y) in the
    axes' data units (image pixels, y down); ``size`` its side; ``inch`` inches per data unit."""

    fig: object
    ax: object
    image: np.ndarray
    origins: np.ndarray
    size: int
    inch: float

    def place(self, i: int, tile) -> None:
        x, y = (int(v) for v in self.origins[i])
        self.image[y:y + self.size, x:x + self.size] = tile

    def title(self, text: str, **kw):
        """The figure's title, in the room :func:`mosaic_figure` left at the top."""
        return self.fig.suptitle(text, y=1 - 0.05 / self.fig.get_figheight(), va="top", **kw)

    def show(self, cmap, vmin=0.0, vmax=1.0):
        import matplotlib as mpl

        cmap = mpl.colormaps[cmap].with_extremes(bad=(0, 0, 0, 0))   # the figure's colour between tiles
        H, W = self.image.shape
        return self.ax.imshow(np.ma.masked_invalid(self.image), cmap=cmap, vmin=vmin, vmax=vmax,
                              interpolation="none", extent=(0, W, H, 0), aspect="equal")


def mosaic_figure(n: int, size: int, ncols: int, width: float, *, above: float = 0.0, below: float = 0.0,
                  title: float = 0.0) -> Mosaic:
    """A figure ``width`` inches wide holding ``n`` square tiles of ``size`` pixels, ``ncols`` to a
    row, all in one image on one axes: drawn and saved in a fraction of the time of one axes per
    tile, whatever ``n`` (montages of hundreds of cells). Each tile has ``above`` and ``below``
    inches of room for text (a label, a caption), the figure ``title`` inches at the top for a
    title: the figure's height follows from them, so nothing drawn there is cut off at its edges."""
    gap = max(1, int(round(size / 10)))
    nrows = max(1, -(-n // ncols))
    inch = width / (ncols * size + (ncols + 1) * gap)          # inches per tile pixel
    above_px, below_px = (int(np.ceil(v / inch)) for v in (above, below))
    pitch_y = above_px + size + below_px + gap
    W, H = ncols * size + (ncols + 1) * gap, nrows * pitch_y + gap
    height = H * inch + title
    fig = new_figure(width, height)
    fig.set_layout_engine("none")
    ax = fig.add_axes((0, 0, 1, H * inch / height))
    ax.set_axis_off()
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    i = np.arange(n)
    origins = np.column_stack([gap + (i % ncols) * (size + gap), gap + (i // ncols) * pitch_y + above_px])
    return Mosaic(fig, ax, np.full((H, W), np.nan, np.float32), origins, int(size), inch)


def text_height(fontsize, lines: int = 1) -> float:
    """Inches that ``lines`` lines of text at ``fontsize`` (points, or a name such as "large") take,
    at matplotlib's line spacing of 1.2."""
    from matplotlib.font_manager import FontProperties

    return lines * 1.2 * float(FontProperties(size=fontsize).get_size_in_points()) / 72


def title_room(lines: int = 1) -> float:
    """Inches at the top of a figure for a title of ``lines`` lines (figure.titlesize) and a margin."""
    import matplotlib as mpl

    return text_height(mpl.rcParams["figure.titlesize"], lines) + 0.1


def crop(img, center, size):
    """A (size, size) window of ``img`` centred on ``center`` (row, col), zero-padded at edges."""
    H, W = img.shape
    half = size // 2
    r0, c0 = int(round(center[0])) - half, int(round(center[1])) - half
    out = np.zeros((size, size), np.float32)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, H), min(c0 + size, W)
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = img[rs:re, cs:ce]
    return out


def decimate(t, y, max_points=4000):
    """Min/max decimation of a long trace for plotting (keeps peaks visible, keeps files small)."""
    n = len(t)
    if n <= max_points:
        return t, y
    bins = max_points // 2
    edges = np.linspace(0, n, bins + 1).astype(int)
    idx = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        idx.extend(sorted((i, j)))
    idx = np.asarray(idx)
    return t[idx], y[idx]
