"""Tests of caimg_nmf.synthetic (fast: small movies except one timing check)."""
import json

import h5py
import numpy as np
import pytest
import tifffile

from caimg_nmf import synthetic as syn
from caimg_nmf.errors import InputError


@pytest.fixture(scope="module")
def five():
    return syn.scenario("five_cells")


def test_make_movie_shapes_and_dtypes(five):
    s = five
    assert s.movie.shape == (300, 64, 64) and s.movie.dtype == np.float32
    assert s.footprints.shape == (5, 64, 64) and s.footprints.dtype == np.float32
    for name in ("traces", "spikes", "calcium"):
        assert getattr(s, name).shape == (5, 300)
    assert s.baselines.shape == (5,) and s.background.shape == (64, 64)
    assert s.shifts.shape == (300, 2) and np.all(s.shifts == 0)
    assert s.neuropil is None
    assert s.movie.min() >= 0
    np.testing.assert_allclose(s.footprints.max(axis=(1, 2)), 1.0)
    assert s.n_cells == 5 and s.shape == (64, 64)


def test_every_cell_fires_and_calcium_is_ar1():
    s = syn.make_movie(4, (32, 32), 200, spike_rate=0.0, seed=3)  # forced minimum spikes
    assert np.all(s.spikes.sum(axis=1) >= 3)
    g = np.exp(-1 / (s.params["tau_decay"] * s.frame_rate))
    np.testing.assert_allclose(s.calcium[:, 1:], g * s.calcium[:, :-1] + s.spikes[:, 1:],
                               rtol=1e-5, atol=1e-6)
    ratio = s.traces / np.maximum(s.calcium, 1e-9)
    np.testing.assert_allclose(ratio[s.calcium > 0.01],
                               np.broadcast_to(s.amplitudes[:, None], ratio.shape)[s.calcium > 0.01],
                               rtol=1e-4)


def test_noise_free_movie_matches_model():
    s = syn.make_movie(3, (40, 40), 50, noise=0.0, seed=1)
    K, T = 3, 50
    model = ((s.baselines[:, None] + s.traces).T @ s.footprints.reshape(K, -1)).reshape(T, 40, 40)
    np.testing.assert_allclose(s.movie, model + s.background, rtol=1e-5, atol=1e-5)


def test_silent_cells_gcamp_nuclei_and_occluded_neuropil():
    kw = dict(n_cells=10, shape=(48, 48), n_frames=80, neuropil=0.2, noise=0.0, seed=3)
    plain = syn.make_movie(**kw)
    s = syn.make_movie(**kw, silent_fraction=0.3, nucleus_prob=1.0, nucleus_depth=(0.8, 0.9), nucleus_size=0.6,
                       soma_occlusion=0.7)
    silent = s.spikes.sum(axis=1) == 0
    assert silent.sum() == 3 and np.all(s.traces[silent] == 0) and np.all(s.spikes[~silent].sum(axis=1) >= 3)
    np.testing.assert_array_equal(s.spikes[~silent], plain.spikes[~silent])   # the other cells fire as before
    # a deep nucleus: the centre of each cell is a small fraction of its peak
    for k in range(10):
        r, c = np.round(s.centres[k]).astype(int)
        if 2 <= r < 46 and 2 <= c < 46:
            assert s.footprints[k, r, c] < 0.5
    # the truth holds the fields as the movie has them: neuropil and background dimmed inside cells
    model = ((s.baselines[:, None] + s.traces).T @ s.footprints.reshape(10, -1)).reshape(80, 48, 48)
    np.testing.assert_allclose(s.movie, np.maximum(model + s.background + s.neuropil, 0), rtol=1e-5, atol=1e-5)
    inside = syn.footprints_to_masks(s.footprints).any(axis=0)
    assert (s.background / plain.background)[inside].mean() < 0.6
    outside = ~(s.footprints > 0).any(axis=0)
    assert outside.mean() > 0.3
    np.testing.assert_allclose(s.background[outside], plain.background[outside])
    for bad, match in ((dict(silent_fraction=1.5), "silent_fraction"), (dict(nucleus_size=0.0), "nucleus_size"),
                       (dict(nucleus_depth=(0.5, 1.2)), "nucleus_depth"), (dict(soma_occlusion=-0.1), "soma_occlusion")):
        with pytest.raises(InputError, match=match):
            syn.make_movie(3, (32, 32), 20, **bad)


def test_determinism_and_independent_streams():
    a = syn.make_movie(3, (32, 32), 60, seed=7)
    b = syn.make_movie(3, (32, 32), 60, seed=7)
    c = syn.make_movie(3, (32, 32), 60, seed=7, noise=0.5)
    d = syn.make_movie(3, (32, 32), 60, seed=8)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.footprints, c.footprints)  # noise does not move cells
    np.testing.assert_array_equal(a.spikes, c.spikes)
    assert not np.array_equal(a.footprints, d.footprints)


def test_separation_and_masks(five):
    c = five.centres
    dist = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1))
    assert dist[~np.eye(5, dtype=bool)].min() >= 16.0
    m = five.masks()
    assert m.dtype == bool and m.shape == (5, 64, 64)
    area = m.sum(axis=(1, 2))
    nominal = np.pi * (five.diameters / 2) ** 2
    assert np.all(area > 0.5 * nominal) and np.all(area < 2.0 * nominal)
    assert not np.any(m.sum(axis=0) > 1)  # separated cells: masks disjoint


def test_bleaching_motion_neuropil():
    s = syn.make_movie(2, (48, 48), 100, neuropil=0.3, bleaching=0.2, motion=1.5, seed=2)
    assert s.neuropil.shape == (100, 48, 48)
    assert abs(s.neuropil.std() - 0.3) < 0.03
    np.testing.assert_allclose(s.bleach[[0, -1]], [1.0, 0.8], rtol=1e-5)
    assert np.isclose(np.abs(s.shifts).max(), 1.5, rtol=1e-5)
    assert s.movie.min() >= 0


def test_shot_noise_scale():
    s = syn.make_movie(0, (32, 32), 200, background=2.0, noise=0.0, photon_scale=100.0, seed=0)
    resid = s.movie - s.background
    expected_sd = np.sqrt(s.background.mean() / 100.0)
    assert abs(resid.std() / expected_sd - 1) < 0.1
    assert s.footprints.shape == (0, 32, 32)


def test_bad_arguments():
    with pytest.raises(InputError, match="could not place"):
        syn.make_movie(200, (16, 16), 10, cell_diameter=8, min_separation=8)
    with pytest.raises(InputError, match="bleaching"):
        syn.make_movie(bleaching=1.0)
    with pytest.raises(InputError, match="shape"):
        syn.make_movie(shape=(10,))
    with pytest.raises(InputError, match="unknown name"):
        syn.scenario("nope")
    with pytest.raises(ValueError):  # InputError is a ValueError
        syn.make_movie(amplitude=(2.0, 1.0))


def test_truth_round_trip_and_units(tmp_path, five):
    s = five.to_units(1000.0, 100.0)
    np.testing.assert_allclose(s.movie, five.movie * 1000 + 100, rtol=1e-6)
    p = s.save_truth(tmp_path / "truth.h5")
    assert [q.name for q in tmp_path.iterdir()] == ["truth.h5"]  # no temp file left
    with h5py.File(p) as f:
        for k in ("footprints", "traces", "spikes", "calcium", "baselines", "background",
                  "shifts"):
            assert k in f
        assert f.attrs["kind"] == syn.TRUTH_KIND
        assert json.loads(f.attrs["params"])["scenario"] == "five_cells"
    t = syn.load_truth(p)
    assert t.movie is None and t.gain == 1000.0 and t.offset == 100.0
    np.testing.assert_array_equal(t.traces, s.traces)
    np.testing.assert_array_equal(t.masks(), five.masks())
    assert t.frame_rate == 10.0 and t.seed == 0


def test_load_truth_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        syn.load_truth(tmp_path / "missing.h5")
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not an HDF5"):
        syn.load_truth(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(InputError, match="not a caimg_nmf"):
        syn.load_truth(tmp_path / "y.h5")


@pytest.mark.parametrize("ext", [".tif", ".npy", ".h5"])
def test_save_movie_formats(tmp_path, ext):
    s = syn.make_movie(2, (24, 24), 20, seed=0)
    p = s.save_movie(tmp_path / f"m{ext}")
    if ext == ".tif":
        got = tifffile.imread(p)
    elif ext == ".npy":
        got = np.load(p)
    else:
        with h5py.File(p) as f:
            got = f["movie"][()]
    np.testing.assert_array_equal(got, s.movie)
    q = s.to_units().save_movie(tmp_path / f"u{ext}", dtype=np.uint16)
    got = tifffile.imread(q) if ext == ".tif" else None
    if got is not None:
        assert got.dtype == np.uint16 and got.shape == (20, 24, 24)
    with pytest.raises(InputError, match="unknown extension"):
        s.save_movie(tmp_path / "m.avi")


def test_factories_gaussian():
    X, W, H = syn.make_factories(200, profiles="gaussian", seed=1)
    assert X.shape == (12, 200) and W.shape == (12, 3) and H.shape == (3, 200)
    np.testing.assert_allclose(W.max(axis=0), 1.0)
    assert set(np.unique(H)) <= {0.0, 1.0} and np.all(H.sum(axis=1) >= 1)
    np.testing.assert_allclose(X, W @ H)
    assert len(set(np.argmax(W, axis=0))) == 3  # bumps at different hours
    Xn, _, _ = syn.make_factories(200, profiles="gaussian", noise=0.1, seed=1)
    assert Xn.min() >= 0 and not np.allclose(Xn, X)
    assert syn.make_factories(50, profiles="gaussian", hours=24, n_factories=4)[1].shape == (24, 4)


def test_factories_are_the_primers_by_default():
    """The lake advertised as the primer's has the primer's profiles, as the primer writes them."""
    X, W, H = syn.make_factories(200, seed=1)
    np.testing.assert_array_equal(W[:, 0], [0, 0, 9, 5, 3, 2, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(W[:, 1], [0, 0, 0, 0, 0, 3, 2, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(W[:, 2], [0, 5, 5, 6, 6, 7, 4, 2, 1, 0.5, 0, 0])
    assert set(np.unique(H)) <= {0.0, 1.0} and H.shape == (3, 200)
    np.testing.assert_array_equal(X, W @ H)
    own = syn.PRIMER_FACTORIES.copy()
    own[0, 0] = 2.0
    np.testing.assert_array_equal(syn.make_factories(200, profiles=own, seed=1)[1], own)
    with pytest.raises(InputError, match="set by the profiles"):
        syn.make_factories(200, hours=24)
    with pytest.raises(InputError, match="no all-zero column"):
        syn.make_factories(200, profiles=-own)
    with pytest.raises(InputError, match="'gaussian'"):
        syn.make_factories(200, profiles="lake")


def test_shipped_lake_is_the_primers():
    """sample_data/lake_factories.csv and its package copy hold X = W_true @ H_true with the primer's W."""
    from pathlib import Path

    truth = np.load(syn.sample_data_path("lake_factories_truth.npz"))
    np.testing.assert_array_equal(truth["W_true"], syn.PRIMER_FACTORIES)
    X = np.loadtxt(syn.sample_data_path("lake_factories.csv"), delimiter=",")
    np.testing.assert_allclose(X, truth["W_true"] @ truth["H_true"], rtol=1e-6)
    assert X.shape == (12, 1000)
    human = Path(__file__).resolve().parent.parent / "sample_data"
    for name in ("lake_factories.csv", "lake_factories_truth.npz"):
        assert (human / name).read_bytes() == Path(syn.sample_data_path(name)).read_bytes()


def test_make_matrix():
    X, W, H = syn.make_matrix(30, 40, 4, sparsity=0.6, seed=2)
    assert X.shape == (30, 40) and W.shape == (30, 4) and H.shape == (4, 40)
    assert W.min() >= 0 and H.min() >= 0 and np.all(W.sum(0) > 0) and np.all(H.sum(1) > 0)
    np.testing.assert_allclose(X, W @ H)
    assert 0.4 < np.mean(W == 0) < 0.8
    Xn, _, _ = syn.make_matrix(30, 40, 4, noise=0.1, seed=2)
    assert Xn.min() >= 0


def test_realistic_scenario():
    """(Its speed target, < 3 s, is measured in benchmarks/bench_speed_targets.py.)"""
    s = syn.scenario("realistic")
    assert s.movie.shape == (1000, 128, 128) and s.n_cells == 60


def test_sample_data_path():
    p = syn.sample_data_path("five_cells.tif")
    assert p.is_file()
    with pytest.raises(InputError, match="Available"):
        syn.sample_data_path("nope.tif")


def test_short_scenario():
    """100 frames at 7.5 Hz, cell diameters varying 2x within the field."""
    s = syn.scenario("short")
    d = np.asarray(s.diameters)
    assert s.movie.shape == (100, 112, 112) and s.n_cells == 40 and s.frame_rate == 7.5
    assert d.min() >= 10 * 2 / 3 - 1e-6 and d.max() <= 10 * 4 / 3 + 1e-6 and d.max() / d.min() > 1.7


def test_sizes_and_gcamp6s_scenarios_plant_what_they_say():
    sizes = syn.scenario("sizes")
    assert sizes.movie.shape == (1000, 128, 128) and sizes.params["nucleus_prob"] == 0.0
    assert 7.0 <= sizes.diameters.min() and sizes.diameters.max() <= 12.0 and np.ptp(sizes.diameters) > 3.5
    g = syn.scenario("gcamp6s")
    assert g.movie.shape == (100, 112, 112) and g.frame_rate == 7.5 and g.params["nucleus_prob"] == 0.0
    silent = g.spikes.sum(axis=1) == 0
    assert 0.3 <= silent.mean() <= 0.5
    assert g.diameters.max() / g.diameters.min() > 1.6 and g.amplitudes.max() / g.amplitudes.min() > 3
