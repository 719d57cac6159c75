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
