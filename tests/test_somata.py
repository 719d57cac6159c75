"""Somata from the mean image (stages/somata.py): planted rings are found, covered ones left out,
bad input refused, traces with the rest of the model fixed recovered; in the pipeline, planted
silent cells are found from the mean image and only they."""
import numpy as np
import pytest
from scipy import ndimage as ndi

import caimg_nmf
from caimg_nmf.config import Config, SomataConfig
from caimg_nmf.io import Result
from caimg_nmf.errors import ConfigError, InputError
from caimg_nmf.evaluate import active_cells
from caimg_nmf.stages.somata import disc_footprints, find_somata, fit_fixed_traces, neuropil_rings, split_noise_image
from caimg_nmf.synthetic import footprints_to_masks, make_movie


def _ring_image(centres, diameter=10.0, shape=(128, 128), blobs=(), seed=0):
    """Mean image: a textured background, GCaMP-like somata (a bright ring round a nucleus darker
    than the surroundings) at ``centres`` and filled bright discs (no nucleus) at ``blobs``."""
    rng = np.random.default_rng(seed)
    H, W = shape
    image = 1.0 + 0.3 * ndi.gaussian_filter(rng.standard_normal(shape), 20) / 0.01
    image += 0.05 * ndi.gaussian_filter(rng.standard_normal(shape), 1.5) / 0.2
    yy, xx = np.mgrid[:H, :W]
    r = diameter / 2
    for y, x in centres:
        rr = np.hypot(yy - y, xx - x)
        image += 0.6 * ((rr > 0.55 * r) & (rr <= r)) - 0.4 * (rr <= 0.55 * r)
    for y, x in blobs:
        image += 0.8 * (np.hypot(yy - y, xx - x) <= r)
    return image


CENTRES = [(20, 20), (20, 60), (24, 100), (60, 30), (64, 70), (58, 108), (100, 22), (104, 64), (98, 104)]


def _nearest(found, planted):
    d = np.hypot(*(np.asarray(found, float)[:, None] - np.asarray(planted, float)[None]).transpose(2, 0, 1))
    return d.min(axis=1), d.min(axis=0)


def test_find_somata_finds_planted_rings_and_not_filled_blobs():
    blobs = [(40, 45), (82, 88)]
    image = _ring_image(CENTRES, blobs=blobs)
    somata = find_somata(image, 10.0, SomataConfig())
    to_planted, from_planted = _nearest(somata.centres, CENTRES)
    assert from_planted.max() <= 1.5                       # every ring found, at its centre
    assert np.all(np.diff(somata.scores) <= 0) and somata.scores.min() >= 2.5
    assert somata.radius == 5.0
    # the rings are the strongest; nothing sits on or beside a filled blob (whose edge lights one side
    # of a ring only). The threshold is relative to the image's own contrast, so weaker texture passes too
    n = len(CENTRES)
    assert np.all(to_planted[:n] <= 1.5) and somata.scores[n - 1] > 2 * somata.scores[n:].max(initial=0)
    beside_blobs = _nearest(somata.centres, blobs)[0] <= 12
    assert somata.scores[beside_blobs].max(initial=0) < 0.25 * somata.scores[:len(CENTRES)].min()
    strict = find_somata(image, 10.0, SomataConfig(min_contrast=8.0))
    assert strict.n_somata == len(CENTRES)


def test_find_somata_leaves_out_somata_covered_by_cells():
    image = _ring_image(CENTRES)
    cfg = SomataConfig(min_contrast=8.0)
    masks = disc_footprints(np.array(CENTRES[:4]) + [1, 0], 5.0, image.shape) > 0   # cells found from activity
    somata = find_somata(image, 10.0, cfg, cell_masks=masks)
    assert somata.n_candidates == len(CENTRES) and somata.n_somata == len(CENTRES) - 4
    _, from_planted = _nearest(somata.centres, CENTRES[4:])
    assert from_planted.max() <= 1.5
    # a looser overlap limit keeps them all
    loose = SomataConfig(min_contrast=8.0, max_overlap=1.0)
    assert find_somata(image, 10.0, loose, cell_masks=masks).n_somata == len(CENTRES)


def test_noise_test_keeps_rings_and_drops_what_noise_alone_gives():
    """The z-score threshold is relative: on a mean image of noise alone it passes some peaks. Against
    an image of that noise (an independent draw of it), only planted rings stand out."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:128, :128]
    smooth = 1.0 + 0.3 * np.sin(yy / 30) * np.cos(xx / 25)
    noisy = smooth + 0.02 * rng.standard_normal(smooth.shape)
    noise = 0.02 * rng.standard_normal(smooth.shape)
    assert find_somata(noisy, 10.0, SomataConfig()).n_somata > 0
    assert find_somata(noisy, 10.0, SomataConfig(), noise_image=noise).n_somata == 0
    rings = _ring_image(CENTRES, seed=3) - _ring_image([], seed=3)   # the planted rings alone
    found = find_somata(noisy + rings, 10.0, SomataConfig(), noise_image=noise)
    assert found.n_somata == len(CENTRES) and _nearest(found.centres, CENTRES)[1].max() <= 1.5
    # noise as strong as the rings' contrast hides them
    assert find_somata(noisy + rings, 10.0, SomataConfig(), noise_image=20 * noise).n_somata == 0
    with pytest.raises(InputError, match="noise image is constant"):
        find_somata(noisy, 10.0, SomataConfig(), noise_image=np.zeros_like(noisy))


def test_split_noise_image_cancels_structure_and_keeps_the_noise_of_the_mean():
    rng = np.random.default_rng(2)
    T = 301   # odd, and more than one chunk
    structure = 50 + 10 * rng.random((24, 32))
    frames = (structure + np.linspace(0, 5, T)[:, None, None] + rng.standard_normal((T, 24, 32))).astype(np.float32)
    noise = split_noise_image(frames, chunk=64)
    assert noise.shape == (24, 32) and noise.dtype == np.float32
    # what is left is noise with the mean image's standard deviation (1 / sqrt(T)), not structure
    assert abs(noise.std() * np.sqrt(T) - 1) < 0.1
    assert abs(np.corrcoef(noise.ravel(), structure.ravel())[0, 1]) < 0.15
    even, odd = frames[0::2].mean(axis=0, dtype=np.float64), frames[1::2].mean(axis=0, dtype=np.float64)
    np.testing.assert_allclose(noise, (even - odd) / 2, atol=1e-4)
    np.testing.assert_allclose(split_noise_image(frames, chunk=63), noise, atol=1e-5)   # odd chunk: still by parity
    with pytest.raises(InputError, match="at least 2 frames"):
        split_noise_image(frames[:1])


@pytest.mark.parametrize("image, diameter, match", [
    (np.ones((4, 8, 8)), 5.0, "2-D mean image"),
    (np.full((32, 32), np.nan), 5.0, "NaN"),
    (np.ones((32, 32)), 0.0, "at least 4 pixels"),
    (np.ones((32, 32)), np.inf, "at least 4 pixels"),
])
def test_find_somata_refuses_bad_input(image, diameter, match):
    with pytest.raises(InputError, match=match):
        find_somata(image, diameter, SomataConfig())


def test_somata_config_is_validated():
    with pytest.raises(ConfigError, match="max_overlap"):
        Config().replace({"somata.max_overlap": 1.5})
    with pytest.raises(ConfigError, match="min_contrst"):
        Config().replace({"somata.min_contrst": 3})


def test_disc_footprints_are_clipped_at_the_frame_edge():
    fp = disc_footprints(np.array([[0, 0], [10, 10]]), 3.0, (20, 20))
    assert fp.shape == (2, 20, 20) and fp.max() == 1.0
    assert fp[1].sum() == np.sum(np.hypot(*np.mgrid[-3:4, -3:4]) <= 3.0)
    assert 0 < fp[0].sum() < fp[1].sum() and fp[0, 0, 0] == 1.0
    for bad in ([[20, 5]], [[-1, 5]], [[5.5, 5]]):
        with pytest.raises(InputError, match="inside the 20 x 20 frame"):
            disc_footprints(np.array(bad), 3.0, (20, 20))


def test_find_somata_refuses_masks_and_noise_of_another_shape():
    image = _ring_image(CENTRES)
    with pytest.raises(InputError, match="cell_masks has shape"):
        find_somata(image, 10.0, SomataConfig(), cell_masks=np.zeros((2, 64, 64), bool))
    with pytest.raises(InputError, match="noise_image has shape"):
        find_somata(image, 10.0, SomataConfig(), noise_image=np.zeros((64, 64)))


def test_fit_fixed_traces_recovers_planted_traces(tmp_path):
    rng = np.random.default_rng(1)
    T, H, W = 600, 40, 40     # more frames than one chunk
    new = disc_footprints(np.array([[12, 12], [18, 17], [30, 28]]), 4.0, (H, W))
    fixed = disc_footprints(np.array([[14, 15], [28, 10]]), 5.0, (H, W)) * 0.7
    bg = np.stack([np.ones((H, W)), np.linspace(0, 1, W)[None].repeat(H, 0)]).astype(np.float32)
    true_new = rng.gamma(2.0, 1.0, (3, T)).astype(np.float32)
    fixed_tr = rng.gamma(2.0, 1.0, (2, T)).astype(np.float32)
    bg_tr = (5 + rng.random((2, T))).astype(np.float32)
    baseline = rng.random((H, W)).astype(np.float32)
    movie = (np.einsum("kt,khw->thw", true_new, new) + np.einsum("kt,khw->thw", fixed_tr, fixed)
             + np.einsum("kt,khw->thw", bg_tr, bg) + baseline).astype(np.float32)
    movie += 0.01 * rng.standard_normal(movie.shape).astype(np.float32)
    inputs = (movie, new, fixed, fixed_tr, bg, bg_tr, baseline)
    copies = [a.copy() for a in inputs]
    got, no_neuropil = fit_fixed_traces(*inputs)
    assert got.shape == (3, T) and got.dtype == np.float32 and no_neuropil is None
    assert np.abs(got - true_new).max() < 0.02
    assert all(np.array_equal(a, b) for a, b in zip(inputs, copies))   # inputs left as they were
    np.save(tmp_path / "movie.npy", movie)                                # a memory-mapped movie gives the same
    mapped = np.load(tmp_path / "movie.npy", mmap_mode="r")
    np.testing.assert_allclose(fit_fixed_traces(mapped, *inputs[1:])[0], got, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="do not fit frames"):
        fit_fixed_traces(movie, new, fixed, fixed_tr[:, :10])
    # a footprint dimmer than the model beneath it (a dark nucleus): the plain fit follows it below 0
    dim = movie - 1.5 * new[2][None]
    signed, _ = fit_fixed_traces(dim, *inputs[1:], nonnegative=False)
    assert np.abs(signed[2] - (true_new[2] - 1.5)).max() < 0.02 and (signed[2] < 0).mean() > 0.2
    clipped, _ = fit_fixed_traces(dim, *inputs[1:])
    assert clipped.min() >= 0 and (clipped[2] == 0).mean() > 0.2
    # without the fixed cells subtracted, the overlapping soma's trace takes their light
    assert np.abs(fit_fixed_traces(movie, new, fixed[:0], fixed_tr[:0], bg, bg_tr, baseline)[0] - true_new).max() > 0.5
    assert fit_fixed_traces(movie, new[:0], fixed, fixed_tr)[0].shape == (0, T)


def _soma_under_neuropil(centres, shape=(48, 48), T=400, seed=4):
    """Somata (discs of radius 4) under local neuropil that a background model would not hold: each
    soma and its ring share a neuropil trace of its own."""
    rng = np.random.default_rng(seed)
    H, W = shape
    discs = disc_footprints(np.asarray(centres), 4.0, shape)
    rings = neuropil_rings(np.asarray(centres), 4.0, shape, exclude=discs.any(axis=0))
    cell = rng.gamma(1.0, 1.0, (len(centres), T)) * (rng.random((len(centres), T)) < 0.1)
    local = 0.5 + 0.4 * np.sin(np.arange(T)[None] / 15.0 + np.arange(len(centres))[:, None] * 2.0)
    field = np.zeros((T, H, W))
    for k in range(len(centres)):
        near = ndi.binary_dilation((rings[k].toarray().reshape(shape) > 0) | (discs[k] > 0), iterations=1)
        field += local[k][:, None, None] * near
    movie = np.einsum("kt,khw->thw", cell, discs) + field + 0.005 * rng.standard_normal((T, H, W))
    return movie.astype(np.float32), discs, rings, cell, local


def test_fit_fixed_traces_takes_the_neuropil_fluctuations_of_the_ring_off():
    movie, discs, rings, cell, local = _soma_under_neuropil([[16, 16], [30, 34]])
    T = movie.shape[0]
    dense_rings = rings.toarray().reshape(discs.shape).astype(bool)
    assert dense_rings.sum(axis=(1, 2)).min() > 50 and not (dense_rings & (discs > 0)).any()
    empty = np.zeros((0,) + discs.shape[1:], np.float32)
    raw, none = fit_fixed_traces(movie, discs, empty, np.zeros((0, T)))
    corrected, neuropil = fit_fixed_traces(movie, discs, empty, np.zeros((0, T)), rings=rings, neuropil_coefficient=1.0)
    assert none is None and neuropil.shape == (2, T)
    np.testing.assert_allclose(neuropil, local, atol=0.01)          # the ring's trace is the local neuropil
    level = np.median(local, axis=1, keepdims=True)
    assert np.abs(corrected - (cell + level)).max() < 0.02           # its fluctuations taken off, its level kept
    assert np.abs(raw - cell - local).max() < 0.02                    # left on: it carries the neuropil
    partial, _ = fit_fixed_traces(movie, discs, empty, np.zeros((0, T)), rings=rings, neuropil_coefficient=0.7)
    np.testing.assert_allclose(partial, cell + local - 0.7 * (local - level), atol=0.02)
    # a ring smaller than its disc (here: none left) is not used: NaN, and the traces are the raw ones
    thin, nan_ring = fit_fixed_traces(movie, discs, empty, np.zeros((0, T)), rings=rings.multiply(0).tocsr())
    assert np.all(np.isnan(nan_ring)) and np.array_equal(thin, raw)
    with pytest.raises(InputError, match="neuropil_coefficient"):
        fit_fixed_traces(movie, discs, empty, np.zeros((0, T)), rings=rings, neuropil_coefficient=1.5)
    with pytest.raises(InputError, match="rings"):
        fit_fixed_traces(movie, discs, empty, np.zeros((0, T)), rings=rings[:1])


def test_neuropil_of_overlapping_somata_and_of_a_crowded_one():
    # two discs 7 px apart (they share pixels), and one whose ring other cells mostly cover
    movie, discs, _, cell, local = _soma_under_neuropil([[20, 20], [20, 27], [38, 40]])
    T = movie.shape[0]
    assert (discs[0] * discs[1]).sum() > 0
    crowd = discs.any(axis=0)
    dy, dx = np.mgrid[-8:10, -10:8]
    crowd[30:48, 30:48] |= (np.hypot(dy, dx) > 4.5) & ~((dy < 0) & (dx < 0))   # cells round three quarters of it
    rings = neuropil_rings(np.array([[20, 20], [20, 27], [38, 40]]), 4.0, (48, 48), exclude=crowd)
    sizes = np.asarray(rings.sum(axis=1)).ravel()
    assert 0 < sizes[2] < (discs[2] > 0).sum() <= sizes[:2].min()
    traces, neuropil = fit_fixed_traces(movie, discs, np.zeros((0, 48, 48), np.float32), np.zeros((0, T)),
                                        rings=rings, neuropil_coefficient=1.0)
    assert np.all(np.isnan(neuropil[2])) and np.all(np.isfinite(neuropil[:2]))
    level = np.median(local, axis=1, keepdims=True)
    # the overlapping pair: each gets its own activity back (their neuropil differs; shared pixels hold both)
    raw, _ = fit_fixed_traces(movie, discs, np.zeros((0, 48, 48), np.float32), np.zeros((0, T)))
    assert min(np.corrcoef(traces[k], cell[k])[0, 1] for k in range(2)) > 0.97
    assert min(np.corrcoef(raw[k], cell[k])[0, 1] for k in range(2)) < 0.9
    assert np.abs(traces[:2] - (cell + level)[:2]).mean() < 0.5 * np.abs(raw[:2] - (cell + level)[:2]).mean()


def _silent_cells_movie(seed):
    """GCaMP-like cells (a bright ring round a dark nucleus, somata displacing the neuropil), 30 %
    of them silent: only the mean image shows those."""
    return make_movie(n_cells=40, shape=(128, 128), n_frames=400, frame_rate=10.0, cell_diameter=10.0,
                      neuropil=0.2, photon_scale=50.0, noise=0.05, nucleus_prob=1.0, nucleus_depth=(0.8, 0.95),
                      nucleus_size=0.6, silent_fraction=0.3, soma_occlusion=0.7, baseline=(0.6, 1.0), seed=seed)


def _matches(masks, truth_masks):
    from scipy.optimize import linear_sum_assignment
    A = masks.reshape(len(masks), -1).astype(np.float32)
    B = truth_masks.reshape(len(truth_masks), -1).astype(np.float32)
    inter = A @ B.T
    iou = inter / (A.sum(1)[:, None] + B.sum(1)[None] - inter)
    rows, cols = linear_sum_assignment(-iou)
    return {int(a): int(c) for a, c in zip(rows, cols) if iou[a, c] >= 0.3}


def test_pipeline_finds_silent_cells_in_the_mean_image(tmp_path):
    truth = _silent_cells_movie(0)
    silent = truth.spikes.sum(axis=1) == 0
    assert silent.sum() == 12
    truth_masks = footprints_to_masks(truth.footprints)
    caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, output=tmp_path / "r.h5", quiet=True,
                  figures=False)
    with_somata = Result.load(tmp_path / "r.h5")   # what the file holds
    without = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                            overrides={"somata.enabled": False})
    origin = np.array(with_somata.extras["cells/origin"])
    pairs = _matches(with_somata.roi_masks.astype(bool), truth_masks)
    from_mean = np.flatnonzero(origin == "mean image")
    # every cell added from the mean image is a planted silent cell; at least half of those are found
    assert len(from_mean) >= 6 and all(k in pairs and silent[pairs[k]] for k in from_mean)
    assert sum(silent[c] for c in pairs.values()) >= 6
    assert len(pairs) == with_somata.n_cells          # no false cells at all
    # activity alone finds the active cells and none of the silent ones. The basis: the cells visibly
    # active in this movie by the evaluation's own rule (26 of the 28 firing cells, 1 silent cell flagged
    # by its neighbour's light); at least 90 % of those are found (measured 25 of 26)
    pairs_without = _matches(without.roi_masks.astype(bool), truth_masks)
    visible = active_cells(truth.movie, truth_masks, frame_rate=10.0)
    assert not any(silent[c] for c in pairs_without.values())
    assert sum(visible[c] for c in pairs_without.values()) >= 0.9 * visible.sum(), (len(pairs_without), visible.sum())
    assert with_somata.n_cells == without.n_cells + len(from_mean)
    assert "cells/origin" in without.extras and set(without.extras["cells/origin"]) == {"activity"}
    # the silent cells' ΔF/F stays flat next to the active cells' transients
    active_peaks = [with_somata.dff[k].max() for k, c in pairs.items() if not silent[c]]
    assert np.max(with_somata.dff[from_mean], axis=1).max() < 0.25 * np.median(active_peaks)
    contrast = np.asarray(with_somata.extras["cells/mean_image_contrast"])
    assert np.all(np.isnan(contrast[origin == "activity"])) and np.all(contrast[from_mean] >= 2.5)
    assert with_somata.attrs["n_somata_added"] == len(from_mean) <= with_somata.attrs["n_somata_seen"]


def test_neuropil_traces_of_somata_with_and_without_the_cells_rings():
    truth = _silent_cells_movie(1)
    runs = {ring: caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                                overrides={"detect.neuropil_ring": ring}) for ring in (0.0, 0.6)}
    for ring, result in runs.items():
        origin = np.array(result.extras["cells/origin"])
        neuropil = result.extras["neuropil_traces"]
        assert (origin == "mean image").sum() >= 3 and neuropil.shape == result.traces.shape
        assert np.isfinite(neuropil[origin == "mean image"]).all(axis=1).mean() > 0.5
        # the activity cells' rows hold their fitted rings, or NaN when detection fitted none
        assert np.all(np.isfinite(neuropil[origin == "activity"]) == (ring > 0))
        coefficient = np.asarray(result.extras["cells/neuropil_coefficient"])
        assert np.all(coefficient[origin == "activity"] == 0) and np.all(coefficient[origin == "mean image"] == 0.7)
    # the coefficient reaches the somata's traces, and only theirs
    plain = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                          overrides={"somata.neuropil_coefficient": 0.0})
    origin = np.array(plain.extras["cells/origin"])
    assert np.array_equal(plain.traces[origin == "activity"], runs[0.0].traces[origin == "activity"])
    assert not np.allclose(plain.traces[origin == "mean image"], runs[0.0].traces[origin == "mean image"], atol=1e-3)


# ---- filled somata (stages/_soma_shapes.py, somata.filled) ----

def _filled_image(centres, radii, shape=(128, 128), seed=0, noise=0.02):
    """A mean image with smooth background, noise of sd ``noise`` and filled bright discs, and an
    independent image of that noise (what split_noise_image gives)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = 1.0 + 0.3 * np.sin(yy / 30) * np.cos(xx / 25) + noise * rng.standard_normal(shape)
    for (y, x), r in zip(centres, radii):
        image += 0.3 * (np.hypot(yy - y, xx - x) <= r)
    return image, noise * rng.standard_normal(shape)


def _found_and_extra(found, planted):
    """How many planted somata are found (within 1.5 px), and whether what else is found is at most one
    soma weaker than all of them (false_per_field = 1: noise alone gives about one)."""
    to_planted, from_planted = _nearest(found.centres, planted)
    on = to_planted <= 1.5
    return int((from_planted <= 1.5).sum()), bool((~on).sum() <= 1 and found.scores[~on].max(initial=0)
                                                   < found.scores[on].min(initial=np.inf))


FILLED = [(20, 20), (20, 64), (24, 104), (64, 24), (64, 64), (60, 104), (104, 24), (100, 64), (104, 104)]


def test_find_filled_somata_finds_filled_blobs_of_every_size_with_shaped_footprints():
    """Filled somata from 0.7 to 1.5 x the cell radius are found at their centres, each footprint the
    disc of its own size (not one radius for all); the threshold is the noise null's largest peak."""
    from caimg_nmf.stages._soma_shapes import find_filled_somata

    radii = np.linspace(0.7, 1.5, len(FILLED)) * 5.0
    image, noise = _filled_image(FILLED, radii)
    found = find_filled_somata(image, 10.0, noise)
    to_planted, from_planted = _nearest(found.centres, FILLED)
    assert from_planted.max() <= 1.5
    # false_per_field = 1: noise alone may give one more, weaker than every planted soma
    on = to_planted <= 1.5
    assert (~on).sum() <= 1 and found.scores[~on].max(initial=0) < found.scores[on].min()
    order = np.argmin(np.hypot(*(found.centres[on][:, None] - np.array(FILLED)[None]).transpose(2, 0, 1)), axis=1)
    areas = found.masks[on].sum(axis=(1, 2))
    planted_areas = np.pi * radii[order] ** 2
    assert np.all(np.abs(areas / planted_areas - 1) < 0.5), (areas, planted_areas)
    assert np.corrcoef(areas, planted_areas)[0, 1] > 0.9
    assert 3 < found.threshold < 8 and np.all(found.scores > found.threshold)


def test_find_filled_somata_splits_touching_neighbours():
    from caimg_nmf.stages._soma_shapes import find_filled_somata

    pair = [(64, 58), (64, 70)]   # 12 px apart, radius 6 each: they touch
    image, noise = _filled_image(pair, [6, 6])
    found = find_filled_somata(image, 12.0, noise)
    assert found.n_somata == 2 and _nearest(found.centres, pair)[1].max() <= 1.5
    assert not (found.masks[0] & found.masks[1]).any()
    assert np.all(found.masks.sum(axis=(1, 2)) > 0.6 * np.pi * 36)


def test_find_filled_somata_threshold_follows_the_recordings_noise():
    """On noise alone about false_per_field somata (here at most 2); the same blobs under noise 1000x
    stronger fall below the threshold, which is saved, so a score means the same on any recording."""
    from caimg_nmf.stages._soma_shapes import find_filled_somata

    image, noise = _filled_image([], [], seed=4)
    assert find_filled_somata(image, 10.0, noise).n_somata <= 2
    assert find_filled_somata(image, 10.0, noise, false_per_field=1).n_somata <= 1
    blobs, noise = _filled_image(FILLED, [5.0] * len(FILLED), seed=4, noise=0.002)
    quiet = find_filled_somata(blobs, 10.0, noise)
    loud_image, loud_noise = _filled_image(FILLED, [5.0] * len(FILLED), seed=4, noise=2.0)
    loud = find_filled_somata(loud_image, 10.0, loud_noise)
    assert _found_and_extra(quiet, FILLED) == (len(FILLED), True) and loud.n_somata <= 2
    assert 3 < quiet.threshold < 8 and 3 < loud.threshold < 8   # in units of each one's own noise


def test_find_filled_somata_leaves_out_cells_found_and_their_margin():
    """A blob beside a cell found from activity (its light reaching past its mask) is not a soma; one
    well away from cells is."""
    from caimg_nmf.stages._soma_shapes import find_filled_somata

    image, noise = _filled_image(FILLED, [5.0] * len(FILLED))
    covered = disc_footprints(np.array(FILLED[:3]) + [0, 8], 5.0, image.shape).any(axis=0) > 0
    found = find_filled_somata(image, 10.0, noise, covered=covered)
    assert _found_and_extra(found, FILLED[3:]) == (len(FILLED) - 3, True)
    assert _nearest(found.centres, FILLED[:3])[0].min() > 5


def _filled_cells_movie(seed, silent_fraction):
    """GCaMP6s-like filled somata (no nucleus), ``silent_fraction`` of them silent."""
    return make_movie(n_cells=40, shape=(128, 128), n_frames=400, frame_rate=10.0, cell_diameter=10.0,
                      neuropil=0.2, photon_scale=50.0, noise=0.05, nucleus_prob=0.0, silent_fraction=silent_fraction,
                      baseline=(0.6, 1.0), seed=seed)


def test_pipeline_finds_silent_filled_cells_with_somata_filled():
    truth = _filled_cells_movie(0, 0.3)
    silent = truth.spikes.sum(axis=1) == 0
    result = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                           overrides={"somata.filled": True})
    origin = np.array(result.extras["cells/origin"])
    pairs = _matches(result.roi_masks.astype(bool), footprints_to_masks(truth.footprints))
    score = np.asarray(result.extras["cells/filled_score"])
    filled = np.flatnonzero(np.isfinite(score))
    # the filled somata added are planted silent cells (measured 5 of the 12, which activity alone cannot
    # find, and 1 false one: false_per_field = 1)
    assert len(filled) == result.attrs["n_somata_filled"]
    assert sum(k in pairs and silent[pairs[k]] for k in filled) >= 4 >= len(filled) - 2
    assert np.all(score[filled] > result.attrs["somata_filled_threshold"]) and set(origin[filled]) == {"mean image"}
    assert np.all(np.isnan(np.asarray(result.extras["cells/mean_image_contrast"])[filled]))


def test_pipeline_adds_no_filled_somata_to_a_movie_without_silent_cells():
    """Every cell fires and is found from activity: what is left of the mean image (the light of cells
    round their masks, the gaps between them, the background) must give no filled somata."""
    truth = _filled_cells_movie(0, 0.0)
    result = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                           overrides={"somata.filled": True})
    assert result.attrs["n_somata_filled"] == 0 and result.attrs["somata_filled_threshold"] > 0
    pairs = _matches(result.roi_masks.astype(bool), footprints_to_masks(truth.footprints))
    assert len(pairs) >= 38


# ---- somata.filled = "auto": the filled search runs where the mean image is mostly noise ----

def test_texture_to_noise_is_one_on_noise_and_grows_with_texture():
    """The ratio of the mean image's structure to its noise at a cell's scale: ~1 for noise alone,
    large for a textured image (blobs of every size, as neuropil and the gaps between cells make),
    and pixels of cells found (with their margin) left out."""
    from caimg_nmf.stages._soma_shapes import texture_to_noise

    rng = np.random.default_rng(3)
    noise = rng.standard_normal((128, 128))
    assert 0.85 < texture_to_noise(rng.standard_normal((128, 128)), noise, 10.0) < 1.15
    texture = ndi.gaussian_filter(rng.standard_normal((128, 128)), 3.0)
    texture *= 20 / texture.std()
    ratio = texture_to_noise(texture + rng.standard_normal((128, 128)), noise, 10.0)
    assert ratio > 10
    # the same texture under cells found (all but a corner) leaves only the corner's noise to measure
    covered = np.ones((128, 128), bool)
    covered[:40, :40] = False
    corner = texture + rng.standard_normal((128, 128))
    corner[:40, :40] = rng.standard_normal((40, 40))
    assert texture_to_noise(corner, noise, 10.0, covered) < 0.5 * texture_to_noise(corner, noise, 10.0)


def _noisy_filled_movie(n_frames):
    """Filled somata (no nucleus), 30 % silent, under strong shot noise (photon_scale 10)."""
    return make_movie(n_cells=40, shape=(128, 128), n_frames=n_frames, frame_rate=10.0, cell_diameter=10.0,
                      neuropil=0.2, photon_scale=10.0, noise=0.05, nucleus_prob=0.0, silent_fraction=0.3,
                      baseline=(0.6, 1.0), seed=2)


def test_pipeline_auto_looks_for_filled_somata_on_a_short_noisy_movie_only():
    """somata.filled = 'auto' (the default): on a short noisy movie of filled somata, 30 % silent, the
    mean image is mostly noise (ratio measured 6.4) and the search runs, finding silent cells that
    activity cannot; the same field recorded 4x longer has 4x less noise in its mean image (11.0) and
    the search stays off. The ratio and the decision are saved."""
    short = _noisy_filled_movie(100)
    result = caimg_nmf.run(movie=short.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True)
    attrs = result.attrs
    assert attrs["somata_filled_search"] and attrs["somata_texture_to_noise"] <= 8.0
    silent = short.spikes.sum(axis=1) == 0
    pairs = _matches(result.roi_masks.astype(bool), footprints_to_masks(short.footprints))
    filled = np.flatnonzero(np.isfinite(np.asarray(result.extras["cells/filled_score"])))
    # measured: 6 filled somata added, 5 of them planted silent cells
    assert sum(k in pairs and silent[pairs[k]] for k in filled) >= 3 >= len(filled) - sum(k in pairs for k in filled)
    off = caimg_nmf.run(movie=short.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                        overrides={"somata.filled": False})
    assert len(_matches(off.roi_masks.astype(bool), footprints_to_masks(short.footprints))) < len(pairs)
    assert "somata_filled_search" not in off.attrs
    long = _noisy_filled_movie(400)
    result = caimg_nmf.run(movie=long.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True)
    assert result.attrs["somata_texture_to_noise"] > 8.0 and not result.attrs["somata_filled_search"]
    assert "n_somata_filled" not in result.attrs


def test_pipeline_auto_leaves_filled_search_off_where_texture_dominates():
    """A ratio limit below the movie's texture turns the search off (said in the attrs); 'true' forces it."""
    truth = _filled_cells_movie(0, 0.3)
    auto = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                         overrides={"somata.filled_max_texture": 1.0})
    assert auto.attrs["somata_texture_to_noise"] > 1.0 and not auto.attrs["somata_filled_search"]
    assert "n_somata_filled" not in auto.attrs
    forced = caimg_nmf.run(movie=truth.movie, cell_diameter=10, frame_rate=10, save=False, quiet=True,
                           overrides={"somata.filled": True, "somata.filled_max_texture": 1.0})
    assert forced.attrs["somata_filled_search"] and forced.attrs["n_somata_filled"] >= 1


def test_pipeline_finds_about_no_somata_in_pure_noise():
    """No cell where there is none: on pure noise (registered as by default: no frame moves) the filled
    search runs (texture ~ noise)
    and its threshold (false_per_field 0.1, extrapolated along the noise peaks' tail) passes about one
    false soma in ten fields (measured: 1 in 8)."""
    false = 0
    for seed in range(8):
        noise = np.random.default_rng(seed).normal(100, 1, (60, 48, 48)).astype(np.float32)
        result = caimg_nmf.run(movie=noise, cell_diameter=6, frame_rate=10, save=False, quiet=True,
                               overrides={"detect.min_pnr": 1000})
        assert np.abs(result.extras["motion/shifts"]).max() == 0
        assert result.attrs["somata_filled_search"] and result.attrs["somata_texture_to_noise"] < 1.3
        false += result.n_cells
    assert false <= 2


def test_noise_threshold_below_one_false_soma_extrapolates_the_null_tail():
    """false_per_field < 1 lies above the largest null peak, and the fraction of pure-noise fields whose
    largest peak passes it is about false_per_field (Rice tail of Gaussian fields)."""
    from caimg_nmf.stages._soma_shapes import _blob_kernels, _correlate, _noise_threshold, _peaks

    rng = np.random.default_rng(0)
    disc, annulus = _blob_kernels(4.0)
    kernel = disc / disc.sum() - annulus / annulus.sum()

    def peaks(image):
        score = _correlate(image, kernel)
        score /= 1.4826 * np.median(np.abs(score - np.median(score)))
        return score[tuple(_peaks(score, 5, 4).T)]

    thresholds, passed = [], 0
    for _ in range(40):
        t = _noise_threshold(peaks(rng.standard_normal((128, 128))), 0.1)
        thresholds.append(t)
        passed += peaks(rng.standard_normal((128, 128))).max() > t
    assert passed <= 10   # ~4 expected of 40 at 0.1 per field; the largest peak alone would pass ~20
    assert _noise_threshold(np.array([5.0, 4.0, 3.0]), 1.0) == 5.0 and _noise_threshold(np.array([5.0, 4.0]), 2) == 4.0


def test_find_somata_ring_must_stand_out_from_noise_in_both_images():
    """A ring in what the cells found leave of the mean image that is not one in the mean image itself
    (a dark pit left beside a cell whose footprint's tail was taken off) is not a soma; a ring in both is."""
    yy, xx = np.mgrid[:96, :96]
    rng = np.random.default_rng(1)

    def ring(y, x):
        rr = np.hypot(yy - y, xx - x)
        return ((rr > 2.5) & (rr <= 5)) - 0.3 * (rr <= 2.5)

    noise = 0.01 * rng.standard_normal((96, 96))
    mean = 1.0 + ring(30, 30) + 0.01 * rng.standard_normal((96, 96))
    left = mean + ring(66, 66)          # the second ring only in what is left
    found = find_somata(left, 10, SomataConfig(), noise_image=noise)
    assert sorted(found.centres.tolist()) == [[30, 30], [66, 66]]
    found = find_somata(left, 10, SomataConfig(), noise_image=noise, also_in=mean)
    assert found.centres.tolist() == [[30, 30]]
    with pytest.raises(InputError, match="also_in has shape"):
        find_somata(left, 10, SomataConfig(), noise_image=noise, also_in=mean[:50])


def _scenario_scores(name, seeds, diameter=10):
    from caimg_nmf.synthetic import scenario
    from caimg_nmf import evaluate as ev

    out = []
    for seed in seeds:
        truth = scenario(name, seed=seed)
        result = caimg_nmf.run(movie=truth.movie, frame_rate=truth.frame_rate, cell_diameter=diameter, save=False,
                               quiet=True)
        s = ev.evaluate(result.roi_masks.astype(bool), footprints_to_masks(truth.footprints),
                        pred_traces=result.traces, true_traces=truth.traces)
        origin = np.asarray(result.extras["cells/origin"])
        out.append((s.f1, s.precision, s.trace_corr, int((origin != "activity").sum())))
    return np.array(out)


def test_pipeline_on_cells_of_0_7_to_1_2_diameters_without_nuclei():
    """The 'sizes' scenario (issue 15's target: cell diameter given, cells 0.7-1.2x it, no nuclei). Measured
    (seeds 0-2): F1 0.988, 0.964, 1.000 (the misses are precision: a neuropil patch beside a cell kept
    as one, 1-3 per movie), trace r 0.981-0.983, and no 'mean image' cell."""
    scores = _scenario_scores("sizes", range(3))
    f1, corr, from_mean_image = scores[:, 0], scores[:, 2], scores[:, 3]
    assert f1.mean() >= 0.975 and f1.min() >= 0.95 and corr.min() >= 0.97, scores
    assert from_mean_image.sum() == 0


def test_pipeline_on_a_short_gcamp6s_like_movie():
    """The 'gcamp6s' scenario: what Neurofinder 01.01 shows (100 frames, filled somata, 40 % silent,
    sizes varying 2x, dim cells beside bright ones). A floor, not the goal: measured (seeds 0-1) F1 0.600
    and 0.552, precision ~0.89, trace r ~0.96. Its silent cells are plainly visible, so the mean image's
    structure stands 14-16x above its noise and somata.filled = 'auto' leaves the filled search off:
    none of the 16 silent cells is found, and 2 false rings are (dark gaps between packed bright cells).
    Forced on (somata.filled = true) it finds 2 of them: they score 24-76 noise units, far above the
    threshold (6.6), but touch the active cells and the filled search leaves out discs within 0.3
    diameters of cells found (their light reaches past their masks). Issue 15 is open on all three."""
    scores = _scenario_scores("gcamp6s", range(2))
    assert scores[:, 0].min() >= 0.5 and scores[:, 1].min() >= 0.8 and scores[:, 2].min() >= 0.94, scores
