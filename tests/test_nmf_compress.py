"""compress= (randomized compressed HALS, then full-data HALS) and the chunked W update."""
import numpy as np
import pytest

from caimg_nmf.errors import InputError
from caimg_nmf.nmf import nmf
from caimg_nmf.nmf.compressed import oversampling
from _nmf_helpers import match_score, planted

pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")


def _big_planted(seed=0):
    X, W, H = planted(P=600, T=500, K=5, noise=0.05, seed=seed, dtype=np.float32)
    return X, W, H


@pytest.mark.parametrize("compress", [10, "auto"])
def test_compress_reaches_same_error(compress):
    X, W, H = _big_planted()
    ref = nmf(X, 5, tol=1e-6, max_iter=1000, random_state=0)
    out = nmf(X, 5, tol=1e-6, max_iter=1000, random_state=0, compress=compress)
    assert abs(out.rel_error - ref.rel_error) <= 1e-3 * ref.rel_error
    assert match_score(W, out.W) >= 0.99
    exact = np.linalg.norm((X - out.W @ out.H).astype(np.float64)) / np.linalg.norm(X.astype(np.float64))
    assert out.rel_error == pytest.approx(exact, rel=1e-5)
    assert out.converged and out.n_iter == len(out.loss_history)


def test_compress_callback_counts_all_iterations_and_can_stop():
    X, _, _ = _big_planted(1)
    seen = []
    res = nmf(X, 5, tol=1e-7, max_iter=400, compress=10, random_state=0, callback=lambda it, W, H, rel: seen.append(it))
    assert seen == list(range(1, res.n_iter + 1)) and len(res.loss_history) == res.n_iter
    for stop in (3, res.n_iter - 1):   # inside the compressed phase, inside the full phase
        r = nmf(X, 5, tol=1e-7, max_iter=400, compress=10, random_state=0, callback=lambda it, W, H, rel: it >= stop)
        assert r.n_iter == stop and not r.converged


def test_compress_with_penalties_support_and_float64():
    X, W, _ = planted(P=300, T=200, K=4, noise=0.02, seed=3)
    support = W > 0
    res = nmf(X, 4, compress=8, W_support=support, l1_H=0.01, random_state=0, max_iter=300)
    assert np.all(res.W[~support] == 0) and res.W.dtype == np.float64
    assert res.rel_error < 0.05


def test_auto_is_off_for_small_or_non_hals():
    assert oversampling("auto", (60, 80), 4) is None
    assert oversampling("auto", (16384, 3000), 40) == 40
    assert oversampling(None, (16384, 3000), 40) is None
    X, _, _ = planted()
    r = nmf(X, 4, solver="mu", compress="auto", max_iter=20)   # silently off
    assert r.n_iter == 20 or r.converged


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "yes"])
def test_bad_compress_names_it(value):
    X, _, _ = planted()
    with pytest.raises(InputError, match="compress"):
        nmf(X, 3, compress=value)


def test_compress_needs_hals():
    X, _, _ = planted()
    with pytest.raises(InputError, match="compress.*solver='hals'"):
        nmf(X, 3, solver="anls", compress=10)


def test_chunked_w_update_matches_single_chunk(monkeypatch):
    """The pool of row chunks gives the same iterates as one chunk (same math)."""
    import importlib
    hals = importlib.import_module("caimg_nmf.nmf._hals")
    X, _, _ = planted(P=3000, T=400, K=4, noise=0.05, seed=4)
    opts = dict(extrapolate=True, max_inner=3, inner_eps=0.0)
    from caimg_nmf.nmf.api import _nmf
    from test_nmf_streamed import DEFAULTS
    kw = {**DEFAULTS, "tol": 0.0, "max_iter": 30, "solver_options": opts}
    chunked = _nmf(X, 4, **kw)
    monkeypatch.setattr(hals, "_PARALLEL_MIN", 10**12)
    single = _nmf(X, 4, **kw)
    np.testing.assert_allclose(chunked.loss_history, single.loss_history, rtol=1e-9)
    np.testing.assert_allclose(chunked.W @ chunked.H, single.W @ single.H, rtol=1e-7, atol=1e-10)
