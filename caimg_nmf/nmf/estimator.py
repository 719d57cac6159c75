"""scikit-learn-style estimator around :func:`caimg_nmf.nmf.nmf` (no sklearn needed).

Orientation follows scikit-learn exactly: ``X`` is (n_samples, n_features),
``fit_transform`` returns ``W`` (n_samples, K) and ``components_`` is ``H``
(K, n_features). For a movie matrix (pixels x frames) that means samples = pixels,
so ``fit_transform`` gives the footprints and ``components_`` the traces, exactly as
``nmf`` does.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._anls import nnls_bpp
from ._validation import check_X
from .api import _nmf

__all__ = ["NMF"]

_DEFAULTS = dict(solver="hals", beta_loss="frobenius", init="nndsvda", replicates=1,
                 max_iter=500, tol=1e-4, random_state=None, l1_W=0.0, l1_H=0.0, l2_W=0.0,
                 l2_H=0.0, normalize=None, order=None, n_jobs=1, backend="numpy",
                 memory_budget=None, callback=None, verbose=False, compress=None)


class NMF:
    """Nonnegative matrix factorization estimator ``X ~= W @ components_``.

    Parameters
    ----------
    n_components : int
        K.
    **kwargs
        Same keywords as :func:`caimg_nmf.nmf.nmf` (solver, beta_loss, init, replicates,
        max_iter, tol, random_state, l1_W, l1_H, l2_W, l2_H, normalize, order, n_jobs,
        backend, memory_budget, callback, verbose).

    Attributes
    ----------
    components_ : ndarray (K, n_features)
    reconstruction_err_ : float
        ``||X - W H||_F`` of the fit (absolute, as scikit-learn).
    n_iter_ : int
    result_ : NMFResult
    n_components_, n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from caimg_nmf.nmf import NMF
    >>> X = np.random.default_rng(0).random((50, 30))
    >>> model = NMF(3, random_state=0, max_iter=1000)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((50, 3), (3, 30))
    """

    def __init__(self, n_components, **kwargs):
        unknown = set(kwargs) - set(_DEFAULTS)
        if unknown:
            raise InputError(f"NMF got unknown keyword(s) {sorted(unknown)}; valid ones: "
                             f"{', '.join(sorted(_DEFAULTS))}.") from None
        self.n_components = n_components
        for k, v in _DEFAULTS.items():
            setattr(self, k, kwargs.get(k, v))

    def get_params(self, deep=True):
        return {"n_components": self.n_components, **{k: getattr(self, k) for k in _DEFAULTS}}

    def set_params(self, **params):
        for k, v in params.items():
            if k != "n_components" and k not in _DEFAULTS:
                raise InputError(f"NMF has no parameter {k!r}.") from None
            setattr(self, k, v)
        return self

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items()
                   if k == "n_components" or _DEFAULTS.get(k, object()) is not v and _DEFAULTS.get(k) != v}
        return "NMF(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def fit_transform(self, X, y=None, W=None, H=None):
        """Fit and return W (n_samples, K). ``W``/``H`` are optional starting factors."""
        params = {k: getattr(self, k) for k in _DEFAULTS}
        res = _nmf(X, self.n_components, W0=W, H0=H, W_support=None, stacklevel=5, **params)
        self.result_ = res
        self.components_ = res.H
        self.n_components_ = res.H.shape[0]
        self.n_features_in_ = res.H.shape[1]
        self.n_iter_ = res.n_iter
        self.reconstruction_err_ = float(res.rel_error * np.sqrt(_sumsq(X)))
        return res.W

    def fit(self, X, y=None, **fit_params):
        """Fit the model to X (n_samples, n_features); returns self."""
        self.fit_transform(X, **fit_params)
        return self

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise InputError("This NMF instance is not fitted yet; call fit(X) first.") from None

    def transform(self, X):
        """W (n_samples, K) for new data with ``components_`` fixed (exact NNLS)."""
        self._check_fitted()
        X, _, _ = check_X(X)
        Hc = self.components_.astype(np.float64)
        if X.shape[1] != Hc.shape[1]:
            raise InputError(f"X must have {Hc.shape[1]} features (columns) like the data "
                             f"the model was fitted on; got shape {X.shape}.") from None
        C = Hc @ Hc.T
        C[np.diag_indices_from(C)] += self.l2_W
        D = Hc @ X.T.astype(np.float64) - self.l1_W
        return nnls_bpp(C, D).T.astype(X.dtype)

    def inverse_transform(self, W):
        """Reconstruction ``W @ components_`` (n_samples, n_features)."""
        self._check_fitted()
        W = np.asarray(W)
        if W.ndim != 2 or W.shape[1] != self.components_.shape[0]:
            raise InputError(f"W must have shape (n_samples, {self.components_.shape[0]}); "
                             f"got {W.shape}.") from None
        return W @ self.components_


def _sumsq(X):
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    return float(sum(np.vdot(b, b) for b in (X[i:i + 4096].astype(np.float64)
                                              for i in range(0, X.shape[0], 4096))))
