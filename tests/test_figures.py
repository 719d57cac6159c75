"""Figures drawn from small planted results (gaussian-blob footprints); no pipeline run."""
import logging
import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.image import imread  # noqa: E402

from caimg_nmf.errors import InputError  # noqa: E402
from caimg_nmf.figures import MANIFEST  # noqa: E402
from caimg_nmf.figures import (OKABE_ITO, cell_colors, contours, footprint_montage, make_figures,  # noqa: E402
                               montage_pages, motion_shifts, nmf_loss, rank_selection, reconstruct_frames,
                               reconstruction, rejected, save_figure, traces_heatmap, traces_stacked)
from caimg_nmf.io import Result  # noqa: E402

FR = 8.0


def planted(K=4, H=40, W=48, T=120, fr=FR, px=None, seed=0, extras=True):
    """A Result with K gaussian blobs, sparse transients, optional extras; and the exact movie."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:H, :W]
    centers = np.column_stack([rng.uniform(6, H - 6, K), rng.uniform(6, W - 6, K)])
    fps = np.zeros((K, H, W), np.float32)
    for k, (r, c) in enumerate(centers):
        fps[k] = np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 2.2 ** 2))
    masks = fps > 0.3
    spikes = (rng.random((K, T)) < 0.04).astype(np.float32)
    kernel = np.exp(-np.arange(20) / 5.0)
    dff = np.array([np.convolve(s, kernel)[:T] for s in spikes], np.float32).reshape(K, T)
    traces = 40.0 * dff
    base = 100.0
    movie = np.einsum("kt,khw->thw", traces, fps) + base
    attrs = {"frame_rate": fr, "config": "", "input_path": "/nonexistent/movie.tif"}
    if px:
        attrs["pixel_size_um"] = px
    ex = {}
    if extras:
        ex = {"correlation_image": fps.max(axis=0) if K else np.zeros((H, W)),
              "motion/shifts": np.cumsum(rng.normal(0, 0.1, (T, 2)), axis=0),
              "spikes": spikes,
              "rank_selection/ranks": np.arange(2, 9),
              "rank_selection/vaf": 1 - np.exp(-np.arange(2, 9) / 3),
              "rank_selection/cv_error": 0.5 + 0.02 * (np.arange(2, 9) - 5) ** 2,
              "rank_selection/stability": 1 - 0.05 * np.abs(np.arange(2, 9) - 4),
              "rank_selection/recommended": 5,
              "rejected/footprints": fps[:2] * 0.5,
              "rejected/traces": traces[:2],
              "rejected/reasons": ["low SNR", "too small"][:min(2, K)],
              "background/footprints": np.ones((1, H, W), np.float32),
              "background/traces": np.full((1, T), base)}
    result = Result(fps, traces, dff, masks, movie.mean(axis=0), loss=0.3 * np.exp(-np.arange(40) / 9) + 0.05,
                    extras=ex, attrs=attrs)
    return result, movie.astype(np.float32)


def cell_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_label().startswith("cell_")]


def texts(fig, prefix):
    """The texts of a figure whose gid starts with ``prefix`` (e.g. "cell_id_"), in drawing order."""
    return [t for ax in fig.axes for t in ax.texts if (t.get_gid() or "").startswith(prefix)]


def image_axes(fig):
    return [a for a in fig.axes if a.get_label() != "<colorbar>"]


# -- contours ------------------------------------------------------------------------------------
@pytest.mark.parametrize("background", ["mean", "correlation"])
def test_contours_one_line_per_cell_in_cell_colours(background):
    r, _ = planted(K=5)
    fig = contours(r, background)
    ax = fig.axes[0]
    lines = cell_lines(ax)
    assert len(lines) == 5
    colors = cell_colors(5)
    for k, ln in enumerate(lines):
        assert ln.get_label() == f"cell_{k:03d}"          # as in every output (io.result.cell_names)
        assert matplotlib.colors.same_color(ln.get_color(), colors[k])
        # the outline surrounds the planted centre
        x, y = ln.get_xdata(), ln.get_ydata()
        cy, cx = np.argwhere(r.masks[k]).mean(axis=0)
        assert np.nanmin(x) < cx < np.nanmax(x) and np.nanmin(y) < cy < np.nanmax(y)
    ids = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("cell_id_")]
    assert ids == [f"{k:03d}" for k in range(5)]
    assert background.capitalize() in ax.get_title()


def test_contours_dash_the_cells_found_in_the_mean_image():
    r, _ = planted(K=4)
    assert all(ln.get_linestyle() == "-" for ln in cell_lines(contours(r).axes[0]))   # no origin saved
    r.extras["cells/origin"] = ["activity", "activity", "mean image", "activity"]
    ax = contours(r).axes[0]
    assert [ln.get_linestyle() for ln in cell_lines(ax)] == ["-", "-", "--", "-"]
    assert "1 from the mean image" in ax.get_title()


def test_contours_both_panels():
    r, _ = planted(K=3)
    fig = contours(r, "both")
    assert len(image_axes(fig)) == 2
    assert all(len(cell_lines(ax)) == 3 for ax in image_axes(fig))


def test_scalebar_in_um_when_pixel_size_known_else_px():
    r, _ = planted(K=2, px=1.25)
    labels = [t.get_text() for t in contours(r).axes[0].texts if t.get_gid() == "scalebar_label"]
    assert len(labels) == 1 and labels[0].endswith(" µm")
    bar = [ln for ln in contours(r).axes[0].get_lines() if ln.get_gid() == "scalebar"][0]
    length_px = np.ptp(bar.get_xdata())
    assert length_px * 1.25 == pytest.approx(float(labels[0].split()[0]))
    r2, _ = planted(K=2)
    labels = [t.get_text() for t in contours(r2).axes[0].texts if t.get_gid() == "scalebar_label"]
    assert labels[0].endswith(" px")


def test_palette_is_okabe_ito_and_cycles():
    colors = cell_colors(9)
    assert [c.upper() for c in colors[:7]] == [c.upper() for c in OKABE_ITO]
    assert colors[7] == colors[0]


# -- traces ------------------------------------------------------------------------------------
def test_traces_stacked_axes_units_range_and_colours():
    r, _ = planted(K=4, T=120)
    fig = traces_stacked(r)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Time (s)"
    assert "ΔF/F" in ax.get_ylabel()
    assert ax.get_xlim() == pytest.approx((0, 120 / FR))
    lines = cell_lines(ax)
    assert [ln.get_label() for ln in lines] == [f"cell_{k:03d}" for k in range(4)]
    contour_colors = [ln.get_color() for ln in cell_lines(contours(r).axes[0])]
    assert all(matplotlib.colors.same_color(a.get_color(), b) for a, b in zip(lines, contour_colors))
    # cell 0 on top, in the same order as the ids
    means = [np.mean(ln.get_ydata()) for ln in lines]
    assert means == sorted(means, reverse=True)
    bar = [t.get_text() for t in ax.texts if t.get_gid() == "amplitude_scalebar_label"]
    assert len(bar) == 1 and "ΔF/F" in bar[0]


def test_traces_stacked_large_k_shows_at_most_n_with_note():
    r, _ = planted(K=220, H=60, W=60, T=60, extras=False)
    fig = traces_stacked(r, max_cells=25)
    ax = fig.axes[0]
    assert len(cell_lines(ax)) == 25
    assert "25 of 220" in ax.get_title(loc="left")


def test_traces_heatmap_extent_and_colorbar():
    r, _ = planted(K=6, T=80)
    fig = traces_heatmap(r)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Time (s)" and ax.get_ylabel() == "Cell"
    im = ax.get_images()[0]
    assert im.get_array().shape == (6, 80)
    assert im.get_extent()[:2] == pytest.approx([0, 80 / FR])
    assert fig.axes[1].get_ylabel() == "ΔF/F"


def test_motion_rank_rejected_loss():
    r, _ = planted(K=3, px=0.5)
    ax = motion_shifts(r).axes[0]
    assert len(ax.get_lines()) >= 2 and ax.get_xlabel() == "Time (s)" and "px" in ax.get_ylabel()
    fig = rank_selection(r)
    assert [a.get_ylabel() for a in fig.axes] == ["Variance explained", "CV error", "Stability"]
    assert "5" in fig.axes[0].get_title()
    assert all(any(np.allclose(ln.get_xdata(), 5) for ln in a.get_lines()) for a in fig.axes)
    fig = rejected(r)
    assert [t.get_text() for t in texts(fig, "reason_")] == ["low SNR", "too small"]
    ax = nmf_loss(r).axes[0]
    assert ax.get_xlabel() == "Iteration" and len(ax.get_lines()[0].get_ydata()) == 40


def test_rejected_shows_every_kind_of_reason():
    # the detection's background components come first and may be hundreds: when not all fit, each
    # kind of reason gets its turn, and the title counts kinds, not exact strings
    r, _ = planted(K=3)
    n_bg, n_snr = 70, 5
    fps = np.repeat(r.footprints[:1], n_bg + n_snr, axis=0)
    reasons = [f"spread over its window: {0.2 + i / 1000:.3f} of the window's rim" for i in range(n_bg)]
    reasons += [f"low SNR {2.0 + i / 10:.1f} < 3.0" for i in range(n_snr)]
    r.extras.update({"rejected/footprints": fps, "rejected/reasons": reasons,
                     "rejected/traces": np.zeros((n_bg + n_snr, r.traces.shape[1]), np.float32)})
    fig = rejected(r, max_shown=20)
    labels = [t.get_text() for t in texts(fig, "reason_")]
    titles = [t.get_text() for t in texts(fig, "rejected_")]
    assert len(labels) == 20 and sum(lb.startswith("low SNR") for lb in labels) == n_snr
    assert titles[0] == "#0" and "#70" in titles     # panels keep their index in /rejected/
    assert "70 spread over its window; 5 low SNR" in fig._suptitle.get_text()


# -- montage -----------------------------------------------------------------------------------
def test_montage_ids_and_pages():
    r, _ = planted(K=7)
    fig = footprint_montage(r)
    frames = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("footprint_")]
    assert [p.get_label() for p in frames] == [f"cell_{k:03d}" for k in range(7)]
    colors = cell_colors(7)
    assert all(matplotlib.colors.same_color(p.get_edgecolor(), colors[k]) for k, p in enumerate(frames))
    ids = [t.get_text() for t in texts(fig, "cell_id_")]
    assert ids == [f"{k:03d}" for k in range(7)]
    assert montage_pages(250) == 3 and montage_pages(0) == 1
    big, _ = planted(K=230, H=60, W=60, T=20, extras=False)
    last = footprint_montage(big, page=2)
    assert [t.get_text() for t in texts(last, "cell_id_")] == [f"{k:03d}" for k in range(200, 230)]
    with pytest.raises(InputError):
        footprint_montage(big, page=3)


# -- K = 0 and K = 1 ---------------------------------------------------------------------------
def test_empty_result_renders_with_note(tmp_path):
    r, _ = planted(K=0)
    ax = contours(r).axes[0]
    assert cell_lines(ax) == []
    assert any(t.get_text() == "no cells" for t in ax.texts)
    ax = traces_stacked(r).axes[0]
    assert ax.get_xlim() == pytest.approx((0, r.n_frames / FR))
    assert any("no cells" in t.get_text() for t in ax.texts)
    written = make_figures(r, tmp_path, formats=("png",), dpi=50)
    assert {"footprints", "contours_mean", "traces_dff", "traces_heatmap", "nmf_loss"} <= set(written)
    assert "rejected" not in written


def test_single_cell(tmp_path):
    r, movie = planted(K=1)
    assert len(cell_lines(contours(r).axes[0])) == 1
    written = make_figures(r, tmp_path, movie=movie, formats=("png",), dpi=50)
    assert "reconstruction" in written and "footprints" in written
    saved = r.save(tmp_path / "result.h5")  # figures come from the saved file alone
    again = make_figures(saved, tmp_path / "from_file", formats=("pdf",), dpi=50)
    assert set(again) == set(written) - {"reconstruction"}


# -- reconstruction ----------------------------------------------------------------------------
def test_reconstruction_matches_planted_movie():
    r, movie = planted(K=4)
    frames = [3, 50, 90]
    np.testing.assert_allclose(reconstruct_frames(r, frames), movie[frames], rtol=1e-4, atol=1e-3)
    fig = reconstruction(r, movie, frames=frames)
    assert [a.get_title() for a in fig.axes[:3]] == ["Original", "Reconstruction", "Residual"]
    resid = fig.axes[2].get_images()[0].get_array()
    assert np.abs(resid).max() < 1e-2
    with pytest.raises(InputError, match="shape"):
        reconstruction(r, movie[:, :10])


def test_reconstruction_of_a_movie_with_negative_values():
    """The result is in movie units plus input_offset (a movie with negative values was shifted up);
    the movie the user gives (`figures --movie`) is as recorded."""
    r, movie = planted(K=4)
    r.attrs["input_offset"] = 312.0
    fig = reconstruction(r, movie - 312.0, frames=[3, 50])
    resid = fig.axes[2].get_images()[0].get_array()
    assert np.abs(resid).max() < 1e-2


def test_reconstruction_uses_input_path_when_it_exists(tmp_path, caplog):
    r, movie = planted(K=2)
    with caplog.at_level(logging.INFO, logger="caimg_nmf.figures"):
        written = make_figures(r, tmp_path / "a", formats=("png",), dpi=50)
    assert "reconstruction" not in written
    assert "reconstruction skipped" in caplog.text
    np.save(tmp_path / "movie.npy", movie)
    r.attrs["input_path"] = str(tmp_path / "movie.npy")
    written = make_figures(r, tmp_path / "b", formats=("png",), dpi=50)
    assert "reconstruction" in written


# -- files: sizes, formats, atomic writes, styles ----------------------------------------------
def test_png_pixels_match_dpi_and_pdf_is_pdf(tmp_path):
    r, _ = planted(K=3)
    fig = traces_stacked(r)
    w, h = fig.get_size_inches()
    png, pdf = save_figure(fig, tmp_path / "traces", ("png", "pdf"), dpi=300)
    img = imread(png)
    assert abs(img.shape[1] - w * 300) <= 1 and abs(img.shape[0] - h * 300) <= 1
    assert w == pytest.approx(7.0)  # double column in the paper style
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert sorted(os.listdir(tmp_path)) == ["traces.pdf", "traces.png"]  # no temporary files left


def test_make_figures_writes_everything_that_applies(tmp_path):
    r, movie = planted(K=3, px=0.8)
    written = make_figures(r, tmp_path, movie=movie, dpi=60)
    expected = {"footprints", "contours_mean", "contours_correlation", "traces_dff", "traces_heatmap",
                "spikes_heatmap", "reconstruction", "motion_shifts", "rank_selection", "rejected", "nmf_loss"}
    assert set(written) == expected
    for name, paths in written.items():
        assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"]
        assert paths[1].read_bytes()[:4] == b"%PDF"
        assert imread(paths[0]).ndim == 3
    # no temporary file left; the one hidden file is the list of figures written (for a re-run)
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == [MANIFEST]
    with pytest.raises(InputError, match="format"):
        make_figures(r, tmp_path, formats=("gif",))


def test_custom_style_file_overrides(tmp_path):
    r, _ = planted(K=2)
    assert traces_stacked(r).axes[0].xaxis.label.get_fontsize() == 7
    style = tmp_path / "big.mplstyle"
    style.write_text("axes.labelsize: 13\nfigure.figsize: 5, 3\n")
    fig = traces_stacked(r, style=str(style))
    assert fig.axes[0].xaxis.label.get_fontsize() == 13
    assert fig.get_size_inches()[0] == pytest.approx(10)
    fig = traces_stacked(r, style=["paper", str(style)])
    assert fig.axes[0].xaxis.label.get_fontsize() == 13
    with pytest.raises(InputError, match="paper"):
        traces_stacked(r, style="no-such-style")
    with pytest.raises(InputError, match="not found"):
        traces_stacked(r, style=str(tmp_path / "missing.mplstyle"))
    assert matplotlib.rcParams["axes.labelsize"] != 13  # styles do not leak


# -- what a reader saw on the real recording -----------------------------------------------------
REAL_REASONS = [
    "spread over its window: 0.152 of the window's rim in its mask > max_rim 0.15 (background or neuropil, not a cell)",
    "scattered: 0.83 of the footprint inside its mask < min_concentration 0.85",
    "inconsistent: the movie at its strongest frames correlates 0.59 with the footprint < min_consistency 0.6",
    "area 25 px < min_area 33 px", "low SNR 2.7 < 3.0", "merged into 5", "compactness 0.26 < min_compactness 0.35",
]


def _with_rejected(r, reasons, n=None):
    n = n or len(reasons)
    reasons = [reasons[i % len(reasons)] for i in range(n)]
    r.extras.update({"rejected/footprints": np.repeat(r.footprints[:1], n, axis=0),
                     "rejected/traces": np.zeros((n, r.n_frames), np.float32), "rejected/reasons": reasons})
    return r


def _outside_figure(fig):
    """Texts that reach past the figure's edges once drawn (cut off in the saved file)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


@pytest.mark.parametrize("style", ["paper", "screen"])
@pytest.mark.parametrize("n", [7, 60], ids=["one-row", "eight-rows"])
def test_rejected_captions_whole_and_inside_the_figure(style, n):
    """The real recording's rejection reasons: captions were cut after three lines mid-sentence
    ("...of the window's rim in its") and could reach past the bottom edge."""
    r, _ = planted(K=3)
    fig = rejected(_with_rejected(r, REAL_REASONS, n), style=style)
    assert _outside_figure(fig) == []
    captions = [t.get_text() for t in texts(fig, "reason_")]
    assert len(captions) == n
    for caption, reason in zip(captions, [REAL_REASONS[i % 7] for i in range(n)]):
        flat = " ".join(caption.split())
        assert caption.count("\n") <= 2
        # whole, or shortened to the kind, the value and the test failed: never cut off mid-sentence
        assert flat == reason or flat.endswith(reason.split(" < ")[-1].split(" > ")[-1].split(" (")[0]), caption
    if n == 60:   # eight columns: the long reasons are shortened to the kind, the value and the test failed
        assert "spread over its window: 0.152 > max_rim 0.15" in [" ".join(c.split()) for c in captions]


def test_reason_caption_never_cuts_silently():
    from caimg_nmf.figures.spatial import reason_caption

    assert reason_caption("low SNR 2.7 < 3.0", 20) == "low SNR 2.7 < 3.0"
    assert reason_caption(REAL_REASONS[0], 40).replace("\n", " ") == REAL_REASONS[0]   # 3 lines of 40: whole
    assert reason_caption(REAL_REASONS[0], 30).replace("\n", " ") == \
        "spread over its window: 0.152 of the window's rim in its mask > max_rim 0.15"   # explanation dropped
    assert reason_caption(REAL_REASONS[2], 22).replace("\n", " ") == "inconsistent: 0.59 < min_consistency 0.6"
    long = "a reason in plain words without any test or number that goes on and on for a long while"
    caption = reason_caption(long, 20)
    assert caption.count("\n") == 2 and caption.endswith("…")


def test_rejected_reads_only_the_footprints_shown():
    """/rejected/ may hold thousands of full-frame footprints (1308 of 512 x 512 on the 600 x 512 x 512
    movie: 1.4 GB as float32, converted and normalized whole for a figure that shows 60)."""
    r, _ = planted(K=3)
    n = 300
    stack = np.repeat(r.footprints[:1], n, axis=0).astype(np.float16)

    class Rows:   # an on-demand stack (as an HDF5 dataset is): counts what is read
        shape, dtype = stack.shape, stack.dtype
        read = []

        def __len__(self):
            return n

        def __getitem__(self, i):
            self.read.append(i)
            return stack[i]

        def __array__(self, *args, **kwargs):
            raise AssertionError("the whole stack was read")

    r.extras.update({"rejected/footprints": Rows(), "rejected/reasons": ["low SNR 2.0 < 3.0"] * n,
                     "rejected/traces": np.zeros((n, r.n_frames), np.float32)})
    fig = rejected(r, max_shown=24)
    assert len(texts(fig, "reason_")) == 24
    assert sorted(Rows.read) == list(range(24))


def test_reconstruction_without_a_float64_copy_of_all_footprints():
    """reconstruct_frames made float64 copies of all footprints and all background components
    (1.9 GB for 448 cells and 441 background components of 512 x 512) to model three frames."""
    import tracemalloc

    r, _ = planted(K=200, H=64, W=64, T=30, extras=False)
    whole = r.footprints.size * 8
    tracemalloc.start()
    model = reconstruct_frames(r, [0, 5, 9])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < whole / 2, (peak, whole)
    expected = np.einsum("kt,khw->thw", r.traces[:, [0, 5, 9]].astype(np.float64), r.footprints.astype(np.float64))
    np.testing.assert_allclose(model, expected, rtol=1e-10, atol=1e-9)


def _correlation_with_halos(H=48, W=48):
    """A correlation image as the detection makes it: about 0.9 everywhere (smoothed neighbours
    correlate), 1 on cells, and dark high-pass rings (0.55) round them."""
    rng = np.random.default_rng(3)
    rr, cc = np.mgrid[:H, :W]
    img = 0.9 + 0.01 * rng.standard_normal((H, W))
    halo = np.zeros((H, W), bool)
    for r0, c0 in ((12, 12), (30, 34)):
        d = np.hypot(rr - r0, cc - c0)
        img[d < 4] = 1.0
        halo |= (d >= 4.5) & (d < 6.5)
    img[halo] = 0.55
    return img.astype(np.float32), halo


def test_correlation_panel_has_colour_bar_and_no_dark_halos():
    """The correlation panel had no colour bar, and its range from the 1st percentile drew the
    high-pass filter's dark rings round every bright cell in black against a grey field."""
    r, _ = planted(K=3)
    img, halo = _correlation_with_halos(*r.frame_shape)
    r.extras["correlation_image"] = img
    fig = contours(r, "correlation")
    bars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "Local correlation"
    im = image_axes(fig)[0].get_images()[0]
    vmin, vmax = im.get_clim()
    assert vmin == pytest.approx(float(np.median(img)))
    assert vmax == pytest.approx(float(np.percentile(img, 99.7)))
    # halos and the darker half of the background look the same: the floor of the colour scale
    assert img[halo].max() <= vmin
    # the mean image has its colour bar too
    bars = [a for a in contours(r, "mean").axes if a.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "Mean F (a.u.)"


def test_correlation_range_never_below_zero():
    from caimg_nmf.figures.spatial import correlation_limits

    img = np.linspace(-0.4, 0.3, 400).reshape(20, 20)   # median below 0
    lo, hi = correlation_limits(img)
    assert lo == 0.0 and hi == pytest.approx(np.percentile(img, 99.7))


def _speckled_mask(H=40, W=48, center=(20, 24), radius=6.0, seed=0):
    """A ROI mask as a footprint fitted to a few noisy events gives: a disc with a ragged edge,
    one-pixel spikes and stray islands."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:H, :W]
    d = np.hypot(rr - center[0], cc - center[1])
    mask = d < radius + rng.uniform(-1.5, 1.5, (H, W))
    for k in range(6):   # spikes out of the edge
        a = 2 * np.pi * k / 6
        for s in range(int(radius), int(radius) + 4):
            mask[int(round(center[0] + s * np.sin(a))), int(round(center[1] + s * np.cos(a)))] = True
    mask[center[0] - 12, center[1] + 10] = mask[center[0] + 11, center[1] - 13] = True   # islands
    return mask


def test_contours_of_speckled_masks_are_clean_outlines():
    """From about cell 39 on, the real recording's contours were ragged blobs with spikes and stray
    pieces: each contour is now one smooth closed outline round the cell, of its size."""
    from caimg_nmf.figures._common import polygon_area

    r, _ = planted(K=3)
    masks = np.array([_speckled_mask(seed=s) for s in range(3)])
    r.roi_masks = masks
    for k, ln in enumerate(cell_lines(contours(r).axes[0])):
        x, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
        assert np.isfinite(x).all(), "one piece: no islands"
        area = abs(polygon_area(np.column_stack([y, x])))
        perimeter = np.hypot(np.diff(x), np.diff(y)).sum()
        assert 0.75 * np.pi * 36 < area < 1.3 * np.pi * 36        # the disc of radius 6 it stands for
        assert perimeter / (2 * np.sqrt(np.pi * area)) < 1.1       # nearly a circle: no spikes, no ragged edge
        assert np.hypot(x.mean() - 24, y.mean() - 20) < 1.0


def test_contours_of_tiny_and_border_masks_still_drawn():
    """A mask of two pixels (blurred away) keeps its exact outline; one at the frame's edge is closed
    inside the frame."""
    r, _ = planted(K=2)
    masks = np.zeros_like(r.roi_masks)
    masks[0, 10, 10:12] = True
    masks[1, :8, :8] = True
    r.roi_masks = masks
    lines = cell_lines(contours(r).axes[0])
    for ln in lines:
        x, y = np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)
        assert np.isfinite(x).all() and len(x) >= 4
        assert x.min() >= -0.5 and y.min() >= -0.5
    x = np.asarray(lines[0].get_xdata(), float)
    assert 9 <= x.min() and x.max() <= 12


# -- progress and memory of make_figures ---------------------------------------------------------
def test_make_figures_reports_progress_unless_quiet(tmp_path):
    import io

    from caimg_nmf.progress import Reporter

    r, _ = planted(K=3)
    stream = io.StringIO()
    written = make_figures(r, tmp_path / "a", formats=("png",), dpi=50, report=Reporter(stream=stream, bars=False))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "caimg-nmf: figures ..."
    assert any(ln.startswith("caimg-nmf: figures: ") and ln.endswith(" figures") and "/" in ln for ln in lines)
    assert lines[-1].startswith("caimg-nmf: figures: done in ")
    bar = io.StringIO()
    make_figures(r, tmp_path / "b", formats=("png",), dpi=50, report=Reporter(stream=bar, bars=True))
    total = len(written) + 1   # every figure of the plan, the reconstruction (skipped here) too
    assert f"figures:   0%|          | 0/{total} [" in bar.getvalue()
    quiet = io.StringIO()
    make_figures(r, tmp_path / "c", formats=("png",), dpi=50, report=Reporter(quiet=True, stream=quiet))
    assert quiet.getvalue() == ""


def test_figures_command_shows_progress_unless_quiet(tmp_path):
    from hostile import run_cli

    r, _ = planted(K=2)
    path = r.save(tmp_path / "r.h5")
    out = run_cli(["figures", path, "--format", "png", "--dpi", "50"])
    assert out.code == 0 and "caimg-nmf: figures ..." in out.text and "figures: done in" in out.text
    out = run_cli(["figures", path, "--format", "png", "--dpi", "50", "--overwrite", "-q"])
    assert out.code == 0 and "caimg-nmf: figures" not in out.text


def test_run_draws_figures_without_holding_the_prepared_movie(tmp_path, monkeypatch):
    """The figures stage held the prepared movie (T x H x W float32, 630 MB on 600 x 512 x 512) while
    drawing; the reconstruction reads the three frames it shows again from the input."""
    import gc
    import weakref

    import caimg_nmf
    import caimg_nmf.figures as figures_module
    from caimg_nmf import pipeline
    from caimg_nmf.synthetic import scenario

    prepared = []
    real_prepare = pipeline.pre.prepare_frames

    def prepare(*args, **kwargs):
        frames = real_prepare(*args, **kwargs)
        prepared.append(weakref.ref(frames))
        return frames

    seen = {}
    real_make = figures_module.make_figures

    def make(*args, **kwargs):
        gc.collect()
        seen["alive"] = prepared[0]() is not None
        return real_make(*args, **kwargs)

    monkeypatch.setattr(pipeline.pre, "prepare_frames", prepare)
    monkeypatch.setattr(figures_module, "make_figures", make)
    truth = scenario("five_cells")
    path = tmp_path / "movie.tif"
    truth.save_movie(path)
    result = caimg_nmf.run(input=path, output=tmp_path / "out" / "r.h5", cell_diameter=8, frame_rate=10, quiet=True)
    assert seen == {"alive": False}
    assert (tmp_path / "out" / "figures" / "reconstruction.png").is_file()
    assert result.n_cells >= 1
