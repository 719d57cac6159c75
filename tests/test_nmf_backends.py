"""Optional torch/cupy backends: clear error when missing; torch HALS matches numpy."""
import sys

import numpy as np
import pytest

from caimg_nmf.errors import InputError
from caimg_nmf.nmf import nmf
from _nmf_helpers import match_score, planted

pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)      # import torch -> ImportError
    X, _, _ = planted()
    with pytest.raises(InputError, match="backend='torch' needs PyTorch"):
        nmf(X, 3, backend="torch")


def test_missing_cupy_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    X, _, _ = planted()
    with pytest.raises(InputError, match="backend='cupy' needs CuPy"):
        nmf(X, 3, backend="cupy")


def test_torch_hals_recovers_and_decreases():
    pytest.importorskip("torch")
    X, W, H = planted()
    res = nmf(X.astype(np.float32), 4, backend="torch", init="nndsvda", max_iter=400, tol=1e-7)
    assert res.W.dtype == np.float32 and res.W.shape == (60, 4)
    assert match_score(W, res.W) >= 0.99
    assert np.all(np.diff(res.loss_history) <= 1e-5 * res.loss_history[:-1] + 1e-7)


def test_torch_blocked_sweep_equals_numpy_sweep():
    torch = pytest.importorskip("torch")
    from caimg_nmf.nmf._hals import sweep
    from caimg_nmf.nmf.torch_hals import sweep_blocked
    rng = np.random.default_rng(0)
    K, n = 37, 50
    M = rng.random((K, 60))
    G = M @ M.T
    B = rng.random((K, n)) * 5
    A = rng.random((K, n))
    A_np = A.copy()
    sweep(A_np, B, G, 0.1)
    A_t = torch.tensor(A)
    sweep_blocked(None, A_t, torch.tensor(B), torch.tensor(G), 0.1, None, block=8)
    np.testing.assert_allclose(A_t.numpy(), A_np, rtol=1e-10, atol=1e-12)


def test_torch_full_fit_matches_numpy_with_penalties_and_support():
    """A whole fit on the CPU with every option the pipeline's local NMF uses (L1 and L2 penalties on
    both factors, a W support mask) reaches the numpy backend's solution: entries outside the support
    stay exactly 0 and W, H agree to 2 % of their peaks (the penalties make the optimum unique here;
    the two backends' HALS differ in extrapolation only, so they stop after different iterations)."""
    pytest.importorskip("torch")
    X, W, _ = planted(noise=0.05)
    X = X.astype(np.float32)
    support = (W > 0) | (np.random.default_rng(1).random(W.shape) < 0.3)
    kw = dict(W_support=support, l1_W=0.5, l1_H=0.3, l2_W=0.2, l2_H=0.1, max_iter=2000, tol=1e-10)
    ref = nmf(X, 4, **kw)
    got = nmf(X, 4, backend="torch", **kw)
    assert not got.W[~support].any()
    np.testing.assert_allclose(got.W, ref.W, rtol=0, atol=0.02 * ref.W.max())
    np.testing.assert_allclose(got.H, ref.H, rtol=0, atol=0.02 * ref.H.max())
    assert got.rel_error == pytest.approx(ref.rel_error, rel=1e-2)
