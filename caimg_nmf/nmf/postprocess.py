"""Rescaling and ordering of NMF factors (``W H`` is unchanged by both)."""
from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["normalize_factors", "order_components"]

_MODES = ("footprints_max", "H_max", "unit_norm")


def _check(W, H, what):
    W, H = np.asarray(W), np.asarray(H)
    if W.ndim != 2 or H.ndim != 2 or W.shape[1] != H.shape[0]:
        raise InputError(f"{what}: W (P, K) and H (K, T) must share K; got W {W.shape}, "
                         f"H {H.shape}.") from None
    return W, H


def normalize_factors(W, H, mode):
    """Rescale each component so that ``W @ H`` is unchanged.

    Parameters
    ----------
    W : ndarray (P, K); H : ndarray (K, T)
    mode : {"footprints_max", "H_max", "unit_norm"} or None
        ``"footprints_max"``: each W column has max 1, H rows scaled up accordingly
        (the movie pipeline's default). ``"H_max"``: each H row has max 1, W columns
        multiplied by that max (the NMF primer's rescaling). ``"unit_norm"``: W columns
        have unit L2 norm. All-zero components are left as they are. None: no change.

    Returns
    -------
    W, H : new arrays (the inputs are not modified).
    """
    W, H = _check(W, H, "normalize_factors")
    if mode is None:
        return W.copy(), H.copy()
    if mode == "footprints_max":
        s = W.max(axis=0)
    elif mode == "H_max":
        s = 1.0 / np.where(H.max(axis=1) > 0, H.max(axis=1), 1.0)
    elif mode == "unit_norm":
        s = np.linalg.norm(W, axis=0)
    else:
        raise InputError(f"normalize must be None or one of {', '.join(map(repr, _MODES))}; "
                         f"got {mode!r}.") from None
    s = np.where(s > 0, s, 1.0).astype(W.dtype)
    return W / s[None, :], H * s[:, None]


def order_components(W, H, mode="energy"):
    """Reorder components.

    Parameters
    ----------
    W : ndarray (P, K); H : ndarray (K, T)
    mode : {"energy"} or None
        ``"energy"``: descending ``||w_k||^2 ||h_k||^2`` (each component's share of
        ``||W H||^2`` ignoring cross terms). None: unchanged.

    Returns
    -------
    W, H : reordered copies; perm : ndarray (K,) with ``W_new = W[:, perm]``.
    """
    W, H = _check(W, H, "order_components")
    K = W.shape[1]
    if mode is None:
        return W.copy(), H.copy(), np.arange(K)
    if mode != "energy":
        raise InputError(f"order must be None or 'energy'; got {mode!r}.") from None
    energy = (np.linalg.norm(W.astype(np.float64), axis=0) ** 2
              * np.linalg.norm(H.astype(np.float64), axis=1) ** 2)
    perm = np.argsort(-energy, kind="stable")
    return W[:, perm], H[perm], perm
