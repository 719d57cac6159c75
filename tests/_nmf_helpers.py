"""Shared fixtures for the tests/test_nmf_*.py files."""
import numpy as np
from scipy.optimize import linear_sum_assignment


def planted(P=60, T=80, K=4, seed=0, density=0.5, noise=0.0, dtype=np.float64):
    """X = W H with sparse-ish nonnegative factors (each W column and H row nonzero)."""
    rng = np.random.default_rng(seed)
    W = rng.random((P, K)) * (rng.random((P, K)) < density)
    H = rng.random((K, T)) * (rng.random((K, T)) < density)
    for k in range(K):               # make every component identifiable
        W[rng.choice(P, 3, replace=False), k] = 1.0 + k
        H[k, rng.choice(T, 3, replace=False)] = 1.0
        W[k * (P // K):(k + 1) * (P // K), k] += 0.5   # private pixels
    X = W @ H
    if noise:
        X = X + noise * rng.random(X.shape)
    return X.astype(dtype), W, H


def match_score(A_true, A_est, axis=0):
    """Min cosine similarity between matched columns (axis=0) or rows (axis=1)."""
    if axis == 1:
        A_true, A_est = A_true.T, A_est.T
    a = A_true / np.maximum(np.linalg.norm(A_true, axis=0), 1e-300)
    b = A_est / np.maximum(np.linalg.norm(A_est, axis=0), 1e-300)
    C = a.T @ b
    r, c = linear_sum_assignment(-C)
    return float(C[r, c].min())
