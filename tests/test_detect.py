import numpy as np
import pytest

from caimg_nmf.config import Config
from caimg_nmf.errors import InputError
from caimg_nmf.stages.detect import Detection, find_cells

from _detect_helpers import make_movie, score


def test_finds_planted_cells_and_traces(easy_movie):
    movie, fps, traces = easy_movie
    before = movie.copy()
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    assert isinstance(det, Detection)
    np.testing.assert_array_equal(movie, before)  # input untouched
    K = det.n_cells
    assert det.footprints.shape == (K, 64, 64) and det.footprints.dtype == np.float32
    assert det.traces.shape == (K, 300)
    np.testing.assert_allclose(det.footprints.max(axis=(1, 2)), 1.0, rtol=1e-5)
    p, r, f1, corr = score(det.footprints, fps, det.traces, traces)
    assert f1 >= 0.95, (p, r, f1)
    assert corr >= 0.97, corr
    # traces are in movie units: resting level ~20 and peaks of the same size as planted
    assert det.background_footprints.shape[1:] == (64, 64)
    assert det.background_traces.shape == (det.background_footprints.shape[0], 300)
    assert det.correlation_image.shape == (64, 64)


def test_matched_trace_amplitude_in_movie_units(easy_movie):
    movie, fps, traces = easy_movie
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    from _detect_helpers import masks_of
    from scipy.optimize import linear_sum_assignment
    P, T = masks_of(det.footprints), masks_of(fps)
    ov = P.reshape(len(P), -1).astype(float) @ T.reshape(len(T), -1).T.astype(float)
    r, c = linear_sum_assignment(-ov)
    ratio = [np.ptp(det.traces[i]) / np.ptp(traces[j]) for i, j in zip(r, c)]
    assert 0.7 < np.median(ratio) < 1.3, np.median(ratio)


def test_estimates_cell_diameter(easy_movie):
    movie, fps, traces = easy_movie
    det = find_cells(movie, Config().detect, frame_rate=10.0)
    assert 5.0 <= det.cell_diameter <= 11.0
    assert score(det.footprints, fps)[2] >= 0.85


def test_touching_cells_are_separated():
    movie, fps, traces = make_movie(n_cells=30, min_dist=6.0, seed=3)
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    p, r, f1, corr = score(det.footprints, fps, det.traces, traces)
    assert f1 >= 0.9 and corr >= 0.9, (p, r, f1, corr)


def test_empty_movie_gives_no_cells():
    rng = np.random.default_rng(0)
    movie = (100 + rng.normal(0, 3, (200, 48, 48))).astype(np.float32)
    det = find_cells(movie, Config().detect, cell_diameter=8.0, frame_rate=10.0)
    assert det.n_cells <= 2


@pytest.mark.parametrize("bad", [np.zeros((5, 5)), np.zeros((3, 32, 32)), np.full((20, 16, 16), np.nan)])
def test_bad_movies_are_reported(bad):
    with pytest.raises(InputError):
        find_cells(bad, Config().detect, cell_diameter=8.0, frame_rate=10.0)
