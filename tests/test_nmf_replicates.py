"""Replicates: determinism across n_jobs, seeds, and the NMF primer's lake example."""
import numpy as np
import pytest

from caimg_nmf.nmf import nmf
from _nmf_helpers import planted

pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")


@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_same_seed_same_result_any_n_jobs(init):
    X, _, _ = planted(noise=0.1, seed=3)
    kw = dict(replicates=4, random_state=123, max_iter=40, tol=0.0, init=init)
    r1 = nmf(X, 4, n_jobs=1, **kw)
    r2 = nmf(X, 4, n_jobs=2, **kw)
    r1b = nmf(X, 4, n_jobs=1, **kw)
    np.testing.assert_array_equal(r1.replicate_seeds, r2.replicate_seeds)
    assert r1.best_replicate == r2.best_replicate
    np.testing.assert_allclose(r1.replicate_errors, r2.replicate_errors, rtol=1e-12)
    np.testing.assert_allclose(r1.W, r2.W, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(r1.W, r1b.W)
    np.testing.assert_array_equal(r1.H, r1b.H)
    assert len(r1.replicate_errors) == 4
    assert r1.rel_error == pytest.approx(r1.replicate_errors.min(), rel=1e-6)


def test_seeds_derive_from_seedsequence():
    X, _, _ = planted()
    r = nmf(X, 3, replicates=3, random_state=7, max_iter=2, tol=0.0)
    want = [c.generate_state(1)[0] for c in np.random.SeedSequence(7).spawn(3)]
    np.testing.assert_array_equal(r.replicate_seeds, want)
    r2 = nmf(X, 3, replicates=3, random_state=8, max_iter=2, tol=0.0)
    assert not np.array_equal(r.replicate_seeds, r2.replicate_seeds)


def test_replicates_keep_best_and_deterministic_init_first():
    X, _, _ = planted(noise=0.3, seed=9)
    r = nmf(X, 5, replicates=5, random_state=0, max_iter=30, tol=0.0)
    assert r.best_replicate == int(np.argmin(r.replicate_errors))
    single = nmf(X, 5, random_state=0, max_iter=30, tol=0.0)   # replicate 0 = nndsvda
    assert r.replicate_errors[0] == pytest.approx(single.rel_error, rel=1e-12)
    assert r.init == ("nndsvda" if r.best_replicate == 0 else "random")


def _lake(seed=0):
    """Primer example: 12 hourly readings x 1000 days, three factories."""
    rng = np.random.default_rng(seed)
    t = np.arange(12)

    def bump(start, width, height):   # smooth (sin^2) profile, zero outside its window
        u = (t - start) / width
        return height * np.where((u > 0) & (u < 1), np.sin(np.pi * u) ** 2, 0.0)

    # overlapping smooth profiles; each factory has hours of its own (identifiable)
    W_true = np.stack([bump(-1, 6, 1.0), bump(2, 7, 0.7), bump(6, 7, 1.3)], axis=1)
    H_true = (rng.random((3, 1000)) < 0.3).astype(float)
    X = W_true @ H_true + 1e-4 * rng.random((12, 1000))
    return X, W_true, H_true


def test_lake_primer_example():
    X, W_true, H_true = _lake()
    res = nmf(X, 3, replicates=100, normalize="H_max", max_iter=100, tol=1e-6, random_state=0)
    C = np.corrcoef(W_true.T, res.W.T)[:3, 3:]
    from scipy.optimize import linear_sum_assignment
    r, c = linear_sum_assignment(-C)
    assert C[r, c].min() >= 0.99
    H = res.H[c]
    near = np.minimum(np.abs(H), np.abs(H - 1)) <= 0.1
    assert near.mean() >= 0.95
    assert np.allclose(res.H.max(axis=1), 1.0)
