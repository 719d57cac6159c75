import dataclasses

import numpy as np
import pytest

import caimg_nmf
from caimg_nmf.config import Config
from caimg_nmf.errors import InputError
from caimg_nmf.evaluate import evaluate
from caimg_nmf.stages.curate import curate
from caimg_nmf.stages.detect import Detection, diameter_spread, find_cells
from caimg_nmf.stages.rois import masks_from_footprints
from caimg_nmf.synthetic import make_movie, scenario


def score(footprints, truth, traces=None):
    """evaluate() of footprints (pipeline ROI rule) against a SyntheticMovie."""
    return evaluate(masks_from_footprints(footprints).masks, truth.masks(), pred_traces=traces,
                    true_traces=None if traces is None else truth.traces)


def test_finds_planted_cells_and_traces(easy_movie):
    movie = easy_movie.movie
    before = movie.copy()
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    assert isinstance(det, Detection)
    np.testing.assert_array_equal(movie, before)  # input untouched
    K = det.n_cells
    assert det.footprints.shape == (K, 64, 64) and det.footprints.dtype == np.float32
    assert det.traces.shape == (K, movie.shape[0])
    np.testing.assert_allclose(det.footprints.max(axis=(1, 2)), 1.0, rtol=1e-5)
    s = score(det.footprints, easy_movie, det.traces)
    # every planted cell, and a few non-cell candidates at most (rejecting those is curation's job)
    assert s.recall == 1.0 and s.trace_corr >= 0.97 and det.n_cells <= 25, s
    assert score(curate(det, movie, Config().curate).footprints, easy_movie).f1 >= 0.95
    # components spread over their window were part of the model, and are reported as rejected
    R = len(det.rejected_reasons)
    assert R and all(r.startswith("spread over its window") for r in det.rejected_reasons)
    assert det.rejected_footprints.shape == (R, 64, 64) and det.rejected_traces.shape == (R, movie.shape[0])
    assert det.info["n_loose"] == R
    assert det.background_traces.shape == (det.background_footprints.shape[0], movie.shape[0])
    assert det.correlation_image.shape == (64, 64)


def test_matched_trace_amplitude_in_movie_units(easy_movie):
    det = find_cells(easy_movie.movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    s = score(det.footprints, easy_movie)
    truth = easy_movie.footprints[:, None] * 0  # noqa: F841  (shape check only)
    ratio = [np.ptp(det.traces[i]) / np.ptp(easy_movie.traces[j]) for i, j, _ in s.matches]
    assert 0.7 < np.median(ratio) < 1.3, np.median(ratio)


@pytest.mark.parametrize("diameter", [6.0, 12.0])
def test_estimates_cell_diameter(diameter):
    truth = make_movie(n_cells=15, shape=(80, 80), n_frames=300, cell_diameter=diameter,
                       min_separation=1.3 * diameter, noise=0.1, seed=1)
    det = find_cells(truth.movie, Config().detect, frame_rate=10.0)
    assert abs(det.cell_diameter - diameter) <= 0.25 * diameter, det.cell_diameter
    assert score(det.footprints, truth).f1 >= 0.85


def test_reduced_realistic_through_pipeline():
    """The 'realistic' scenario (neuropil, bleaching, motion, shot noise, overlaps) on a smaller field,
    three movies. Measured (seeds 2-5): F1 1.000 on each, trace r 0.955-0.963 (spread about 0.004).
    F1 >= 0.95 on every seed allows one miss or false cell among 20; the mean r >= 0.94 is four times
    that spread below the measured mean, so it fails on a loss of trace quality, not on a seed."""
    f1, r = [], []
    for seed in (2, 3, 4):
        truth = scenario("realistic", n_cells=20, shape=(72, 72), n_frames=500, seed=seed)
        res = caimg_nmf.run(movie=truth.movie, cell_diameter=truth.cell_diameter, frame_rate=truth.frame_rate,
                            save=False, quiet=True)
        s = evaluate(res.roi_masks, truth.masks(), pred_traces=res.traces, true_traces=truth.traces)
        f1.append(s.f1)
        r.append(s.trace_corr)
        # the kept cells' size spread (IQR / 1.349 of their masks' equivalent diameters) is saved: measured
        # 1.33, 1.38, 0.69 against 1.40, 1.21, 1.08 for the planted diameters
        planted = diameter_spread(truth.diameters)
        assert abs(res.attrs["cell_diameter_spread_px"] - planted) <= 0.6, (res.attrs, planted)
    assert min(f1) >= 0.95 and np.mean(r) >= 0.94 and min(r) >= 0.93, (f1, r)


def test_cells_in_bright_background_texture_are_kept():
    # Static background structure finer than the background tents (bright neuropil, vessels): the
    # components seeded on it spread over their windows. Dropping them pushed their light onto the
    # cells next to them, which spread in turn and were dropped (this found 12 and 10 of the 16
    # planted cells on seeds 0 and 1, 69 %); kept in the model and reported as rejected, most are found.
    # The basis is the same movie without the texture (16 of 16 found on each seed): the texture may
    # cost at most a fifth of those over three movies (measured 42 of 48, 87.5 %; the old behaviour 69 %).
    from scipy import ndimage as ndi
    found = {"clean": 0, "textured": 0}
    for seed in (0, 1, 2):
        truth = make_movie(n_cells=16, shape=(64, 64), n_frames=300, cell_diameter=8.0, min_separation=9.6,
                           noise=0.1, seed=seed)
        rng = np.random.default_rng(seed + 10)
        texture = ndi.gaussian_filter(rng.normal(size=(64, 64)), 3)
        texture = np.maximum(texture / texture.std(), 0)
        slow = 1 + 0.3 * np.sin(np.linspace(0, 6, truth.movie.shape[0]))
        movie = (truth.movie + texture[None] * slow[:, None, None]).astype(np.float32)
        found["clean"] += score(find_cells(truth.movie, Config().detect, cell_diameter=8.0,
                                           frame_rate=10.0).footprints, truth).n_matched
        det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
        found["textured"] += score(det.footprints, truth).n_matched
        # each rejected background component says how far it spread (the fraction that made it background)
        rims = [float(r.split(": ")[1].split()[0]) for r in det.rejected_reasons if r.startswith("spread")]
        assert len(rims) == det.info["n_loose"] and min(rims) > Config().detect.max_rim, rims
    assert found["textured"] >= 0.8 * found["clean"], found


def test_touching_cells_are_separated():
    truth = make_movie(n_cells=30, shape=(64, 64), n_frames=300, cell_diameter=8.0, min_separation=6.0,
                       diameter_jitter=0.0, seed=3)
    det = find_cells(truth.movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    s = score(det.footprints, truth, det.traces)
    assert s.f1 >= 0.9 and s.trace_corr >= 0.9, s


def test_empty_movie_gives_no_cells():
    rng = np.random.default_rng(0)
    movie = (100 + rng.normal(0, 3, (200, 48, 48))).astype(np.float32)
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    assert det.n_cells <= 2


@pytest.mark.parametrize("bad", [np.zeros((5, 5)), np.zeros((3, 32, 32)), np.full((20, 16, 16), np.nan)])
def test_bad_movies_are_reported(bad):
    with pytest.raises(InputError):
        find_cells(bad, Config().detect, cell_diameter=8.0, frame_rate=10.0)


def test_estimate_cell_diameter_function():
    from caimg_nmf.stages.detect import estimate_cell_diameter
    truth = make_movie(n_cells=15, shape=(80, 80), n_frames=300, cell_diameter=10.0, min_separation=13.0, seed=4)
    d = estimate_cell_diameter(truth.movie, Config().detect, frame_rate=10.0)
    assert 7.5 <= d <= 12.5, d


def test_parallel_tiles_give_the_same_cells(easy_movie, monkeypatch):
    # tiles of 24 px: the 64 x 64 field is 9 tiles, fitted in two worker processes or in this one
    from caimg_nmf.stages import _local_fit
    pools = []

    class CountedPool(_local_fit.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_local_fit, "ProcessPoolExecutor", CountedPool)
    one = dataclasses.replace(Config().detect, tile_size=24, n_jobs=1)
    two = dataclasses.replace(one, n_jobs=2)
    a = find_cells(easy_movie.movie, one, cell_diameter=8.0, frame_rate=10.0)
    assert not pools
    b = find_cells(easy_movie.movie, two, cell_diameter=8.0, frame_rate=10.0)
    assert pools, "n_jobs=2 fitted the tiles in this process"
    np.testing.assert_array_equal(a.seeds, b.seeds)
    np.testing.assert_array_equal(a.footprints, b.footprints)
    np.testing.assert_array_equal(a.traces, b.traces)
    np.testing.assert_array_equal(a.rejected_footprints, b.rejected_footprints)
    assert score(a.footprints, easy_movie).recall == 1.0


def test_n_jobs_zero_follows_the_blas_threads_allowed():
    from threadpoolctl import threadpool_limits

    from caimg_nmf.stages._local_fit import resolve_n_jobs
    assert resolve_n_jobs(3) == 3
    with threadpool_limits(1, user_api="blas"):   # a batch worker given one core
        assert resolve_n_jobs(0) == 1


def _find_in_daemon(queue):
    movie = make_movie(n_cells=4, shape=(48, 48), n_frames=120, cell_diameter=8.0, seed=2).movie
    cfg = dataclasses.replace(Config().detect, tile_size=24, n_jobs=2)
    queue.put(find_cells(movie, cfg, cell_diameter=8.0, frame_rate=10.0).n_cells)


def test_parallel_tiles_fall_back_in_a_daemonic_process():
    # dask's worker processes are daemonic and may not have children of their own
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_find_in_daemon, args=(queue,), daemon=True)
    proc.start()
    n_cells = queue.get(timeout=120)
    proc.join(30)
    assert proc.exitcode == 0 and n_cells >= 3


def test_full_rate_traces_refitted_in_chunks_of_frames_match(easy_movie, monkeypatch):
    # a long recording never has its whole full-rate tile in memory; the traces do not change
    from caimg_nmf.stages import _local_fit
    cfg = Config().detect
    whole = find_cells(easy_movie.movie, cfg, cell_diameter=8.0, frame_rate=10.0)
    monkeypatch.setattr(_local_fit, "TRACE_CHUNK_BYTES", 64 * 1024)   # ~ chunks of 64 frames here
    chunked = find_cells(easy_movie.movie, cfg, cell_diameter=8.0, frame_rate=10.0)
    np.testing.assert_allclose(chunked.traces, whole.traces, rtol=1e-4, atol=1e-4 * whole.traces.max())


def test_pieces_of_one_cell_are_merged():
    # an elongated cell (two overlapping lobes, one trace) is seeded twice: the pieces are merged into
    # one cell covering both lobes, refitted by the last fit (with neuropil rings the merged footprint
    # is refitted before it, as the rings' holes are cut from it)
    rng = np.random.default_rng(0)
    T, shape = 400, (48, 48)
    lobes = np.maximum(_blob(shape, 24, 21, 2.5), _blob(shape, 24, 27, 2.5))
    calcium = _calcium(rng, T)
    movie = (1 + 2 * lobes[None] * calcium[:, None, None] + rng.normal(0, 0.1, (T,) + shape)).astype(np.float32)
    for ring in (0.0, 0.6):
        det = find_cells(movie, Config().replace({"detect.neuropil_ring": ring}).detect, cell_diameter=8.0,
                         frame_rate=10.0)
        assert det.info["n_merged"] == 2
        k = int(np.argmax(np.ptp(det.traces, axis=1)))
        assert np.corrcoef(det.traces[k], calcium)[0, 1] >= 0.99
        mask = det.footprints[k] >= 0.3
        # the planted cell's own mask (both lobes at 0.3 of its peak, 85 px) is the basis: one lobe
        # alone has IoU 0.53 with it, the merged cell must cover both (measured IoU 1.0 and 0.98)
        planted = lobes >= 0.3 * lobes.max()
        assert mask[24, 21] and mask[24, 27]
        assert (mask & planted).sum() / (mask | planted).sum() >= 0.8, mask.sum()
        if ring == 0.0:
            assert det.n_cells == 1


def test_frame_count_not_a_multiple_of_the_time_bin():
    # 301 frames at 10 Hz are binned by 2: the background components' traces (from the binned fit)
    # must still cover every frame
    truth = make_movie(n_cells=16, shape=(64, 64), n_frames=301, cell_diameter=8.0, min_separation=9.6,
                       noise=0.1, seed=0)
    det = find_cells(truth.movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    assert det.info["time_bin"] == 2 and det.info["n_loose"] > 0
    assert det.traces.shape[1] == det.rejected_traces.shape[1] == 301
    assert (det.rejected_traces[:, -1] == det.rejected_traces[:, -2]).all()   # the last frame: its bin's value
    assert score(det.footprints, truth).recall == 1.0


def test_components_left_out_of_the_full_rate_traces(easy_movie):
    # the last fit keeps the components spread over their window (background) in the binned fit, but
    # not in the full-rate traces, where they would take part of the cells' light
    from caimg_nmf.stages.detect import bin_time
    from caimg_nmf.stages._local_fit import fit_cells, tents
    movie = easy_movie.movie
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    seeds = np.concatenate([det.seeds, [[5, 5], [58, 30]]])   # two components off the cells
    ri = det.window_radius
    dense = np.concatenate([det.footprints, np.ones((2, 64, 64), np.float32)])
    disc = np.hypot(*np.mgrid[-ri:ri + 1, -ri:ri + 1]) <= ri
    windows = np.stack([np.pad(f, ri)[y:y + 2 * ri + 1, x:x + 2 * ri + 1] * disc for f, (y, x) in zip(dense, seeds)])
    py, px = tents(64, 64, 3 * 8.0)
    fit = dict(tile_size=96, n_iter=5, n_trace_iter=5, b=2)
    Xb = bin_time(movie, 2)
    plain = fit_cells(movie, Xb, seeds, windows, ri, py, px, **fit)
    none_out = fit_cells(movie, Xb, seeds, windows, ri, py, px, trace_exclude=np.zeros(len(seeds), bool), **fit)
    for a, b in zip(plain[:5], none_out[:5]):
        np.testing.assert_array_equal(a, b)
    out = np.zeros(len(seeds), bool)
    out[-2:] = True
    left = fit_cells(movie, Xb, seeds, windows, ri, py, px, trace_exclude=out, **fit)
    np.testing.assert_array_equal(left[0], plain[0])          # the binned fit is the same ...
    np.testing.assert_array_equal(left[2], plain[2])
    assert not left[1][out].any() and left[1][~out].any(axis=1).all()   # ... their full-rate traces are 0
    # and the others were refitted without them (not merely fitted with them, then zeroed)
    assert not np.allclose(left[1][~out], plain[1][~out]) and not np.allclose(left[3], plain[3])
    # with neuropil rings: theirs are left out too
    ringed = fit_cells(movie, Xb, seeds, windows, ri, py, px, trace_exclude=out, neuropil_ring=0.6, **fit)
    assert not ringed[5][out].any() and ringed[5][~out].any(axis=1).all()


def test_long_recordings_are_binned_to_at_most_max_binned_frames():
    """The binned movie is held in memory (twice): a long recording is binned more, and the cells are
    still found with their full-rate traces (measured, after curation: F1 1.0, r 0.995 both ways)."""
    truth = make_movie(n_cells=20, shape=(64, 64), n_frames=1200, cell_diameter=8.0, min_separation=9.6,
                       neuropil=0.2, noise=0.1, seed=0)
    found = {}
    for limit in (0, 300):
        cfg = Config().replace({"detect.max_binned_frames": limit})
        found[limit] = find_cells(truth.movie, cfg.detect, cell_diameter=8.0, frame_rate=10.0)
    assert found[0].info["time_bin"] == 2      # 10 Hz to summary_rate 4 Hz
    assert found[300].info["time_bin"] == 4    # 1200 frames to at most 300
    from caimg_nmf.stages.curate import curate
    for det in found.values():
        assert det.traces.shape[1] == 1200
        cells = curate(det, truth.movie, Config().curate)
        s = score(cells.footprints, truth, cells.traces)
        assert s.f1 >= 0.95 and s.trace_corr >= 0.97, s


def test_memory_estimate_follows_the_binned_frame_limit():
    from caimg_nmf.memory import estimate_local_memory
    shape = (30000, 512, 512)
    capped = estimate_local_memory(shape, 9.0, 7.0, 4.0, max_binned_frames=5000)
    uncapped = estimate_local_memory(shape, 9.0, 7.0, 4.0, max_binned_frames=0)
    # 15000 binned frames (7 Hz / 2) against 5000, held twice (and a tile of them per worker)
    two_copies = 2 * 10000 * 512 * 512 * 4
    assert two_copies < uncapped - capped < 1.2 * two_copies


def _blob(shape, cy, cx, sigma):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def _calcium(rng, T, rate=0.03):
    """AR(1) calcium (decay 0.85 per frame) of random spikes, rate per frame."""
    c = np.zeros(T, np.float32)
    spikes = rng.random(T) < rate
    for t in range(T):
        c[t] = (0.85 * c[t - 1] if t else 0) + spikes[t]
    return c


def test_split_blobs_gives_each_cell_sized_blob_its_own_window():
    from caimg_nmf.stages._split import split_blobs
    ri = 8
    two = _blob((17, 17), 8, 3, 1.8) + _blob((17, 17), 8, 13, 1.8)
    satellite = _blob((17, 17), 8, 8, 2.2) + 0.6 * _blob((17, 17), 2, 8, 0.6)   # a cell and a speck
    win = np.stack([satellite, two])
    centres, windows, n_split = split_blobs(win, np.array([[40, 40], [20, 30]]), ri, min_area=20)
    assert n_split == 1 and len(centres) == 3
    assert centres[0].tolist() == [40, 40]
    np.testing.assert_array_equal(windows[0], satellite)                 # unsplit: unchanged, first
    assert sorted(map(tuple, centres[1:].tolist())) == [(20, 25), (20, 35)]   # each blob's peak
    for w in windows[1:]:
        assert w.max() == pytest.approx(1.0)
        assert np.unravel_index(np.argmax(w), w.shape) == (ri, ri)       # re-centred on its blob
        assert (w > 0.3)[:, :4].sum() == 0 and (w > 0.3)[:, -4:].sum() == 0   # the other blob is gone


def test_component_over_two_cells_is_split_into_two_with_their_own_traces(monkeypatch):
    """One seed between two cells (a missed seed) in a window of 1.5 diameters: its component covers
    both and, reaching the rim of its window, used to be dropped; split, each cell gets its own
    footprint and trace."""
    import caimg_nmf.stages.detect as detect
    rng = np.random.default_rng(0)
    T, shape = 400, (48, 48)

    shared = _calcium(rng, T)
    traces = [_calcium(rng, T) + shared, _calcium(rng, T) + shared]          # correlated, not equal (r ~ 0.5)
    cells = [_blob(shape, 24, 18, 2.2), _blob(shape, 24, 30, 2.2)]
    movie = (1.0 + 2 * sum(f[None] * c[:, None, None] for f, c in zip(cells, traces))
             + rng.normal(0, 0.1, (T,) + shape)).astype(np.float32)
    monkeypatch.setattr(detect, "find_seeds", lambda *a, **k: np.array([[24, 24]]))
    found = {}
    for split in (False, True):
        cfg = Config().replace({"detect.split_blobs": split, "detect.reseed_passes": 0, "detect.window_radius": 1.5})
        found[split] = detect.find_cells(movie, cfg.detect, cell_diameter=8.0, frame_rate=10.0)
    assert found[False].n_cells < 2
    det = found[True]
    assert det.n_cells == 2 and det.info["n_split"] == 1
    centroids = masks_from_footprints(det.footprints, 0.3, smooth=0.7).centroids
    order = np.argsort(centroids[:, 1])
    np.testing.assert_allclose(centroids[order], [[24, 18], [24, 30]], atol=0.5)
    for k, truth in zip(order, traces):
        assert np.corrcoef(det.traces[k], truth)[0, 1] >= 0.98


def test_summary_images_in_place_equal_and_save_a_movie_copy():
    import tracemalloc
    from caimg_nmf.stages._summary import summary_images
    Xb = np.random.default_rng(0).random((300, 64, 96)).astype(np.float32)
    peaks, results = [], []
    for overwrite in (False, True):        # the re-seeding residual is high-passed in place
        data = Xb.copy()
        tracemalloc.start()
        results.append(summary_images(data, 8.0, overwrite=overwrite))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert peaks[0] - peaks[1] > 0.9 * Xb.nbytes, [p / Xb.nbytes for p in peaks]


def test_neuropil_ring_takes_up_the_halo_and_gives_its_trace():
    """A cell inside a broad halo of neuropil that partly follows it (as around GCaMP somata in cortex):
    the ring component takes the halo, the footprint stays on the soma, and its trace is the neuropil's."""
    rng = np.random.default_rng(0)
    T, shape = 600, (48, 48)

    soma, halo = _blob(shape, 24, 24, 2.2), _blob(shape, 24, 24, 7.0)
    cell = _calcium(rng, T)
    neuropil = 0.5 * cell + _calcium(rng, T)
    movie = (1 + 2 * soma[None] * cell[:, None, None] + halo[None] * neuropil[:, None, None]
             + rng.normal(0, 0.1, (T,) + shape)).astype(np.float32)
    r = np.hypot(*(np.mgrid[:48, :48] - 24))
    outside = {}
    for ring in (0.0, 0.6):
        det = find_cells(movie, Config().replace({"detect.neuropil_ring": ring}).detect, cell_diameter=8.0,
                         frame_rate=10.0)
        assert det.n_cells == 1
        f = det.footprints[0]
        outside[ring] = float((f[r > 5] ** 2).sum() / (f ** 2).sum())   # footprint energy off the soma
        assert np.corrcoef(det.traces[0], cell)[0, 1] >= 0.93
    assert det.neuropil_traces.shape == (1, T)
    assert np.corrcoef(det.neuropil_traces[0], neuropil)[0, 1] >= 0.9     # measured 0.930
    assert outside[0.6] < 0.5 * outside[0.0], outside                     # measured 0.007 vs 0.039


def test_short_movie_with_cells_of_varied_sizes():
    """The 'short' scenario: 100 frames at 7.5 Hz (as Neurofinder 01.01), 40 cells whose diameters vary
    2x (6.7-13.3 px) round the 10 px given. Measured (find_cells + curate, seeds 0 and 1): F1 0.857 and
    0.947, precision 1.0, trace r 0.986 and 0.983; the misses are cells whose masks fall under
    curate.min_area (0.5 discs, a 0.7x cell) or whose footprints reach the rim of their window (1.3x)."""
    f1, r = [], []
    for seed in (0, 1):
        truth = scenario("short", seed=seed)
        assert truth.movie.shape == (100, 112, 112)
        det = find_cells(truth.movie, Config().detect, cell_diameter=10.0, frame_rate=7.5)
        s = score(curate(det, truth.movie, Config().curate).footprints, truth)
        f1.append(s.f1)
        r.append(score(det.footprints, truth, det.traces).trace_corr)
    assert min(f1) >= 0.8 and np.mean(f1) >= 0.88 and min(r) >= 0.97, (f1, r)


def test_diameter_spread_reported():
    """The spread of the found cells' diameters follows the planted one: sizes varying 2x (planted
    IQR/1.349 1.8 px; measured 2.5 on the footprints) against one size (planted 0; measured 0.58)."""
    spread = {}
    for jitter in (0.0, 1 / 3):
        truth = scenario("short", seed=0, diameter_jitter=jitter)
        det = find_cells(truth.movie, Config().detect, cell_diameter=10.0, frame_rate=7.5)
        spread[jitter] = det.info["cell_diameter_spread_px"]
        assert abs(det.info["cell_diameter_median_found_px"] - 10.0) <= 1.5, det.info
    assert spread[0.0] <= 1.2 and spread[1 / 3] >= 1.8, spread


def test_find_cells_reports_each_fit_pass_in_tiles():
    """Progress of the longest step: each fit pass is a task counted in tiles (a bar on a terminal,
    log lines otherwise), and a quiet run says nothing."""
    import io

    import caimg_nmf
    from caimg_nmf.progress import Reporter

    truth = scenario("five_cells")
    stream = io.StringIO()
    caimg_nmf.run(movie=truth.movie, frame_rate=10, cell_diameter=8, save=False, overrides={"detect.tile_size": 32},
                  reporter=Reporter(stream=stream, bars=False))
    log = stream.getvalue()
    assert "find cells: fit 1: 5 components: 2/4 tiles" in log    # 64 x 64 in tiles of 32
    passes = [line for line in log.splitlines() if "find cells: fit " in line and "done in" in line]
    assert len(passes) >= 2   # the first fit and the last one at least
    quiet = io.StringIO()
    caimg_nmf.run(movie=truth.movie, frame_rate=10, cell_diameter=8, save=False, overrides={"detect.tile_size": 32},
                  reporter=Reporter(quiet=True, stream=quiet))
    assert quiet.getvalue() == ""
