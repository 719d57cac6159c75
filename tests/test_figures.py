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
    assert len(fig.axes) == 2
    assert all(len(cell_lines(ax)) == 3 for ax in fig.axes)


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
    assert [a.get_xlabel() for a in fig.axes if a.get_visible()] == ["low SNR", "too small"]
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
    labels = [a.get_xlabel() for a in fig.axes if a.get_visible()]
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert len(labels) == 20 and sum(lb.startswith("low SNR") for lb in labels) == n_snr
    assert titles[0] == "#0" and "#70" in titles     # panels keep their index in /rejected/
    assert "70 spread over its window; 5 low SNR" in fig._suptitle.get_text()


# -- montage -----------------------------------------------------------------------------------
def test_montage_ids_and_pages():
    r, _ = planted(K=7)
    fig = footprint_montage(r)
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(shown) == 7
    ids = [t.get_text() for a in shown for t in a.texts]
    assert ids == [f"{k:03d}" for k in range(7)]
    assert montage_pages(250) == 3 and montage_pages(0) == 1
    big, _ = planted(K=230, H=60, W=60, T=20, extras=False)
    last = footprint_montage(big, page=2)
    assert len([a for a in last.axes if a.get_visible()]) == 30
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
