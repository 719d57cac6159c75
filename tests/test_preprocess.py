import numpy as np
import pytest

from caimg_nmf.config import Config
from caimg_nmf.errors import InputError
from caimg_nmf.io import load_movie
from caimg_nmf.stages.preprocess import flatten, prepare_frames, remove_baseline, unflatten


def cfg(**dotted):
    return Config().replace(dotted)


def test_flatten_unflatten_exact_non_square():
    rng = np.random.default_rng(1)
    frames = rng.random((7, 5, 11)).astype(np.float32)
    X = flatten(frames)
    assert X.shape == (55, 7)
    np.testing.assert_array_equal(X[:, 3].reshape(5, 11), frames[3])  # one column per frame
    W = X[:, :2]
    np.testing.assert_array_equal(unflatten(W, (5, 11)), frames[:2])


def test_crop_bin_and_subset():
    movie = np.arange(8 * 6 * 10, dtype=np.uint16).reshape(8, 6, 10)
    c = cfg(**{"preprocess.crop": [1, 5, 2, 10], "preprocess.spatial_bin": 2, "preprocess.temporal_bin": 2,
               "input.first_frame": 2, "input.n_frames": 4})
    out = prepare_frames(load_movie(movie), c.input, c.preprocess, chunk_frames=3)
    sub = movie[2:6, 1:5, 2:10].astype(np.float64)
    expected = sub.reshape(2, 2, 2, 2, 4, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    assert movie[0, 0, 0] == 0  # input untouched


def test_nan_names_frame():
    movie = np.ones((10, 4, 4), np.float32)
    movie[7, 1, 1] = np.nan
    c = Config()
    with pytest.raises(InputError, match="frame 7 contains NaN"):
        prepare_frames(load_movie(movie), c.input, c.preprocess)


def test_baseline_percentile_makes_nonnegative_and_keeps_activity():
    rng = np.random.default_rng(0)
    frames = (100 + rng.random((200, 6, 6))).astype(np.float32)
    frames[50:60, 2, 2] += 50
    out, baseline = remove_baseline(frames.copy(), cfg(**{"preprocess.baseline_percentile": 10.0}).preprocess)
    assert out.min() >= 0
    assert abs(baseline.mean() - 100.1) < 0.05
    assert out[55, 2, 2] > 49


def test_constant_and_negative():
    c = Config()
    with pytest.raises(InputError, match="constant"):
        remove_baseline(np.full((5, 3, 3), 7.0, np.float32), c.preprocess)
    neg = -np.random.default_rng(0).random((5, 3, 3)).astype(np.float32)
    with pytest.raises(InputError, match="negative values.*'percentile'"):
        remove_baseline(neg, cfg(**{"preprocess.baseline": "none"}).preprocess)


def test_bad_geometry():
    c = cfg(**{"preprocess.spatial_bin": 8})
    with pytest.raises(InputError, match="spatial_bin = 8"):
        prepare_frames(load_movie(np.ones((5, 4, 4), np.float32)), c.input, c.preprocess)
    c = cfg(**{"input.first_frame": 4})
    with pytest.raises(InputError, match="only 1 frame"):
        prepare_frames(load_movie(np.ones((5, 4, 4), np.float32)), c.input, c.preprocess)


def _negative_int16_copy(src, dst, shift):
    """The movie as a ScanImage-style int16 recording: everything ``shift`` lower, background < 0."""
    import tifffile

    movie = tifffile.imread(src).astype(np.int32) - shift
    tifffile.imwrite(dst, movie.astype(np.int16))
    return int(movie.min())


@pytest.mark.parametrize("method", ["local", "whole"])
def test_negative_background_movie_finds_the_same_cells(tmp_path, five_cells, method, capsys):
    """A user ran an int16 movie whose acquisition offset puts the background below 0 (0 cells found before)."""
    import caimg_nmf
    from conftest import match_report

    movie_path, truth = five_cells
    lowest = _negative_int16_copy(movie_path, tmp_path / "neg.tif", shift=2000)
    assert lowest < 0 and np.median(load_movie(tmp_path / "neg.tif")[:]) < 0
    opts = dict(cell_diameter=8, figures=False, overrides={"factorize.method": method})
    if method == "whole":
        opts["rank"] = 5
    found = {}
    # the whole method's percentile baseline already coped; the local method found 0 cells
    runs = (("shifted", movie_path), ("negative", tmp_path / "neg.tif"))[method == "whole":]
    for name, path in runs:
        result = caimg_nmf.run(input=path, output=tmp_path / f"{name}.h5", **opts)
        assert result.n_cells == 5, (name, found)
        cos, corr = match_report(result.footprints, result.traces, truth)
        found[name] = (result.n_cells, len(cos), cos.min(), corr.min())
        assert cos.min() >= 0.9 and corr.min() >= 0.9, (name, found)
    back = caimg_nmf.Result.load(tmp_path / "negative.h5")
    assert back.attrs["input_offset"] == -lowest
    if method == "local":
        assert caimg_nmf.Result.load(tmp_path / "shifted.h5").attrs["input_offset"] == 0
    log = capsys.readouterr()
    assert f"negative values (minimum {lowest})" in log.out + log.err
    assert f"{-lowest} was added" in log.out + log.err


def test_offset_to_nonnegative_adds_minus_the_minimum():
    from caimg_nmf.stages.preprocess import offset_to_nonnegative

    rng = np.random.default_rng(1)
    frames = (rng.random((600, 5, 4)) * 100 - 30).astype(np.float32)
    frames[437, 2, 3] = -312.0                      # the minimum in a later chunk
    before = frames.copy()
    offset = offset_to_nonnegative(frames)
    assert offset == 312.0
    np.testing.assert_array_equal(frames, before + np.float32(312.0))
    assert frames.min() == 0
    again = frames.copy()
    assert offset_to_nonnegative(frames) == 0.0   # nonnegative: untouched
    np.testing.assert_array_equal(frames, again)
