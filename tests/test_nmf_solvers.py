"""Solver behaviour: monotone objective, exact recovery, dtypes, KL, penalties, support."""
import warnings

import numpy as np
import pytest

from caimg_nmf.nmf import ConvergenceWarning, nmf
from _nmf_helpers import match_score, planted

SOLVERS = ["hals", "mu", "als", "anls"]
INITS = ["random", "nndsvd", "nndsvda", "nndsvdar"]
pytestmark = pytest.mark.filterwarnings("ignore::caimg_nmf.nmf.ConvergenceWarning")


@pytest.mark.parametrize("solver", SOLVERS)
def test_objective_non_increasing(solver):
    X, _, _ = planted(noise=0.05, seed=1)
    res = nmf(X, 4, solver=solver, init="random", random_state=3, max_iter=60, tol=0.0)
    h = res.loss_history
    assert len(h) == 60 and res.n_iter == 60 and not res.converged
    # history holds rel_error of the current iterate; objective = 0.5 (rel * ||X||)^2
    assert np.all(np.diff(h) <= 1e-9 * h[:-1]), np.diff(h).max()
    assert h[-1] < 0.5 * h[0]


@pytest.mark.parametrize("solver", ["hals", "mu"])
def test_penalized_objective_non_increasing(solver):
    X, _, _ = planted(noise=0.05, seed=2)
    objs = []

    def cb(it, W, H, rel):
        e = 0.5 * np.linalg.norm(X - W @ H) ** 2
        objs.append(e + 0.1 * W.sum() + 0.2 * H.sum() + 0.5 * 0.3 * (W ** 2).sum()
                    + 0.5 * 0.4 * (H ** 2).sum())

    nmf(X, 4, solver=solver, init="random", random_state=0, max_iter=40, tol=0.0,
        l1_W=0.1, l1_H=0.2, l2_W=0.3, l2_H=0.4, callback=cb)
    d = np.diff(objs)
    assert np.all(d <= 1e-9 * np.abs(objs[:-1])), d.max()


@pytest.mark.parametrize("init", INITS + ["custom"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_exact_recovery(solver, init):
    X, W, H = planted()
    kw = {}
    if init == "custom":
        rng = np.random.default_rng(5)
        kw = dict(W0=rng.random(W.shape))
        init = "random"
    res = nmf(X, 4, solver=solver, init=init, random_state=0, tol=1e-9, max_iter=600, **kw)
    assert match_score(W, res.W) >= 0.99
    assert match_score(H, res.H, axis=1) >= 0.99
    assert res.rel_error < (1e-2 if solver == "mu" else 1e-5)   # MU converges slowly
    assert res.W.min() >= 0 and res.H.min() >= 0


def test_kl_recovers_and_decreases():
    X, W, H = planted(seed=4)
    Xc = np.random.default_rng(0).poisson(20 * X).astype(float)
    res = nmf(Xc, 4, solver="mu", beta_loss="kullback-leibler", random_state=0, max_iter=300,
              tol=1e-7)
    assert match_score(W, res.W) >= 0.95
    assert res.rel_error < 0.2


def test_float32_and_float64_agree():
    X, _, _ = planted(noise=0.01)
    r64 = nmf(X, 4, random_state=0, tol=1e-6, max_iter=300)
    r32 = nmf(X.astype(np.float32), 4, random_state=0, tol=1e-6, max_iter=300)
    assert r32.W.dtype == np.float32 and r32.H.dtype == np.float32
    assert r64.W.dtype == np.float64
    assert abs(r32.rel_error - r64.rel_error) < 1e-3 * max(r64.rel_error, 1e-3) + 1e-4
    rec64, rec32 = r64.W @ r64.H, r32.W @ r32.H
    assert np.linalg.norm(rec32 - rec64) / np.linalg.norm(rec64) < 1e-3


def test_input_not_modified():
    X, _, _ = planted()
    for dt in (np.float64, np.float32, np.int64):
        Xd = (X * 10).astype(dt)
        before = Xd.copy()
        for solver in SOLVERS:
            nmf(Xd, 3, solver=solver, max_iter=5, tol=0.0)
        nmf(Xd, 3, solver="mu", beta_loss="kullback-leibler", max_iter=5, tol=0.0)
        np.testing.assert_array_equal(Xd, before)


def test_w_support_respected():
    X, W, H = planted()
    support = W > 0
    for solver in SOLVERS:
        res = nmf(X, 4, solver=solver, W_support=support, init="random", random_state=0,
                  max_iter=50, tol=0.0)
        assert np.all(res.W[~support] == 0), solver


def test_convergence_warning_and_flags():
    X, _, _ = planted(noise=0.1)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        res = nmf(X, 4, max_iter=3, tol=0.0)
    assert not res.converged and res.n_iter == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = nmf(X, 4, max_iter=1000, tol=1e-3)
    assert res.converged and res.n_iter < 1000


def test_callback_can_stop():
    X, _, _ = planted()
    seen = []
    res = nmf(X, 4, max_iter=100, tol=0.0,
              callback=lambda it, W, H, rel: seen.append((it, W.shape, H.shape)) or it >= 5)
    assert res.n_iter == 5 and not res.converged
    assert seen[0] == (1, (60, 4), (4, 80))


def test_rel_error_matches_definition():
    X, _, _ = planted(noise=0.2)
    for solver in SOLVERS:
        res = nmf(X, 3, solver=solver, max_iter=30, tol=0.0)
        exact = np.linalg.norm(X - res.W @ res.H) / np.linalg.norm(X)
        assert abs(res.rel_error - exact) < 1e-6, solver
        assert res.loss_history[-1] == pytest.approx(res.rel_error)
