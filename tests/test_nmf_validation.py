"""Bad arguments raise InputError naming the argument."""
import numpy as np
import pytest

from caimg_nmf.errors import InputError, MemoryBudgetError
from caimg_nmf.nmf import nmf
from _nmf_helpers import planted

X, _, _ = planted()


@pytest.mark.parametrize("kwargs, name", [
    (dict(rank=0), "rank"),
    (dict(rank=61), "rank"),
    (dict(rank=2.5), "rank"),
    (dict(rank=True), "rank"),
    (dict(rank=3, solver="svd"), "solver"),
    (dict(rank=3, init="nmdsvd"), "init"),
    (dict(rank=3, beta_loss="itakura"), "beta_loss"),
    (dict(rank=3, beta_loss="kullback-leibler"), "kullback-leibler"),
    (dict(rank=3, beta_loss="kullback-leibler", solver="anls"), "solver"),
    (dict(rank=3, W0=np.ones((60, 2))), "W0"),
    (dict(rank=3, H0=np.ones((3, 79))), "H0"),
    (dict(rank=3, W0=-np.ones((60, 3))), "W0"),
    (dict(rank=3, l1_W=-1.0), "l1_W"),
    (dict(rank=3, l2_H=-0.1), "l2_H"),
    (dict(rank=3, replicates=0), "replicates"),
    (dict(rank=3, max_iter=0), "max_iter"),
    (dict(rank=3, tol=-1), "tol"),
    (dict(rank=3, normalize="max"), "normalize"),
    (dict(rank=3, order="size"), "order"),
    (dict(rank=3, backend="jax"), "backend"),
    (dict(rank=3, n_jobs=0), "n_jobs"),
    (dict(rank=3, W_support=np.ones((60, 2), bool)), "W_support"),
    (dict(rank=3, random_state="abc"), "random_state"),
])
def test_bad_argument_names_it(kwargs, name):
    with pytest.raises(InputError, match=name):
        nmf(X, **kwargs)


def test_unknown_solver_lists_valid_ones():
    with pytest.raises(InputError) as ei:
        nmf(X, 3, solver="foo")
    for s in ("hals", "mu", "als", "anls"):
        assert repr(s) in str(ei.value)


def test_kl_with_hals_message():
    with pytest.raises(InputError, match="solver='mu'"):
        nmf(X, 3, beta_loss="kullback-leibler", solver="hals")


@pytest.mark.parametrize("bad, what", [
    (lambda A: A - 1.0, "nonnegative"),
    (lambda A: np.where(A > 0.5, np.nan, A), "NaN"),
    (lambda A: np.where(A > 0.5, np.inf, A), "Inf"),
    (lambda A: A.ravel(), "2-D"),
    (lambda A: A[None], "2-D"),
    (lambda A: A[:0], "empty"),
    (lambda A: np.zeros_like(A), "all zeros"),
])
def test_bad_X(bad, what):
    with pytest.raises(InputError, match=what) as ei:
        nmf(bad(X), 2)
    assert "X" in str(ei.value)


def test_errors_are_value_errors_and_have_no_chained_traceback():
    with pytest.raises(ValueError) as ei:
        nmf(X, 0)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_memory_budget_too_small():
    with pytest.raises(MemoryBudgetError, match="memory_budget"):
        nmf(X, 3, memory_budget=100)


def test_out_of_core_needs_hals():
    with pytest.raises(InputError, match="solver='hals'"):
        nmf(X, 3, solver="mu", memory_budget=20000)
