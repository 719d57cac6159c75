"""Out-of-core HALS (h5py / memmap / memory_budget) equals in-memory HALS."""
import numpy as np
import pytest

from caimg_nmf.nmf import estimate_memory, nmf
from caimg_nmf.nmf.api import _nmf
from caimg_nmf.nmf.streamed import RowSource
from _nmf_helpers import planted

pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")

DEFAULTS = dict(solver="hals", beta_loss="frobenius", init="nndsvda", replicates=1,
                max_iter=500, tol=1e-4, random_state=0, l1_W=0.0, l1_H=0.0, l2_W=0.0,
                l2_H=0.0, W0=None, H0=None, W_support=None, normalize=None, order=None,
                n_jobs=1, backend="numpy", memory_budget=None, callback=None, verbose=False)


def _run(X, rank, **kw):
    args = {**DEFAULTS, **kw}
    return _nmf(X, rank, **args)


def _tiny_budget(X, rank, rows=7):
    """A budget giving blocks of about ``rows`` rows."""
    P, T = X.shape
    item = X.dtype.itemsize
    fixed = item * (4 * P * rank + 6 * rank * T + 8 * rank * rank)
    return fixed + rows * (item * (2 * T + 4 * rank) + 8 * T)


def test_budget_splits_into_blocks():
    X, _, _ = planted(P=100, T=50)
    src = RowSource(X, X.dtype, 4, _tiny_budget(X, 4))
    assert src.streamed and 1 < src.block_rows < 100
    rows = [b - a for a, b, _ in src.blocks()]
    assert sum(rows) == 100


def test_streamed_identical_iterations(tmp_path):
    """Same math block by block: fixed inner sweeps, no extrapolation -> same iterates."""
    h5py = pytest.importorskip("h5py")
    X, _, _ = planted(P=90, T=70, noise=0.05, seed=2)
    opts = dict(extrapolate=False, max_inner=3, inner_eps=0.0)
    ref = _run(X, 4, tol=0.0, max_iter=40, solver_options=opts)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(8, 70))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        out = _run(f["X"], 4, tol=0.0, max_iter=40, solver_options=opts,
                   memory_budget=_tiny_budget(X, 4))
    np.testing.assert_allclose(out.loss_history, ref.loss_history, rtol=1e-9)
    np.testing.assert_allclose(out.W @ out.H, ref.W @ ref.H, rtol=1e-7, atol=1e-10)


def test_h5py_default_matches_in_memory(tmp_path):
    h5py = pytest.importorskip("h5py")
    X, _, _ = planted(P=80, T=60, noise=0.02, seed=5)
    ref = nmf(X, 4, tol=1e-10, max_iter=2000, random_state=0)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=X)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        out = nmf(f["X"], 4, tol=1e-10, max_iter=2000, random_state=0,
                  memory_budget=_tiny_budget(X, 4, rows=9))
    assert out.rel_error == pytest.approx(ref.rel_error, rel=1e-5)
    rec, rref = out.W @ out.H, ref.W @ ref.H
    assert np.linalg.norm(rec - rref) / np.linalg.norm(rref) < 1e-4


def test_memmap_and_budget_in_memory(tmp_path):
    X, _, _ = planted(P=64, T=50, noise=0.02, seed=6)
    X32 = X.astype(np.float32)
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=X32.shape)
    mm[:] = X32
    mm.flush()
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="r", shape=X32.shape)
    opts = dict(extrapolate=False, max_inner=2, inner_eps=0.0)
    ref = _run(X32, 3, tol=0.0, max_iter=30, solver_options=opts)
    a = _run(mm, 3, tol=0.0, max_iter=30, solver_options=opts, memory_budget=_tiny_budget(X32, 3, 5))
    b = _run(X32, 3, tol=0.0, max_iter=30, solver_options=opts, memory_budget=_tiny_budget(X32, 3, 5))
    assert a.W.dtype == np.float32
    np.testing.assert_allclose(a.loss_history, ref.loss_history, rtol=1e-4)
    np.testing.assert_allclose(b.loss_history, ref.loss_history, rtol=1e-4)


def test_out_of_core_validates_values(tmp_path):
    h5py = pytest.importorskip("h5py")
    from caimg_nmf.errors import InputError
    X, _, _ = planted()
    X[5, 5] = -1
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("X", data=X)
    with h5py.File(tmp_path / "x.h5", "r") as f:
        with pytest.raises(InputError, match="nonnegative"):
            nmf(f["X"], 3)


def test_estimate_memory():
    m32 = estimate_memory((16384, 3000), 40, np.float32)
    x = 16384 * 3000 * 4
    assert x < m32 < x + 2 * 4 * 40 * (16384 + 3000) * 4 + 64 * 2**20
    assert estimate_memory((16384, 3000), 40, np.float64) > m32
    s = estimate_memory((10**6, 10**4), 50, np.float32, streamed=True)
    assert s < 10**6 * 10**4 * 4 / 10
    kl = estimate_memory((1000, 1000), 5, np.float64, solver="mu", beta_loss="kullback-leibler")
    assert kl > 3 * 1000 * 1000 * 8
